"""``--target lambda``: the root serverless.yml (open-source Serverless Framework CLI, ``osls``).

serverless.yml takes every deploy-specific value as a parameter; this renders them into
``params.json`` beside the Lambda zip, and runs ``osls package`` (dry run, offline) or
``osls deploy`` from the directory holding serverless.yml and its node_modules.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelfn.deploy.render import Rendered
from modelfn.deploy.settings import DeploySettings, s3_parts
from modelfn.errors import ConfigError

CODE_ZIP = "modelfn-lambda.zip"
PARAMS_FILE = "params.json"
OSLS = Path("node_modules") / ".bin" / "osls"
PACKAGE_DIR = "osls-package"
"""Where `osls package` writes (a directory named .serverless would be taken for the default and ignored)."""


def render(settings: DeploySettings, infra: Path, out_dir: Path) -> Rendered:
    """Write ``out_dir/params.json``: the serverless.yml parameters for these settings."""
    project = infra.parent
    if not (project / "serverless.yml").is_file():
        raise ConfigError(f"serverless.yml not found in {project}", field="infra")
    artifact = Path(settings.artifact).resolve() if settings.artifact else (out_dir / CODE_ZIP).resolve()
    params = lambda_params(settings, artifact)
    document = {"project": str(project), "service": settings.name, "region": settings.region, "params": params}
    path = out_dir / PARAMS_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    summary = (
        f"service {settings.name}: serverless.yml in {project} ({params['runtime']} {params['architecture']}, "
        f"HTTP {settings.memory_mb} MB / {settings.timeout_s} s, reserved {settings.max_scale}, "
        f"provisioned {settings.min_scale})",
        f"model {settings.model} {settings.version} from {settings.model_url} "
        f"({len(settings.trusted_keys)} trusted key(s))",
        f"storage events: {settings.input_url} -> {settings.output_url}",
        f"code: {artifact}",
    )
    return Rendered(target="lambda", out_dir=out_dir, files=(path,), summary=summary)


def lambda_params(settings: DeploySettings, artifact: Path) -> dict[str, str]:
    """serverless.yml's ``${param:…}`` values (its header lists them)."""
    model_bucket, model_prefix = s3_parts(settings.model_url, "model_url")
    in_bucket, in_prefix = s3_parts(settings.input_url, "input_url")
    out_bucket, out_prefix = s3_parts(settings.output_url, "output_url")
    return {
        "artifact": str(artifact),
        "runtime": f"python{settings.python}",
        "architecture": settings.arch,
        "modelBucket": model_bucket,
        "modelPrefix": model_prefix.rstrip("/"),
        "modelName": settings.model,
        "modelVersion": settings.version,
        "trustedKeys": "".join(settings.trusted_keys),
        "kmsKeyArn": settings.kms_key_arn,
        "triggerBucket": in_bucket,
        "triggerPrefix": in_prefix,
        "outputBucket": out_bucket,
        "outputPrefix": out_prefix.rstrip("/"),
        "httpMemory": str(settings.memory_mb),
        "httpTimeout": str(settings.timeout_s),
        "httpReservedConcurrency": str(settings.max_scale),
        "httpProvisionedConcurrency": str(settings.min_scale),
    }


def osls_command(rendered: Rendered, action: str) -> tuple[list[str], Path, dict[str, str]]:
    """(argv, working directory, extra environment) for ``osls package`` or ``osls deploy``."""
    from modelfn.deploy.tools import DeployError

    document = json.loads((rendered.out_dir / PARAMS_FILE).read_text())
    project = Path(document["project"])
    osls = project / OSLS
    if not osls.exists():
        raise DeployError(f"osls is not installed in {project}: run `npm ci` there (Node.js 18+)", field="tool")
    argv = [str(osls), action, "--stage", "prod"]
    for name, value in document["params"].items():
        if value != "":  # osls refuses an empty --param; serverless.yml's default (also empty) applies
            argv += ["--param", f"{name}={value}"]
    if document["region"]:
        argv += ["--region", document["region"]]
    if action == "package":
        argv += ["--package", str(rendered.out_dir / PACKAGE_DIR)]
    env = {"MODELFN_SERVICE": document["service"], "SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off"}
    return argv, project, env


def ensure_artifact(rendered: Rendered, settings: DeploySettings) -> Path:
    """The Lambda zip the parameters name: built with ``build_lambda_zip`` unless it exists already."""
    from modelfn.deploy.lambda_package import build_lambda_zip

    artifact = Path(json.loads((rendered.out_dir / PARAMS_FILE).read_text())["params"]["artifact"])
    if not artifact.is_file():
        build_lambda_zip(artifact, python_version=settings.python, arch=settings.arch, extras=settings.extras)
    return artifact


def package_offline(rendered: Rendered) -> str:
    """``osls package`` into ``out_dir/osls-package`` (no credentials needed); the zip must exist."""
    from modelfn.deploy.tools import run_tool

    argv, project, env = osls_command(rendered, "package")
    run_tool(argv, what="osls package", cwd=project, env=env)
    return f"osls package: {rendered.out_dir / PACKAGE_DIR} written"
