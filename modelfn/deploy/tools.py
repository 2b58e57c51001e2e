"""Running the external tools a deploy needs (cfn-lint, osls, sam, kubectl): found, run, failures typed.

Its own module so the validators and the targets that run tools both import it, and not each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelfn.errors import ModelfnError

TOOL_TIMEOUT_S = 600
INSTALL_HINTS = {
    "cfn-lint": "pip install 'modelfn[deploy]'",
    "kubernetes-validate": "pip install 'modelfn[deploy]'",
    "sam": "pip install aws-sam-cli",
    "kubectl": "https://kubernetes.io/docs/tasks/tools/",
    "npx": "install Node.js 18+ and run `npm install` beside serverless.yml",
}


class DeployError(ModelfnError):
    """Raise when rendered infrastructure fails validation or a deploy tool fails or is missing."""

    code = "deploy"


def find_tool(name: str) -> str:
    """The tool beside this interpreter (the deploy extra's console scripts), else on PATH; a clear error otherwise."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise DeployError(f"{name} not found on PATH: {INSTALL_HINTS.get(name, 'install it')}", field="tool")
    return found


def run_tool(
    command: Sequence[str], *, what: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
    stdin: str | None = None,
) -> str:  # fmt: skip
    """Run a tool, return its output; a non-zero exit is a DeployError quoting the output's tail."""
    try:
        result = subprocess.run(
            list(command), cwd=cwd, env=None if env is None else {**os.environ, **env}, input=stdin,
            capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise DeployError(f"{what}: {command[0]} ran over {TOOL_TIMEOUT_S} s", field="tool") from exc
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise DeployError(f"{what} failed (exit {result.returncode}):\n{output[-4000:]}", field="tool")
    return output
