"""modelfn: a trained model in, a small signed serverless inference function out.

Importing the package is cheap on purpose: the run-time handlers import it, so nothing heavy
lives here. `modelfn.package` is the build-time entry point and imports its adapters lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelfn._version import __version__

__all__ = ["__version__", "package"]

if TYPE_CHECKING:
    from modelfn.bundle.manifest import Manifest


def package(model: Any, sample: Any, out_dir: Any, **options: Any) -> Manifest:
    """Normalize a model object or file into an unsigned bundle directory (see `modelfn.packaging`)."""
    from modelfn.packaging import package as _package

    return _package(model, sample, out_dir, **options)
