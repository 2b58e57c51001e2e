"""What the client compatibility routes (TF Serving, TorchServe, Keras REST) share.

Each protocol module only translates its wire format: requests become ``/predict``'s feeds
(``processed.request_feeds``: tensors, or images and named features when the bundle declares
processing), checked and run by the same code as every other route, and results come back per
row or as top-k class probabilities (``modelfn.processing.outputs``). Image bytes are refused with
a 415 unless the bundle declares image preprocessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelfn.errors import UnprocessableInput, UnsupportedMediaType
from modelfn.serving import codecs
from modelfn.serving.inference import run_model
from modelfn.serving.processed import is_image, refuse_image, request_feeds

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest
    from modelfn.loader import LoadedBundle

__all__ = ["is_image", "refuse_image", "rows", "run_columns", "run_feeds", "text_instances"]


def run_columns(bundle: LoadedBundle, request: Mapping[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """``{"instances": ...}`` or ``{"inputs": ...}`` through /predict's checks and one model run."""
    return run_model(bundle.model, request_feeds(request, bundle.manifest))


def run_feeds(bundle: LoadedBundle, feeds: Mapping[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """Feeds already built (images, CSV records) through the model's checks and one run."""
    return run_model(bundle.model, feeds)


def rows(results: Mapping[str, npt.NDArray[Any]]) -> list[Any]:
    """One entry per row: the value for a single output, else an object keyed by output name."""
    data = {name: _per_row(array) for name, array in results.items()}
    if len(data) == 1:
        return next(iter(data.values()))
    count = min(len(value) for value in data.values())
    return [{name: value[i] for name, value in data.items()} for i in range(count)]


def _per_row(array: npt.NDArray[Any]) -> list[Any]:
    """Row values orjson serializes: sub-arrays, floats as numpy scalars (short text), other scalars as Python."""
    if array.ndim > 1 or array.dtype.kind in "OUS":
        data = codecs.json_data(array, flat=False)
        return data if isinstance(data, list) else list(data)
    if array.dtype.kind == "f":
        return list(codecs.json_data(array, flat=False))
    return list(array.tolist())


def text_instances(data: bytes, manifest: Manifest, *, field: str) -> dict[str, Any]:
    """A plain-text body as one row of a single-string-input model (TorchServe's text handlers)."""
    specs = manifest.inputs
    if len(specs) != 1 or specs[0].dtype != "string":
        raise UnsupportedMediaType(
            f"this model takes {[f'{s.name}: {s.dtype}' for s in specs]}, not text: send JSON", field=field
        )
    try:
        return {"instances": [data.decode()]}
    except UnicodeDecodeError as exc:
        raise UnprocessableInput(f"{field} is not UTF-8 text", field=field) from exc
