"""One image in (``.jpg``/``.jpeg``/``.png``/``.webp``), one JSON prediction out, for bundles that declare image
preprocessing.

The image goes through the bundle's signed pipeline (``modelfn.processing.images``: size limits,
decode, resize, crop, normalize) and the model, and the result is::

    {"label": "cat", "predictions": [{"label": "cat", "probability": 0.91}, ...], "outputs": {"output": [...]}}

``label`` and ``predictions`` (top-k, the bundle's ``top_k``) are there when an output holds class
scores (declared output processing, or labels the scores can be matched to); ``outputs`` holds every
raw output for this image. A bundle without image preprocessing refuses images (415), and the
refusal is recorded like any data error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelfn.batch.tabular import output_order
from modelfn.errors import PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from modelfn.batch.formats import ScoreContext
    from modelfn.batch.sink import Sink
    from modelfn.bundle.manifest import Manifest


def score(data: Iterator[bytes], sink: Sink, ctx: ScoreContext) -> int:
    """Decode, predict and write one image's answer; returns 1 (the image is the row)."""
    from modelfn.processing.images import images_to_tensor

    processing = ctx.manifest.processing
    spec = processing.image if processing is not None else None
    if spec is None:
        raise UnsupportedMediaType(
            f"model {ctx.manifest.name!r} declares no image preprocessing, so it cannot read images;"
            " package it with --preprocess image:...",
            field="key",
        )
    with ctx.timed("read"):
        blob = _bounded(data, spec.max_bytes)
        tensor = images_to_tensor([blob], spec, field="image")
    results = ctx.predict({spec.input: tensor}, first_row=1)
    with ctx.timed("write"):
        sink.write(_answer(results, ctx.manifest))
    return 1


def _bounded(data: Iterator[bytes], limit: int) -> bytes:
    """The whole object, refused (413) as soon as it passes the bundle's ``max_bytes``."""
    parts: list[bytes] = []
    size = 0
    for block in data:
        size += len(block)
        if size > limit:
            raise PayloadTooLarge(f"the image is over the model's limit of {limit} bytes", field="image")
        parts.append(block)
    return b"".join(parts)


def _answer(results: dict[str, Any], manifest: Manifest) -> bytes:
    import orjson

    from modelfn.processing.outputs import TOP_K, class_scores, ranked

    answer: dict[str, Any] = {}
    scores = class_scores(results, manifest, field="image")
    if scores is not None:
        declared = manifest.processing.output if manifest.processing is not None else None
        top = ranked(scores, declared.top_k if declared is not None else TOP_K)[0]
        answer["label"] = top[0][0]
        answer["predictions"] = [{"label": label, "probability": probability} for label, probability in top]
    answer["outputs"] = {name: results[name][0] for name in output_order(results, manifest)}
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2) + b"\n"
