"""Options and helpers every command shares: store, model, trust, settings file, error exit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from modelfn.config import Settings
    from modelfn.errors import ModelfnError

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store: a path, file://… or s3://bucket/prefix [env MODELFN_STORE_URL]"),
]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model name in the store [env MODELFN_MODEL_NAME]")]
VersionOpt = Annotated[
    str | None, typer.Option("--version", "-v", help="Integer version or 'latest' [env MODELFN_MODEL_VERSION]")
]
TrustOpt = Annotated[
    list[str] | None,
    typer.Option("--trust", help="Trusted public key (PEM path); repeat for several [env MODELFN_TRUSTED_KEYS]"),
]
CustomCodeOpt = Annotated[
    bool | None,
    typer.Option(
        "--allow-custom-code/--no-custom-code",
        help="Serve bundles carrying Python code (trusted signers only) [env MODELFN_ALLOW_CUSTOM_CODE]",
    ),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Settings file (TOML or JSON) [env MODELFN_CONFIG]")]


def load_settings(config: Path | None = None, trust: list[str] | None = None, **explicit: Any) -> Settings:
    """Settings from flags (None = not given), then ``MODELFN_*`` variables, then the settings file."""
    from modelfn.config import Settings

    if trust:
        explicit["trusted_keys"] = tuple(trust)
    return Settings.load(config_file=str(config) if config else None, **explicit)


def fail(exc: ModelfnError) -> typer.Exit:
    """Print the error's message in red on stderr; the caller raises the returned exit (code 2)."""
    typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)
