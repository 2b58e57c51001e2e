"""Adaptive batching in container mode: concurrent requests for one model merged into one model run.

Every route that runs the model ends in ``Model.predict``, so batching wraps the served model
(``batched_bundle``) and no route changes; ``modelfn.serving.batcher`` does the queueing. Only
models whose every input and output has a dynamic axis 0 (and whose inputs share it) are batched;
others are served unbatched, with a log line saying why. Lambda never batches (one request per
invocation).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelfn.serving.batcher import Batcher
from modelfn.serving.metrics import METRICS, Metrics

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest
    from modelfn.config import Settings
    from modelfn.loader import LoadedBundle
    from modelfn.runtime.base import Model

__all__ = ["BatchedModel", "Batcher", "batched_bundle", "batching_off_reason"]
logger = logging.getLogger("modelfn.serving.batching")


def batching_off_reason(model: Model) -> str | None:
    """Why ``model`` cannot be batched (None when it can): every input and output needs a dynamic axis 0."""
    manifest = model.manifest
    if manifest.runtime != "onnx":
        return f"runtime {manifest.runtime!r}: custom code may not treat rows independently"
    for kind, specs in (("input", manifest.inputs), ("output", manifest.outputs)):
        for spec in specs:
            if not spec.shape or spec.shape[0] != -1:
                return f"{kind} {spec.name!r} has shape {spec.shape}, no dynamic batch dimension"
    session = getattr(model, "_session", None)  # the graph's symbolic dims say which inputs share axis 0
    if session is not None and len(manifest.inputs) > 1:
        dims = {i.name: i.shape[0] if i.shape else 0 for i in session.get_inputs()}
        if len({str(d) for d in dims.values()}) != 1:
            return f"the inputs' batch dimensions {dims} differ, so they cannot be concatenated together"
    return None


def batched_bundle(
    bundle: LoadedBundle, settings: Settings, metrics: Metrics = METRICS
) -> tuple[LoadedBundle, Batcher | None]:
    """``bundle`` with its model behind a ``Batcher`` when settings ask and the model allows; else as it was."""
    if settings.max_batch_size <= 1:
        return bundle, None
    reason = batching_off_reason(bundle.model)
    if reason is not None:
        logger.warning("adaptive batching is off for model %s: %s", bundle.manifest.name, reason)
        return bundle, None
    batcher = Batcher(
        bundle.model, max_batch_size=settings.max_batch_size, max_delay_ms=settings.max_batch_delay_ms, metrics=metrics
    )
    logger.info(
        "adaptive batching on for model %s: up to %d rows, %g ms",
        bundle.manifest.name, settings.max_batch_size, settings.max_batch_delay_ms,
    )  # fmt: skip
    return dataclasses.replace(bundle, model=BatchedModel(bundle.model, batcher)), batcher


class BatchedModel:
    """The served model with ``predict`` going through the batcher; everything else is the model's own."""

    def __init__(self, model: Model, batcher: Batcher) -> None:
        self.model = model
        self.batcher = batcher

    @property
    def manifest(self) -> Manifest:
        """The signed manifest."""
        return self.model.manifest

    @property
    def output_names(self) -> list[str]:
        """Every output the model can return."""
        return self.model.output_names

    def predict(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        """Validated here, run merged with concurrent requests."""
        return self.batcher.predict(feeds, outputs)

    def warm_up(self) -> None:
        """The model's own warm-up (unbatched)."""
        self.model.warm_up()

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "batcher"):  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)
