"""A plan as a table (rows of text) and as JSON-ready data; no output library needed."""

from __future__ import annotations

import dataclasses
from typing import Any

from modelfn.plan.estimate import ContainerEstimate, LambdaEstimate, Plan


def lambda_rows(plan: Plan) -> list[tuple[str, str, str]]:
    """``(quantity, on demand, with provisioned concurrency)`` rows."""
    a, b = plan.on_demand, plan.provisioned

    def row(label: str, fmt: str, key: str) -> tuple[str, str, str]:
        return label, format(getattr(a, key), fmt), format(getattr(b, key), fmt)

    rows = [
        ("provisioned concurrency", str(a.provisioned), str(b.provisioned)),
        ("memory (MB)", str(a.memory_mb), str(b.memory_mb)),
        row("warm duration (ms)", ".2f", "duration_ms"),
        row("steady concurrency (λ·W)", ",.2f", "steady_concurrency"),
        row("burst concurrency (λ·W)", ",.2f", "burst_concurrency"),
        row("environments (99.9 %)", ",d", "environments"),
        row("cold starts / day", ",.1f", "cold_starts_per_day"),
        row("cold-start share", ".3%", "cold_start_share"),
        row("throttled / burst", ",.0f", "throttled_per_burst"),
        row("throttled share", ".3%", "throttled_share"),
        row("scale-up ramp (s)", ".1f", "ramp_s"),
    ]
    rows += [(f"cost: {line} (USD/mo)", f"{a.cost[line]:,.2f}", f"{b.cost[line]:,.2f}") for line in a.cost]
    rows.append(("total (USD/month)", f"{a.monthly_usd:,.2f}", f"{b.monthly_usd:,.2f}"))
    return rows


def container_rows(plan: Plan) -> list[tuple[str, ...]]:
    """One row per container option: name, min/max scale, utilization, concurrency, time in system, cost."""
    return [
        (
            c.name,
            str(c.min_instances),
            str(c.max_instances),
            f"{c.utilization:.0%}",
            f"{c.concurrency:,.2f}",
            f"{c.time_in_system_ms:,.2f}",
            f"{c.monthly_usd:,.2f}",
        )
        for c in plan.containers
    ]


CONTAINER_HEADER = ("container", "min", "max", "util. at peak", "concurrency", "time in system (ms)", "USD/month")


def render_text(plan: Plan) -> str:
    """The whole plan as aligned plain text."""
    lines = [_table(("Lambda", "on demand", "provisioned"), lambda_rows(plan)), ""]
    if plan.containers:
        lines += [_table(CONTAINER_HEADER, container_rows(plan)), ""]
    lines += [f"- {line}" for line in plan.recommendations]
    lines += [f"! {line}" for line in plan.warnings]
    return "\n".join(lines)


def to_dict(plan: Plan) -> dict[str, Any]:
    """JSON-ready plan, with totals."""

    def lam(estimate: LambdaEstimate) -> dict[str, Any]:
        return {**dataclasses.asdict(estimate), "monthly_usd": estimate.monthly_usd}

    def fleet(estimate: ContainerEstimate) -> dict[str, Any]:
        return dataclasses.asdict(estimate)

    return {
        "traffic": dataclasses.asdict(plan.traffic),
        "figures": dataclasses.asdict(plan.figures),
        "lambda": {"on_demand": lam(plan.on_demand), "provisioned": lam(plan.provisioned)},
        "containers": [fleet(c) for c in plan.containers],
        "recommendations": list(plan.recommendations),
        "warnings": list(plan.warnings),
    }


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]] | list[tuple[str, str, str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    return "\n".join(out)
