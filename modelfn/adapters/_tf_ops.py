"""TensorFlow graph pieces tf2onnx does not handle by itself (for ``keras_tf`` and ``_tf_graph``).

A traced Keras model captures the state of adapted preprocessing layers (``Normalization``'s mean
and variance) as plain tensors; tf2onnx's ``from_function`` would turn each into an extra graph
input, so they are frozen first. ``Bucketize`` (Keras ``Discretization``) has no tf2onnx handler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from modelfn.adapters.base import import_extra

EXTRA = "tensorflow"


def freeze_captures(function: Any, specs: Sequence[Any]) -> Any:
    """``function`` with captured tensors as constants (tf2onnx would make them graph inputs).

    Adapted preprocessing layers (``Normalization``'s mean and variance) and restored SavedModels hold
    plain tensors that a traced function captures; variables are frozen by tf2onnx itself.
    """
    tf = import_extra("tensorflow", extra=EXTRA)
    convert = import_extra("tensorflow.python.framework.convert_to_constants", extra=EXTRA)

    concrete = function.get_concrete_function(*specs)
    if all(t.dtype == tf.dtypes.resource for t in concrete.captured_inputs):
        return function
    frozen = convert.convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs
    return tf.function(lambda *tensors: tf.nest.pack_sequence_as(structure, frozen(*tensors)), input_signature=specs)


def bucketize(ctx: Any, node: Any, name: str, args: Any) -> None:
    """TF ``Bucketize`` (Keras ``Discretization``), which tf2onnx lacks: how many boundaries are <= each value."""
    import numpy as np

    onnx = import_extra("onnx", extra=EXTRA)
    builder = import_extra("tf2onnx.graph_builder", extra=EXTRA).GraphBuilder(ctx)
    make_name = import_extra("tf2onnx.utils", extra=EXTRA).make_name

    value = node.input[0]
    wide = ctx.get_dtype(value) == onnx.TensorProto.DOUBLE
    if not wide and ctx.get_dtype(value) != onnx.TensorProto.FLOAT:  # TF compares other types as float
        value = ctx.make_node("Cast", [value], attr={"to": onnx.TensorProto.FLOAT}).output[0]
    bounds = np.asarray(node.get_attr_value("boundaries"), np.float32).astype(np.float64 if wide else np.float32)
    column = builder.make_unsqueeze({"data": value, "axes": [-1]})
    above = ctx.make_node("GreaterOrEqual", [column, ctx.make_const(make_name(f"{name}_bounds"), bounds).output[0]])
    counts = ctx.make_node("Cast", above.output, attr={"to": onnx.TensorProto.INT32})
    shapes, dtypes, outputs = node.output_shapes, node.output_dtypes, node.output
    ctx.remove_node(node.name)
    builder.make_reduce_sum(
        {"data": counts.output[0], "axes": [-1], "keepdims": 0, "outputs": outputs},
        name=name,
        shapes=shapes,
        dtypes=dtypes,
    )


CUSTOM_OPS: dict[str, tuple[Callable[..., None], list[Any]]] = {"Bucketize": (bucketize, [])}
"""TF ops tf2onnx leaves unconverted, converted here (``custom_op_handlers``)."""
