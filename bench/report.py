"""bench/results/latest.md from the benchmarks' JSON files: one table of ratios with the goal beside each.

``build(results, statuses)`` reads every registered benchmark's result file and writes the table
(measure, modelfn, reference, ratio, goal, met?), a status line per benchmark (ran, failed, script
absent, not run this time, figures from an earlier run) and the charts (bench/charts.py). A
benchmark without a result file still gets its row, saying why: nothing is dropped silently.

Usage: python bench/report.py   (rebuilds latest.md and the charts from the JSON already there)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS
from registry import BENCHES, Bench
from rows import Row

HERE = Path(__file__).resolve().parent
Status = dict[str, Any] | None
HEADER = "| measure | modelfn | reference | ratio | goal | met? |"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return f"{text} {unit}".strip()


def _met(r: Row) -> str:
    if r.met is None:
        return "—" if not r.goal else "? (no figure)"
    return "yes" if r.met else "**no**"


def bench_rows(bench: Bench, results: Path, status: dict[str, Any] | None) -> tuple[list[Row], str]:
    """The rows of one benchmark and its status text."""
    path = results / bench.result
    state = (status or {}).get("status")
    if state in ("failed", "timed out"):
        exit_code = f"exit {status.get('rc')}, " if state == "failed" else ""
        why = f"{state} ({exit_code}log {status.get('log')})" if status else str(state)
        return [Row(f"{bench.name}: no figures", note=why)], why
    if not path.exists():
        if state == "missing" or not (HERE / bench.script).exists():
            why = f"script bench/{bench.script} not in this checkout"
        else:
            why = "not run yet (no results file)" if state is None else f"{state}, but no {bench.result} was written"
        return [Row(f"{bench.name}: no figures", note=why)], why
    data = json.loads(path.read_text())
    mtime = path.stat().st_mtime
    when = dt.datetime.fromtimestamp(mtime, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    quick = " (--quick)" if status and status.get("quick") else ""
    if state == "ok" and status and mtime >= status.get("at", 0):
        text = f"ran{quick} {when}, {status['seconds']:.0f} s"
    elif state == "ok":
        text = f"ran, but its results file is older ({when}): figures from an earlier run"
    else:
        text = f"results file written {when}, not by run_all.py"
    try:
        rows = bench.reader(data)
    except (KeyError, TypeError, ValueError) as exc:
        return [Row(f"{bench.name}: results unreadable", note=f"{type(exc).__name__}: {exc}")], text
    if not rows:
        rows = [Row(f"{bench.name}: results present, no rows", note=f"see {bench.result}")]
    if text.endswith("earlier run"):
        for r in rows:
            r.note = (r.note + "; " if r.note else "") + text
    return rows, text


def table(rows: list[Row]) -> list[str]:
    lines = [HEADER, "|---|---|---|---|---|---|"]
    for r in rows:
        measure = r.measure
        if r.note:
            measure += f" — {r.note}"
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        lines.append(f"| {measure} | {_fmt(r.modelfn, r.unit)} | {_fmt(r.reference, r.unit)} | {ratio} | "
                     f"{r.goal or '—'} | {_met(r)} |")  # fmt: skip
    return lines


def build(results: Path = RESULTS, statuses: dict[str, Any] | None = None) -> Path:
    """Write results/latest.md and results/charts/*.png; return the markdown's path."""
    from charts import draw_all

    statuses = statuses or {}
    rows: list[Row] = []
    status_lines = ["| benchmark | script | status |", "|---|---|---|"]
    for bench in BENCHES:
        bench_rows_, text = bench_rows(bench, results, statuses.get(bench.name))
        rows += bench_rows_
        status_lines.append(f"| {bench.name} | bench/{bench.script} | {text} |")
    failed = {b.result for b in BENCHES if (statuses.get(b.name) or {}).get("status") in ("failed", "timed out")}
    charts, missing = draw_all(results, results / "charts", failed)
    met = [r for r in rows if r.met is not None]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python bench/run_all.py` at {now} on {os.cpu_count()} CPUs ({platform.machine()}, Python "
        f"{platform.python_version()}; load average {load}). Ratios are modelfn ÷ reference from the same run; "
        "for times lower is better, for rows/s and requests/s higher is better.",
        "",
        f"Goals met: {sum(bool(r.met) for r in met)} of {len(met)} with a goal and a figure.",
        "",
        *table(rows),
        "",
        "## Benchmarks",
        "",
        *status_lines,
        "",
        "## Charts",
        "",
        *[f"![{p.stem}](charts/{p.name})" for p in charts],
        *[f"- {name}: not drawn ({why})" for name, why in missing],
        "",
    ]
    out = results / "latest.md"
    out.write_text("\n".join(lines))
    return out


if __name__ == "__main__":
    saved = RESULTS / "run_all.json"
    state = json.loads(saved.read_text()) if saved.exists() else {}
    print(build(RESULTS, state.get("benches")).read_text())
