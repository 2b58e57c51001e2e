"""``--plot``: monthly cost against steady traffic, and Lambda concurrency through one burst (matplotlib, lazily)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from modelfn.errors import ConfigError
from modelfn.plan.estimate import ENVIRONMENT_QUANTILE, Plan, estimate_container, estimate_lambda
from modelfn.plan.inputs import ContainerOption, LambdaOptions
from modelfn.plan.queueing import poisson_quantile


def plot(plan: Plan, options: LambdaOptions, containers: tuple[ContainerOption, ...], out: Path) -> Path:
    """Write a two-panel PNG: cost vs steady rps (profile marked), and available vs needed concurrency in a burst."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'modelfn[plan]'", field="plot") from exc

    figure, (cost_ax, burst_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    top = max(plan.traffic.steady_rps * 4, 1.0)
    rates = [top * i / 60 for i in range(1, 61)]
    profiles = [
        dataclasses.replace(plan.traffic, steady_rps=r, burst_rps=max(r, plan.traffic.burst_rps)) for r in rates
    ]
    provisioned = plan.provisioned.provisioned
    cost_ax.plot(rates, [estimate_lambda(t, plan.figures, options).monthly_usd for t in profiles], label="Lambda")
    cost_ax.plot(
        rates,
        [estimate_lambda(t, plan.figures, options, provisioned).monthly_usd for t in profiles],
        label=f"Lambda + {provisioned} provisioned",
    )
    for option in containers:
        cost_ax.plot(
            rates, [estimate_container(t, plan.figures, option).monthly_usd for t in profiles], label=option.name
        )
    cost_ax.axvline(plan.traffic.steady_rps, color="grey", linestyle=":", label="this profile")
    cost_ax.set(xlabel="steady requests / s", ylabel="USD / month (log)", title="Monthly cost", yscale="log")
    cost_ax.legend(fontsize="small")

    need = plan.on_demand.burst_concurrency
    times = [plan.traffic.burst_s * i / 200 for i in range(201)]
    rate = options.scale_step / options.scale_window_s
    limit = options.concurrency_limit()
    start = poisson_quantile(plan.on_demand.steady_concurrency, ENVIRONMENT_QUANTILE)  # warm when the burst begins
    burst_ax.plot(times, [min(limit, start + options.scale_step + rate * t) for t in times], label="available")
    burst_ax.plot(times, [need for _ in times], label="needed (λ·W)")
    burst_ax.axhline(limit, color="red", linestyle=":", label=f"limit {limit:,}")
    burst_ax.set(xlabel="seconds into a burst", ylabel="concurrent executions", title="Lambda concurrency in a burst")
    burst_ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
