"""``modelfn plan`` from the command line: table, JSON, bench files, the PNG chart, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelfn.cli import app
from modelfn.plan.estimate import make_plan
from modelfn.plan.inputs import CPU_CONTAINER, GPU_CONTAINER, LambdaOptions, ModelFigures, Traffic

runner = CliRunner()
PROFILE = ["--rps", "50", "--burst-rps", "3000", "--burst-seconds", "60", "--bursts-per-day", "4"]


def test_json_plan_is_the_library_plan() -> None:
    # GIVEN a traffic profile and figures passed as flags
    result = runner.invoke(app, ["plan", *PROFILE, "--latency-ms", "5", "--cold-start-ms", "900", "--json"])
    # WHEN printed as JSON
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    # THEN it is exactly what the library computes for the same inputs
    expected = make_plan(
        Traffic(50, 3000, 60, 4, 1), ModelFigures(5, 900), LambdaOptions(), (CPU_CONTAINER, GPU_CONTAINER)
    )
    assert printed["lambda"]["on_demand"]["monthly_usd"] == pytest.approx(expected.on_demand.monthly_usd)
    assert printed["lambda"]["on_demand"]["burst_concurrency"] == pytest.approx(15.0)
    assert [c["name"] for c in printed["containers"]] == ["cpu", "gpu"]
    assert printed["recommendations"] == list(expected.recommendations)


def test_table_from_bench_files_and_a_png_chart(tmp_path: Path) -> None:
    # GIVEN figures in the benchmarks' output files
    (tmp_path / "coldstart.json").write_text(json.dumps({"models": {"mlp": {"modelfn_ms_p50": 700.0}}}))
    (tmp_path / "handler.json").write_text(json.dumps({"mlp": {"lambda_handler": {"p50_ms": 2.0}}}))
    chart = tmp_path / "plan.png"
    # WHEN planning from them with --plot
    result = runner.invoke(
        app,
        ["plan", "--rps", "20", "--bench", str(tmp_path / "coldstart.json"), "--bench", str(tmp_path / "handler.json"),
         "--bench-model", "mlp", "--gpu-hourly", "0", "--plot", str(chart)],
    )  # fmt: skip
    # THEN the table shows the Lambda estimates (λ·W = 20 × 2 ms), one container and the chart is a PNG
    assert result.exit_code == 0, result.output
    assert "steady concurrency (λ·W)" in result.output and " 0.04 " in result.output
    assert "\ncpu " in result.output and "\ngpu " not in result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_missing_figures_and_bad_options_exit_2_naming_the_flag() -> None:
    # GIVEN no latency anywhere
    result = runner.invoke(app, ["plan", "--rps", "5", "--cold-start-ms", "500"])
    # THEN exit 2, naming the flag to pass
    assert result.exit_code == 2 and "--latency-ms" in result.output
    # AND an unknown architecture names the valid ones
    result = runner.invoke(app, ["plan", "--rps", "5", "--latency-ms", "1", "--cold-start-ms", "1", "--arch", "sparc"])
    assert result.exit_code == 2 and "arm64" in result.output
