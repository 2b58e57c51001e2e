"""Offline checks of rendered infrastructure, with the tools the platforms' own users run.

SAM: cfn-lint (which also runs the SAM transform). Kubernetes: kubernetes-validate against the
cluster schema in strict mode; for the Knative Service, whose schema does not ship, its revision's
PodSpec is checked against the core PodSpec. Serverless: ``osls package`` (packaging needs no
credentials). A failure is a ``DeployError`` carrying the tool's own message.
"""

from __future__ import annotations

from pathlib import Path

from modelfn.deploy.render import Rendered
from modelfn.deploy.tools import DeployError, find_tool, run_tool


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
