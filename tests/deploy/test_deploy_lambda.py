"""`modelfn deploy --target lambda`: serverless.yml parameters, the real slim zip, and `osls package` offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from modelfn.deploy.render import INFRA_DIR
from tests.deploy.test_deploy_settings import run_deploy, write_settings
from tests.fixtures.keys import SigningKey

PROJECT = INFRA_DIR.parent


@pytest.mark.slow
def test_dry_run_builds_the_zip_and_packages_offline(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN settings for the serverless.yml service (the real zip is built, pip wheels for the Lambda runtime)
    assert (PROJECT / "node_modules" / ".bin" / "osls").exists(), "run `npm ci` (scripts/test.sh does)"
    config = write_settings(tmp_path / "cfg", signing_key, min_scale=1, max_scale=5, memory_mb=1536)
    out = tmp_path / "build"
    # WHEN rendering and validating offline
    result = run_deploy("--target", "lambda", "--config", str(config), "--out", str(out), "--dry-run")
    # THEN osls packaged the service into the build directory with the rendered parameters
    assert result.exit_code == 0, result.output
    assert "ok  osls package" in result.stdout
    params = json.loads((out / "params.json").read_text())["params"]
    assert params["modelBucket"] == "models-bucket" and params["modelPrefix"] == "models"
    assert params["triggerPrefix"] == "incoming/" and params["outputPrefix"] == "predictions"
    assert params["trustedKeys"] == signing_key.public_path.read_text()
    assert Path(params["artifact"]).is_file() and Path(params["artifact"]).parent == out
    template: dict[str, Any] = json.loads(
        (out / "osls-package" / "cloudformation-template-update-stack.json").read_text()
    )
    functions = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    http = [f for f in functions if f.get("Handler") == "modelfn.handlers.http.handler"]
    assert http and http[0]["MemorySize"] == 1536 and http[0]["Runtime"] == "python3.12"
    assert http[0]["Environment"]["Variables"]["MODELFN_MODEL_NAME"] == "tiny"
    assert "kms:Sign" not in json.dumps(template)


def test_missing_osls_fails_clearly(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN templates and serverless.yml in a directory where `npm ci` never ran
    project = tmp_path / "project"
    shutil.copytree(INFRA_DIR, project / "infra")
    shutil.copy2(PROJECT / "serverless.yml", project / "serverless.yml")
    config = write_settings(tmp_path / "cfg", signing_key)
    out = tmp_path / "build"
    # WHEN deploying for real
    result = run_deploy(
        "--target", "lambda", "--config", str(config), "--out", str(out), "--infra", str(project / "infra")
    )
    # THEN the missing tool is named with how to install it, and nothing was rendered or built
    assert result.exit_code == 2, result.output
    assert "osls is not installed" in result.stderr and "npm ci" in result.stderr
    assert not out.exists()
