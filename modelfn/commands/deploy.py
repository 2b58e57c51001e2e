"""`modelfn deploy`: render a target's infrastructure from one settings file, validate it, deploy it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelfn.commands._options import fail


def deploy(
    target: Annotated[str, typer.Option("--target", "-t", help="lambda (serverless.yml), sam, knative or k8s")],
    config: Annotated[Path, typer.Option("--config", "-c", help="Deploy settings file (TOML)")] = Path(
        "modelfn-deploy.toml"
    ),
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Build directory [build/deploy/TARGET]")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render and validate offline, print what would be deployed")
    ] = False,
    canary: Annotated[
        int | None, typer.Option("--canary", min=1, max=99, help="Shift PERCENT of traffic first, roll back on alarms")
    ] = None,
    snapstart: Annotated[
        bool | None, typer.Option("--snapstart/--no-snapstart", help="Lambda SnapStart (Python 3.12+ runtimes)")
    ] = None,
    check_model: Annotated[
        bool | None,
        typer.Option(
            "--check-model/--no-check-model",
            help="Verify the stored model's signature with the trusted keys first [on for real deploys]",
        ),
    ] = None,
    infra: Annotated[Path | None, typer.Option("--infra", help="Template directory [infra/ of this checkout]")] = None,
) -> None:
    """Render infra for --target from the settings file into a build directory, then deploy it (or --dry-run)."""
    import dataclasses

    from modelfn.deploy.model_check import IMAGE_DECODER, check_published_model, needs_image_decoder
    from modelfn.deploy.render import INFRA_DIR, render
    from modelfn.deploy.run import deploy as run_deploy
    from modelfn.deploy.run import preflight
    from modelfn.deploy.settings import load_deploy_settings, parse_target
    from modelfn.deploy.validate import validate
    from modelfn.errors import ModelfnError

    try:
        chosen = parse_target(target)
        settings = load_deploy_settings(config, canary_percent=canary, snapstart=snapstart)
        settings.check(chosen)
        infra_dir = infra or INFRA_DIR
        if not dry_run:
            settings = preflight(settings, chosen, infra_dir)
        if check_model if check_model is not None else not dry_run:
            statement = check_published_model(settings)
            typer.echo(f"model {statement.name} v{statement.version} verifies with the trusted keys")
            if chosen in ("lambda", "sam") and needs_image_decoder(settings, statement):
                settings = dataclasses.replace(settings, extras=(*settings.extras, IMAGE_DECODER))
                typer.echo(f"the model declares image preprocessing: {IMAGE_DECODER} goes into the Lambda zip")
        build = out or Path("build") / "deploy" / target
        rendered = render(settings, chosen, build, infra_dir=infra_dir)
        for path in rendered.files:
            typer.echo(f"rendered {path}")
        if target == "lambda":
            from modelfn.deploy.targets.serverless import ensure_artifact

            typer.echo(f"lambda zip {ensure_artifact(rendered, settings)}")
        for line in validate(rendered):
            typer.echo(f"ok  {line}")
        typer.echo(("would deploy:" if dry_run else "deploying:") + "".join(f"\n  {s}" for s in rendered.summary))
        if not dry_run:
            typer.echo(run_deploy(rendered, settings))
    except ModelfnError as exc:
        raise fail(exc) from exc
