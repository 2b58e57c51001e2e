"""One row of bench/results/latest.md: a measure, modelfn's figure, what it is compared with, the goal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    """``ratio`` is modelfn ÷ reference; ``met`` is None where the issue sets no goal or a figure is missing."""

    measure: str
    modelfn: float | None = None
    reference: float | None = None
    unit: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""


def row(
    measure: str, modelfn: Any, reference: Any, unit: str, *,
    max_ratio: float | None = None, min_ratio: float | None = None, max_delta: float | None = None, goal: str = "",
) -> Row:  # fmt: skip
    """Build a row and judge its goal: ratio ≤ max_ratio, ratio ≥ min_ratio, or modelfn − reference ≤ max_delta."""
    ours = float(modelfn) if isinstance(modelfn, int | float) else None
    ref = float(reference) if isinstance(reference, int | float) else None
    ratio = round(ours / ref, 3) if ours is not None and ref else None
    met: bool | None = None
    if max_ratio is not None:
        goal = goal or f"≤ {max_ratio:g}×"
        met = None if ratio is None else ratio <= max_ratio
    elif min_ratio is not None:
        goal = goal or f"≥ {min_ratio:g}×"
        met = None if ratio is None else ratio >= min_ratio
    elif max_delta is not None:
        goal = goal or f"≤ +{max_delta:g} {unit}"
        met = None if ours is None or ref is None else ours - ref <= max_delta
    note = "" if ours is not None and ref is not None else "figure missing from the results"
    return Row(measure, ours, ref, unit, ratio, goal, met, note)


def generic_rows(data: dict[str, Any]) -> list[Row]:
    """Rows a benchmark wrote itself under ``"report"`` (the convention for new benchmarks)."""
    out = []
    for item in data.get("report", []):
        goals = {k: item[k] for k in ("max_ratio", "min_ratio", "max_delta") if item.get(k) is not None}
        out.append(row(str(item.get("measure", "?")), item.get("modelfn"), item.get("reference"),
                       str(item.get("unit", "")), goal=str(item.get("goal", "")), **goals))  # fmt: skip
    return out
