"""Offline graph optimization: fold constants and fuse nodes once at build time, not at every cold start.

onnxruntime optimizes each graph when a session is created; saving the optimized graph into the
bundle moves that work out of the Lambda INIT phase. Only the portable levels are offered:
``basic`` (constant folding, redundant-node removal, semantics-preserving fusions, standard ops
only) and ``extended`` (adds fusions into onnxruntime contrib ops, domain ``com.microsoft``).
The ``all`` level adds layout transforms tuned to the building machine's CPU (NCHWc blocks),
which can break or slow a model on another machine, so it is refused. The caller checks parity
of the result against the native outputs like any other artifact. Build time only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from modelfn.errors import PackagingError

OptimizationLevel = Literal["basic", "extended"]
LEVELS: tuple[OptimizationLevel, ...] = ("basic", "extended")
HARDWARE_SPECIFIC = ("all", "layout", "99")


def optimize_onnx(onnx_bytes: bytes, level: OptimizationLevel | str = "basic") -> bytes:
    """The model after onnxruntime's ``level`` graph optimizations, serialized offline (same inputs/outputs)."""
    import onnxruntime as ort

    chosen = _level(level)
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        if chosen == "basic"
        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    )
    options.log_severity_level = 3  # errors only: the optimizer reports every skipped fusion as a warning
    with tempfile.TemporaryDirectory(prefix="modelfn-optimize-") as tmp:
        target = Path(tmp, "optimized.onnx")
        options.optimized_model_filepath = str(target)
        try:
            ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise PackagingError(f"optimize {chosen}: onnxruntime cannot load the model: {exc}") from exc
        if not target.is_file():
            raise PackagingError(f"optimize {chosen}: onnxruntime wrote no optimized model")
        leftovers = sorted(p.name for p in Path(tmp).iterdir() if p != target)
        if leftovers:
            raise PackagingError(
                f"optimize {chosen}: onnxruntime wrote external data ({', '.join(leftovers)}); a bundle holds one"
                " self-contained model.onnx"
            )
        optimized = drop_unused_opsets(target.read_bytes())
    _refuse_unsafe(optimized, chosen)
    return optimized


def drop_unused_opsets(data: bytes) -> bytes:
    """Keep only the opset imports the graph uses (models saved by onnxruntime declare every domain it knows)."""
    from modelfn.adapters.base import import_extra
    from modelfn.adapters.onnx_file import STANDARD_DOMAIN, used_ops

    onnx = import_extra("onnx", extra="onnx")
    model = onnx.load_model_from_string(data)
    used = set(used_ops(model)) | {STANDARD_DOMAIN}
    keep = [o for o in model.opset_import if (o.domain or STANDARD_DOMAIN) in used]
    if len(keep) == len(model.opset_import):
        return data
    del model.opset_import[:]
    model.opset_import.extend(keep)
    pruned: bytes = model.SerializeToString()
    return pruned


def _level(level: str) -> OptimizationLevel:
    normal = str(level).strip().lower()
    for known in LEVELS:
        if normal == known:
            return known
    if normal in HARDWARE_SPECIFIC:
        raise PackagingError(
            f"optimize level {level!r} adds layout transforms specific to this machine's CPU, so the bundle would"
            f" not be portable; choose one of {', '.join(LEVELS)}",
            field="optimize",
        )
    raise PackagingError(f"optimize level must be one of {', '.join(LEVELS)}, got {level!r}", field="optimize")


def _refuse_unsafe(data: bytes, level: str) -> None:
    """The optimized artifact passes the run-time guard (no external data, a real graph)."""
    from modelfn.errors import UnsafeBundleError
    from modelfn.runtime.onnx_guard import inspect_onnx, refuse_external_data

    try:
        refuse_external_data(inspect_onnx(data, artifact="model.onnx"), artifact="model.onnx")
    except UnsafeBundleError as exc:
        raise PackagingError(f"optimize {level} produced an unsafe artifact: {exc.message}") from exc
