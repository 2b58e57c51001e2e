"""Real deployments: the platform's own tool (``osls deploy``, ``sam deploy``, ``kubectl apply``).

``preflight`` runs before anything is rendered: the tool must be installed and credentials must
be present (AWS credentials for the Lambda targets, a current kubectl context for the cluster
targets), so a missing piece is one clear error instead of a half-finished deployment.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from modelfn.deploy.render import Rendered
from modelfn.deploy.settings import LAMBDA_TARGETS, DeploySettings, Target
from modelfn.deploy.tools import DeployError, find_tool, run_tool

_TOOLS: dict[str, str] = {"sam": "sam", "knative": "kubectl", "k8s": "kubectl"}


def preflight(settings: DeploySettings, target: Target, infra: Path) -> DeploySettings:
    """Check tool and credentials; returns the settings completed from the platform (Knative canary base)."""
    if target == "lambda":
        from modelfn.deploy.targets.serverless import OSLS

        if not (infra.parent / OSLS).exists():
            raise DeployError(
                f"osls is not installed in {infra.parent}: run `npm ci` there (Node.js 18+)", field="tool"
            )
    else:
        find_tool(_TOOLS[target])
    if target in LAMBDA_TARGETS:
        _require_aws_credentials(settings)
        return settings
    kubectl = find_tool("kubectl")
    try:
        context = run_tool([kubectl, "config", "current-context"], what="kubectl config current-context")
    except DeployError as exc:
        raise DeployError(
            "no Kubernetes context: kubectl has no current context (set KUBECONFIG or `kubectl config use-context`)",
            field="credentials",
        ) from exc
    if target == "knative" and settings.canary_percent and not settings.previous_revision:
        jsonpath = "-o=jsonpath={.status.latestReadyRevisionName}"
        ksvc = [kubectl, "--context", context.strip(), "-n", settings.namespace, "get", "ksvc", settings.name, jsonpath]
        previous = run_tool(ksvc, what=f"reading the current revision of {settings.name}").strip()
        if not previous:
            raise DeployError(f"{settings.name} has no ready revision to keep traffic on", field="previous_revision")
        settings = dataclasses.replace(settings, previous_revision=previous)
    return settings


def deploy(rendered: Rendered, settings: DeploySettings) -> str:
    """Run the target's deploy tool on the rendered files; returns its output."""
    if rendered.target == "sam":
        from modelfn.deploy.lambda_package import build_lambda_zip
        from modelfn.deploy.targets.sam import CODE_ZIP

        if not settings.artifact:
            build_lambda_zip(
                rendered.out_dir / CODE_ZIP, python_version=settings.python, arch=settings.arch, extras=settings.extras
            )
        command = [
            find_tool("sam"), "deploy", "--template-file", str(rendered.files[0]), "--stack-name", settings.name,
            "--capabilities", "CAPABILITY_IAM", "--resolve-s3", "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
        ]  # fmt: skip
        if settings.region:
            command += ["--region", settings.region]
        return run_tool(command, what="sam deploy", cwd=rendered.out_dir, env={"SAM_CLI_TELEMETRY": "0"})
    if rendered.target == "lambda":
        from modelfn.deploy.targets.serverless import ensure_artifact, osls_command

        ensure_artifact(rendered, settings)
        argv, project, env = osls_command(rendered, "deploy")
        return run_tool(argv, what="osls deploy", cwd=project, env=env)
    kubectl = find_tool("kubectl")
    return "\n".join(
        run_tool([kubectl, "apply", "-f", str(path)], what=f"kubectl apply {path.name}") for path in rendered.files
    )


def _require_aws_credentials(settings: DeploySettings) -> None:
    import boto3
    import botocore.exceptions

    try:
        session = boto3.Session(region_name=settings.region or None)
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise DeployError(f"cannot read AWS credentials: {exc}", field="credentials") from exc
    if credentials is None:
        raise DeployError(
            "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or run `aws sso login`)",
            field="credentials",
        )
    if not session.region_name:
        raise DeployError("no AWS region: set `region` in the deploy settings or AWS_REGION", field="region")
