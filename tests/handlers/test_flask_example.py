"""examples/flask-rest-api: train, package, sign and publish a model, then call the app through the Lambda handler."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask-rest-api" / "train_and_package.py"

pytestmark = [pytest.mark.slow, pytest.mark.framework]


def test_example_runs(tmp_path: Path) -> None:
    # GIVEN the example script (scikit-learn model, local store and key under tmp_path)
    # WHEN it runs in a fresh interpreter
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    # THEN the bundle is signed and published, and the Flask app answered through the WSGI handler
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "store" / "iris-flask" / "1" / "model.sig").is_file()
    line = next(line for line in result.stdout.splitlines() if line.startswith("POST /predict -> "))
    status, body = line.removeprefix("POST /predict -> ").split(": ", 1)
    answer = json.loads(body)
    assert status == "200" and answer["success"] is True
    assert [p["label"] for p in answer["predictions"]] == ["setosa", "virginica"]
    assert all(0.5 < p["probability"] <= 1.0 for p in answer["predictions"])
    assert "modelfn.handlers.wsgi.handler" in result.stdout
