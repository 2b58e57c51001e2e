"""`modelfn batch` from the command line: options, output naming, summary, exit status, both engines.

The local engine runs in-process through Typer's runner; the Spark engine runs as a real
``modelfn`` subprocess on ``local[2]``, starting and stopping its own Spark session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from modelfn.cli import app
from tests.batch.test_runner import FEATURES, csv_bytes, rows
from tests.fixtures.bundles import Published
from tests.fixtures.keys import SigningKey

runner = CliRunner()


def _scored(folder: Path) -> pd.DataFrame:
    """Every CSV row under ``folder`` (result files or Spark part files), ordered by the features."""
    parts = [p for p in folder.rglob("*.csv") if p.is_file()]
    return pd.concat([pd.read_csv(p) for p in parts], ignore_index=True).sort_values(FEATURES, ignore_index=True)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "one.csv").write_bytes(csv_bytes(rows(40, 1)))
    (folder / "two.csv").write_bytes(csv_bytes(rows(60, 2)))
    return folder


def test_help_explains_each_option_and_the_output_naming() -> None:
    result = runner.invoke(app, ["batch", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for text in ("--engine", "--master", "--chunk-rows", "--store", "--model", "--version", "--trust", "--config",
                 "OUTPUT/KEY/MODEL-vVERSION-RUNID.EXT", "MODELFN_OUTPUT_URL", "local[*]"):  # fmt: skip
        assert text in result.output, text


def test_the_local_engine_scores_a_folder_into_the_configured_output(
    inputs: Path, tmp_path: Path, local_published: Published
) -> None:
    # GIVEN the model and OUTPUT configured by environment, as in a job container
    out = tmp_path / "out"
    env = {**local_published.env, "MODELFN_OUTPUT_URL": str(out)}

    # WHEN `modelfn batch INPUT` runs
    result = runner.invoke(app, ["batch", str(inputs), "--chunk-rows", "7"], env=env, catch_exceptions=False)

    # THEN it exits 0 with a summary line, and each object has its result named after it
    assert result.exit_code == 0, result.output
    assert "2 scored, 0 failed: 100 rows" in result.output and "rows/s" in result.output
    assert sorted(p.parent.name for p in out.rglob("tiny-v1-*.csv")) == ["one.csv", "two.csv"]
    assert list(_scored(out).columns) == [*FEATURES, "y_0", "y_1", "y_2"]


def test_a_failed_object_is_listed_and_the_exit_status_is_1(
    inputs: Path, tmp_path: Path, local_published: Published
) -> None:
    # GIVEN one object whose values do not parse as numbers
    (inputs / "three.csv").write_text("f0,f1,f2,f3\n1,2,x,4\n")

    # WHEN the folder is scored with flags instead of environment
    args = ["batch", str(inputs), str(tmp_path / "out"), "--store", local_published.settings.store_url,
            "--model", "tiny", "--version", "1", "--trust", local_published.settings.trusted_keys[0]]  # fmt: skip
    result = runner.invoke(app, args, env={"MODELFN_OUTPUT_URL": ""}, catch_exceptions=False)

    # THEN the other objects are scored, the failure is named, and the exit status is 1
    assert result.exit_code == 1, result.output
    assert "failed: three.csv:" in result.output and "2 scored, 1 failed: 100 rows" in result.output


def test_a_refused_run_exits_2_naming_the_problem(
    inputs: Path, tmp_path: Path, local_published: Published, other_signing_key: SigningKey
) -> None:
    # GIVEN no output anywhere / a trust set without the model's signer
    no_output = runner.invoke(app, ["batch", str(inputs)], env={**local_published.env, "MODELFN_OUTPUT_URL": ""})
    env = {**local_published.env, "MODELFN_TRUSTED_KEYS": str(other_signing_key.public_path)}
    untrusted = runner.invoke(app, ["batch", str(inputs), str(tmp_path / "out")], env=env)
    inside = runner.invoke(app, ["batch", str(inputs), str(inputs / "out")], env=local_published.env)

    # THEN each exits 2 with an error naming what is wrong, and nothing is written
    assert no_output.exit_code == 2 and "MODELFN_OUTPUT_URL" in no_output.output
    assert untrusted.exit_code == 2 and "trust" in untrusted.output.lower()
    assert inside.exit_code == 2 and "inside input" in inside.output
    assert not (tmp_path / "out").exists() and not (inputs / "out").exists()


@pytest.mark.slow
def test_the_spark_engine_from_the_command_line_matches_the_local_engine(
    inputs: Path, tmp_path: Path, s3_published: Published
) -> None:
    # GIVEN the model in an S3 store (executors fetch and verify it there too), configured by environment,
    # and the local engine's results for the folder
    env = {**os.environ, **s3_published.env, "MODELFN_OUTPUT_URL": str(tmp_path / "local")}
    local = runner.invoke(app, ["batch", str(inputs)], env=env, catch_exceptions=False)
    assert local.exit_code == 0, local.output

    # WHEN the real `modelfn` script scores it with --engine spark on local[2]
    modelfn = Path(sys.executable).parent / "modelfn"
    args = [str(modelfn), "batch", str(inputs), str(tmp_path / "spark"), "--engine", "spark", "--master", "local[2]"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240, check=False)

    # THEN it exits 0 with a summary, and its CSV dataset equals the local engine's rows
    assert result.returncode == 0, result.stderr[-3000:]
    assert "100 rows in" in result.stdout and "rows/s" in result.stdout
    (dataset,) = (tmp_path / "spark" / "in").glob("tiny-v1-*.csv")
    assert (dataset / "_SUCCESS").is_file()
    pd.testing.assert_frame_equal(_scored(dataset), _scored(tmp_path / "local"), check_dtype=False, rtol=1e-6)
