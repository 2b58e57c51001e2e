"""The plan's concurrency formulas against a measured load test on real uvicorn workers (bench_plan_validate).

The bounded run uses the bench's fixed-time stand-in (each request holds its worker for 50 ms), so
the check is about the concurrency model, not about how much CPU a shared 2-core machine lends the
model at that moment; the model-serving run stays in bench/ (see its docstring).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelfn.plan.inputs import figures_from_bench

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_plan_validate.py"


@pytest.mark.slow
def test_predicted_concurrency_is_within_20_percent_of_measured(tmp_path: Path) -> None:
    # GIVEN 2 uvicorn workers and a bounded open-loop Poisson load (200 requests at 30 % utilization)
    out = tmp_path / "plan_validate.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--workers", "2", "--sleep-ms", "50", "--loads", "0.3", "--requests", "200",
         "--out", str(out)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    (row,) = result["loads"]
    # WHEN the measured concurrency is compared with the plan's formulas
    # THEN in service (Lambda's model, X·S) and in the system (the container's M/M/c) are both within 20 %
    assert row["failures"] == 0
    assert 0.8 <= row["busy_ratio"] <= 1.2, row
    assert 0.8 <= row["system_ratio"] <= 1.2, row
    # AND the run's figures are what `modelfn plan --bench` reads
    figures = figures_from_bench([out])
    assert set(figures) == {"cold_start_ms", "warm_latency_ms", "memory_mb"}
    assert figures["warm_latency_ms"] >= 50
