"""The benchmark suite's report: ratios with their goals in results/latest.md, PNG charts, and one quick run.

The builder and run_all.py run as the scripts users run (``python bench/...``) with
``MODELFN_BENCH_RESULTS`` pointing at a temporary folder, so nothing here touches bench/results/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(folder: Path, name: str, data: dict[str, Any]) -> None:
    (folder / name).write_text(json.dumps(data))


def _server(cold: float, p50: float, rps32: float) -> dict[str, Any]:
    quantiles = [p50 * (0.8 + 0.4 * i / 199) for i in range(200)]
    throughput = {str(c): {"clients": c, "requests_per_s": rps32 * c / 32} for c in (1, 8, 32, 128)}
    return {"cold_ms_p50": cold, "warm": {"p50_ms": p50, "p99_ms": p50 * 2, "quantiles_ms": quantiles},
            "throughput": throughput}  # fmt: skip


def _run(script: str, results: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELFN_BENCH_RESULTS": str(results), "MODELFN_BENCH_VENVS": str(results / "venvs")}
    return subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _table_row(markdown: str, starts_with: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {starts_with}"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_table_has_ratios_goals_and_missing_inputs_and_valid_charts(tmp_path: Path) -> None:
    import matplotlib.image

    # GIVEN sample results: a cold start over its goal, a batch ratio within its goal, peers with
    # latencies and throughput, a benchmark that failed this run, and no Lambda package results
    _write(tmp_path, "coldstart.json", {"models": {"rf": {"floor_ms_p50": 1000.0, "modelfn_ms_p50": 1200.0}}})
    batch = {"handler_rows_per_s": 90.0, "handwritten_rows_per_s": 100.0, "raw_ort_rows_per_s": 300.0}
    _write(tmp_path, "bench_batch.json", {"models": {"rf": batch}})
    _write(tmp_path, "peers.json", {"servers": {"modelfn-mlp": _server(700, 1.0, 3000), "fastapi-mlp": _server(900, 0.8,
           2000), "mlserver-mlp": {"error": "RuntimeError: mlserver-mlp exited with 1 before answering"}}})  # fmt: skip
    levels = {"1": {"rps": 400.0}, "32": {"rps": 1800.0, "p99_ms": 30.0}}
    _write(tmp_path, "batching.json", {"results": {"modelfn-on": levels, "modelfn-off": {"32": {"rps": 600.0}}}})
    state = {"started": 0, "benches": {"handler": {"status": "failed", "rc": 1, "log": "results/logs/handler.log"}}}
    _write(tmp_path, "run_all.json", state)

    # WHEN the report is built from them
    done = _run("report.py", tmp_path)

    # THEN the table carries modelfn, reference, ratio and goal, judged against the goal
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "latest.md").read_text()
    assert md.splitlines()[6] == "| measure | modelfn | reference | ratio | goal | met? |"
    cold = _table_row(md, "cold start rf")
    assert cold[1:] == ["1,200 ms", "1,000 ms", "1.20×", "≤ 1.1×", "**no**"]
    assert _table_row(md, "batch rf: storage-event handler ÷ hand-written")[3:] == ["0.90×", "≥ 0.8×", "yes"]
    assert _table_row(md, "batch rf: storage-event handler ÷ onnxruntime")[3:] == ["0.30×", "—", "—"]
    assert _table_row(md, "serve mlp warm p50: modelfn ÷ fastapi")[3:] == ["1.25×", "≤ 1×", "**no**"]
    assert _table_row(md, "serve mlp at 32 clients: modelfn ÷ fastapi")[3] == "1.50×"
    assert _table_row(md, "adaptive batching at 32 clients: on ÷ off")[1:] == ["1,800 req/s", "600 req/s", "3.00×",
                                                                                "≥ 2×", "yes"]  # fmt: skip
    # AND what is missing or broken is said, never dropped
    assert "exited with 1 before answering" in _table_row(md, "serve mlp: modelfn vs mlserver")[0]
    assert "failed (exit 1, log results/logs/handler.log)" in _table_row(md, "handler: no figures")[0]
    assert "not run yet" in _table_row(md, "lambda_package: no figures")[0]
    assert "- lambda_package: not drawn (no lambda_package_x86_64.json)" in md
    assert "Goals met: 2 of 4" in md
    # AND each drawn chart is a real PNG image, linked from the report
    for name in ("coldstart", "latency_cdf", "throughput"):
        png = tmp_path / "charts" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
        height, width, _ = matplotlib.image.imread(png).shape
        assert height > 200 and width > 400
        assert f"](charts/{name}.png)" in md
    assert not (tmp_path / "charts" / "lambda_package.png").exists()


@pytest.mark.slow
def test_run_all_quick_one_benchmark_end_to_end(tmp_path: Path) -> None:
    # GIVEN an empty results folder (no models, no earlier runs)
    # WHEN the suite runs one cheap benchmark in quick mode
    done = _run("run_all.py", tmp_path, "--quick", "--only", "latest_versions", "--check-against-reference")

    # THEN it ran on a local S3 emulator, wrote its JSON, its status and the report
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((tmp_path / "latest_versions.json").read_text())
    assert sorted(result["counts"], key=int) == ["1", "10"]
    status = json.loads((tmp_path / "run_all.json").read_text())["benches"]
    assert status["latest_versions"]["status"] == "ok" and status["latest_versions"]["quick"] is True
    md = (tmp_path / "latest.md").read_text()
    row = _table_row(md, "resolve latest: LIST requests at 10 ÷ at 1 versions")
    assert row[1] == row[2] == "2.0 requests" and row[3:] == ["1.00×", "≤ 1×", "yes"]
    assert "| latest_versions | bench/bench_latest_versions.py | ran (--quick) 20" in md
    # AND the benchmarks it did not run are listed as such
    assert "not run yet" in _table_row(md, "coldstart: no figures")[0]
    assert not (tmp_path / "models").exists()


def test_figures_of_a_benchmark_that_failed_this_run_are_neither_tabled_nor_charted(tmp_path: Path) -> None:
    # GIVEN cold-start figures left by an earlier run, and this run's status saying coldstart failed
    _write(tmp_path, "coldstart.json", {"models": {"rf": {"floor_ms_p50": 1000.0, "modelfn_ms_p50": 1200.0}}})
    timed_out = {"status": "timed out", "rc": None, "log": "logs/coldstart.log"}
    _write(tmp_path, "run_all.json", {"started": 0, "benches": {"coldstart": timed_out}})

    # WHEN the report is built
    done = _run("report.py", tmp_path)

    # THEN the failure is the row, the stale figures are not, and no cold-start chart is drawn from them
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "latest.md").read_text()
    assert "timed out (log logs/coldstart.log)" in _table_row(md, "coldstart: no figures")[0]
    assert "cold start rf" not in md
    assert "- coldstart: not drawn (no coldstart.json or peers.json)" in md
    assert not (tmp_path / "charts" / "coldstart.png").exists()
