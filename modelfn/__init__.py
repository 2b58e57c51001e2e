"""modelfn: a trained model in, a small signed serverless inference function out.

Importing the package is cheap on purpose: the run-time handlers import it, so nothing heavy
lives here. `modelfn.package` is the build-time entry point and imports its adapters lazily;
`modelfn.load` is the run-time one (verify, then load) and imports the loader only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelfn._version import __version__

__all__ = ["Predictor", "__version__", "load", "package"]

if TYPE_CHECKING:
    from collections.abc import Sequence
    from os import PathLike

    from modelfn.bundle.manifest import Manifest
    from modelfn.predictor import Predictor


def package(model: Any, sample: Any, out_dir: Any, **options: Any) -> Manifest:
    """Normalize a model object or file into an unsigned bundle directory (see `modelfn.packaging`)."""
    from modelfn.packaging import package as _package

    return _package(model, sample, out_dir, **options)


def load(
    store_url: str | PathLike[str] | None = None,
    name: str | None = None,
    *,
    trust: str | PathLike[str] | Sequence[str | PathLike[str]] | None = None,
    version: int | str | None = None,
    **settings: Any,
) -> Predictor:
    """Fetch, verify and load a signed model; a ``Predictor`` with ``.predict`` (see `modelfn.predictor`)."""
    from modelfn.predictor import load as _load

    return _load(store_url, name, trust=trust, version=version, **settings)


def __getattr__(name: str) -> Any:
    """``modelfn.Predictor`` without importing the loader on ``import modelfn``."""
    if name == "Predictor":
        from modelfn.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'modelfn' has no attribute {name!r}")
