"""Offline checks of rendered infrastructure, with the tools the platforms' own users run.

SAM: cfn-lint (which also runs the SAM transform). Kubernetes: kubernetes-validate against the
cluster schema in strict mode; for the Knative Service, whose schema does not ship, its revision's
PodSpec is checked against the core PodSpec. Serverless: ``osls package`` (packaging needs no
credentials). A failure is a ``DeployError`` carrying the tool's own message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelfn.deploy.render import Rendered
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


def validate(rendered: Rendered) -> list[str]:
    """Run the target's offline checks; return one line per check passed."""
    if rendered.target == "sam":
        return [_cfn_lint(path) for path in rendered.files]
    if rendered.target in ("k8s", "knative"):
        return [line for path in rendered.files for line in _kubernetes(path)]
    from modelfn.deploy.targets.serverless import package_offline

    return [package_offline(rendered)]


def _cfn_lint(template: Path) -> str:
    run_tool([find_tool("cfn-lint"), str(template)], what=f"cfn-lint {template.name}")
    return f"cfn-lint: {template} passes"


def _kubernetes(path: Path) -> list[str]:
    import yaml

    from modelfn.deploy.targets.knative import pod_spec_as_pod

    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    checked = [
        pod_spec_as_pod(doc) if doc["apiVersion"].startswith("serving.knative.dev/") else doc for doc in documents
    ]
    tool = find_tool("kubernetes-validate")
    output = run_tool(
        [tool, "--strict", "-"], what=f"kubernetes-validate {path.name}", stdin=yaml.safe_dump_all(checked)
    )
    problems = [line for line in output.splitlines() if not line.startswith("INFO")]
    if problems:  # a kind without a schema is only a warning to the tool; here nothing goes unchecked
        raise DeployError(f"kubernetes-validate {path.name}:\n" + "\n".join(problems), field="tool")
    return [
        f"kubernetes-validate --strict: {doc['kind']}/{doc['metadata']['name']}"
        + (" (Knative revision PodSpec as core PodSpec)" if doc is not orig else "")
        for doc, orig in zip(checked, documents, strict=True)
    ]
