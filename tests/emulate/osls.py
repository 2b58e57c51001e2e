"""Run the repository's osls (open-source Serverless Framework CLI) offline, from node_modules.

``scripts/test.sh`` installs the npm packages (``npm ci --legacy-peer-deps``). The environment keeps
osls from calling home (telemetry, notifications) and gives it dummy AWS credentials, so ``package``,
``invoke local`` and ``offline`` never need an account or the network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OSLS = REPO / "node_modules" / ".bin" / "osls"


def osls_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An offline environment: no telemetry or notifications, dummy credentials, our venv's Python."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELFN_", "SLS_", "SERVERLESS_"))}
    home.mkdir(parents=True, exist_ok=True)
    return {
        **keep,
        "HOME": str(home),
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
        "SLS_DEPRECATION_DISABLE": "*",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # serverless-offline and `invoke local` run `python3` from $VIRTUAL_ENV/bin when it is set
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
        **(extra or {}),
    }


def osls_command(*args: str) -> list[str]:
    """The osls command line; fails (never skips) when the npm packages are not installed."""
    if not OSLS.exists():
        pytest.fail(f"{OSLS} missing: run `npm ci --legacy-peer-deps` (scripts/test.sh does)")
    return [str(OSLS), *args]


def run_osls(*args: str, env: Mapping[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run osls in the repository root (where serverless.yml lives) and fail with its output on error."""
    done = subprocess.run(osls_command(*args), cwd=REPO, env=dict(env), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"osls {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def tiny_artifact(directory: Path) -> Path:
    """A small stand-in for the Lambda zip (``package: artifact`` only needs a zip to reference)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "modelfn-lambda.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("modelfn_placeholder.py", "# the real zip comes from modelfn's Lambda package builder\n")
    return path
