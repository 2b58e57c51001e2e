"""Read a model's tensor schema and opsets from ONNX bytes, for the manifest.

Build time only (imports ``onnx`` lazily): the manifest records what the graph says, so the run
time can check requests without opening the graph. Only plain tensors are allowed at the edges;
sequences and maps (e.g. a scikit-learn ZipMap) have no place in the wire protocols.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from modelfn.bundle.manifest import TensorSpec
from modelfn.errors import PackagingError

# onnx.TensorProto.DataType values -> manifest DType names
ONNX_ELEM_TYPES: dict[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
}

DEFAULT_DOMAIN = "ai.onnx"
"""The name the manifest (and the run-time guard) uses for ONNX's empty default domain."""


@dataclasses.dataclass(frozen=True)
class OnnxSchema:
    """The graph's inputs and outputs (``-1`` for dynamic dims) and its opset per domain."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: dict[str, int]


def read_schema(onnx_bytes: bytes) -> OnnxSchema:
    """Parse ONNX bytes into an ``OnnxSchema``; raise ``PackagingError`` for non-tensor edges."""
    import onnx

    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception as exc:  # protobuf's DecodeError, onnx's ValueError
        raise PackagingError(f"the exported artifact is not a valid ONNX model: {exc}") from exc
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [_spec(v, "input") for v in graph.input if v.name not in initializers]
    outputs = [_spec(v, "output") for v in graph.output]
    if not inputs or not outputs:
        raise PackagingError("the ONNX graph must have at least one input and one output")
    opset = {(o.domain or DEFAULT_DOMAIN): int(o.version) for o in model.opset_import}
    return OnnxSchema(inputs=inputs, outputs=outputs, opset=opset)


def _spec(value: Any, role: str) -> TensorSpec:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise PackagingError(
            f"{role} {value.name!r} is a {kind or 'untyped value'}, not a tensor; only tensors can be served"
            " (for scikit-learn classifiers, probabilities must be a plain tensor: zipmap=False)",
            field=value.name,
        )
    tensor = value.type.tensor_type
    dtype = ONNX_ELEM_TYPES.get(tensor.elem_type)
    if dtype is None:
        raise PackagingError(
            f"{role} {value.name!r} has ONNX element type {tensor.elem_type}, which the manifest cannot describe;"
            f" supported: {', '.join(sorted(set(ONNX_ELEM_TYPES.values())))}",
            field=value.name,
        )
    if not tensor.HasField("shape"):
        raise PackagingError(f"{role} {value.name!r} has no shape (not even a rank); cannot describe it")
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim]
    return TensorSpec(name=value.name, dtype=dtype, shape=shape)  # type: ignore[arg-type]
