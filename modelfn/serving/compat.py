"""What the client compatibility routes (TF Serving, TorchServe, Keras REST) share.

Each protocol module only translates its wire format: requests become ``/predict``'s named
columns (``predict._columns``), checked and run by the same code as every other route, and
results come back per row or as top-k class probabilities. Image bytes are refused with a 415
until a bundle declares image preprocessing: the model takes tensors, not encoded pictures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelfn.errors import UnprocessableInput, UnsupportedMediaType
from modelfn.serving import codecs
from modelfn.serving.inference import run_model
from modelfn.serving.predict import _columns

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest
    from modelfn.loader import LoadedBundle

TOP_K = 5
"""Classes reported per row, as TorchServe's image classifier and the Keras REST API example do."""
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def run_columns(bundle: LoadedBundle, request: Mapping[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """``{"instances": ...}`` or ``{"inputs": ...}`` through /predict's checks and one model run."""
    manifest = bundle.manifest
    columns = _columns(request, manifest)
    dtypes = {spec.name: spec.dtype for spec in manifest.inputs}
    feeds = {name: codecs.as_input(value, dtypes.get(name, "float32"), field=name) for name, value in columns.items()}
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


def is_image(data: bytes, content_type: str | None) -> bool:
    """True for ``image/*`` media types and for bytes that start like a JPEG, PNG, GIF, BMP, TIFF or WebP file."""
    if content_type and content_type.split(";", 1)[0].strip().lower().startswith("image/"):
        return True
    return data.startswith(IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def refuse_image(field: str) -> UnsupportedMediaType:
    """The 415 for an encoded image sent to a bundle that cannot decode one."""
    return UnsupportedMediaType(
        "this bundle declares no image preprocessing: send the model's input tensor as JSON", field=field
    )


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


def class_probabilities(
    manifest: Manifest, results: Mapping[str, npt.NDArray[Any]], *, field: str, need_labels: bool = True
) -> tuple[list[Any], npt.NDArray[Any]] | None:
    """(labels, probabilities [rows, classes]) from the class-score output, or None when the model has none.

    The scores are the first float output with one column per label (per class when no labels are
    declared). Scores that already form a distribution are kept; others are treated as logits and
    softmaxed, as TorchServe's image classifier does.
    """
    import numpy as np

    labels: list[Any] | None = list(manifest.labels) if manifest.labels else None
    if labels is None and need_labels:
        return None
    for array in results.values():
        if array.dtype.kind != "f" or array.ndim != 2 or (labels is not None and array.shape[1] != len(labels)):
            continue
        scores = array.astype(np.float64)
        if not np.isfinite(scores).all():
            raise UnprocessableInput("the model returned non-finite class scores", field=field)
        if not ((scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)):
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores = shifted / shifted.sum(axis=1, keepdims=True)
        return (labels if labels is not None else list(range(array.shape[1]))), scores
    return None


def top_k(labels: list[Any], probabilities: npt.NDArray[Any], k: int = TOP_K) -> list[list[tuple[Any, float]]]:
    """Per row, the ``k`` most probable (label, probability) pairs, most probable first."""
    order = (-probabilities).argsort(axis=1, kind="stable")[:, :k]
    return [[(labels[int(i)], float(row[int(i)])) for i in idx] for row, idx in zip(probabilities, order, strict=True)]
