"""Render one target's infrastructure from the deploy settings into a build directory.

The templates are the files under ``infra/`` (each valid and linted on its own); a renderer loads
them as data, fills in the settings and adds what only some deployments need (canary rollout,
SnapStart, GPU, JWT auth), then writes plain YAML. Nothing is rendered before the settings pass
``DeploySettings.check`` for the target.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from modelfn.deploy.settings import DeploySettings, Target
from modelfn.errors import ConfigError

RENDERERS: dict[str, str] = {
    "lambda": "modelfn.deploy.targets.serverless:render",
    "sam": "modelfn.deploy.targets.sam:render",
    "knative": "modelfn.deploy.targets.knative:render",
    "k8s": "modelfn.deploy.targets.k8s:render",
}
INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"
"""The templates of a source checkout (``infra/`` beside the ``modelfn`` package)."""
HEADER = "# Rendered by `modelfn deploy --target {target}` from {source}; edit the settings file, not this file.\n"


@dataclasses.dataclass(frozen=True)
class Rendered:
    """What a renderer wrote, and the lines that say what would be deployed."""

    target: Target
    out_dir: Path
    files: tuple[Path, ...]
    summary: tuple[str, ...]


Renderer = Callable[[DeploySettings, Path, Path], Rendered]


def render(settings: DeploySettings, target: Target, out_dir: Path, *, infra_dir: Path | None = None) -> Rendered:
    """Check the settings for ``target``, then write its files under ``out_dir``."""
    settings.check(target)
    infra = infra_dir or INFRA_DIR
    if not (infra / "sam" / "template.yaml").is_file():
        raise ConfigError(
            f"infrastructure templates not found under {infra}: run from a modelfn checkout or pass --infra DIR",
            field="infra",
        )
    module_name, _, attr = RENDERERS[target].partition(":")
    renderer: Renderer = getattr(importlib.import_module(module_name), attr)
    # Absolute, so tools run in other directories (osls in the project's) still find it; renderers create
    # it when they write, so a renderer that refuses leaves nothing behind.
    return renderer(settings, infra, out_dir.resolve())


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    import yaml

    return yaml.safe_load(path.read_text())


def write_yaml(path: Path, documents: Iterable[Any], *, target: str, source: str) -> Path:
    """Write documents as one multi-document YAML file with a header naming its origin."""
    import yaml

    body = yaml.safe_dump_all(list(documents), sort_keys=False, default_flow_style=False, width=120)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER.format(target=target, source=source) + body)
    return path


def replace_strings(node: Any, old: str, new: str) -> Any:
    """A copy of ``node`` with every string exactly equal to ``old`` replaced (names, labels, selectors)."""
    if isinstance(node, dict):
        return {key: replace_strings(value, old, new) for key, value in node.items()}
    if isinstance(node, list):
        return [replace_strings(value, old, new) for value in node]
    return new if node == old else node
