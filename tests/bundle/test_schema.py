"""The manifest's tensor schema and opsets come from the ONNX graph; non-tensor edges are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelfn.bundle.schema import read_schema
from modelfn.errors import PackagingError
from tests.fixtures.models import TINY_W

pytestmark = pytest.mark.framework


def _model(inputs: list[Any], outputs: list[Any], **graph: Any) -> bytes:
    from onnx import helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", inputs, outputs, **graph)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    data: bytes = helper.make_model(g, opset_imports=opsets).SerializeToString()
    return data


def test_tiny_model_schema(tiny_onnx_path: Path) -> None:
    # GIVEN the tiny model (symbolic batch dim "N")
    # WHEN its schema is read
    schema = read_schema(tiny_onnx_path.read_bytes())
    # THEN names, dtypes and shapes (-1 for the symbolic dim) and the default-domain opset are recorded
    assert [(t.name, t.dtype, t.shape) for t in schema.inputs] == [("x", "float32", [-1, 4])]
    assert [(t.name, t.dtype, t.shape) for t in schema.outputs] == [("y", "float32", [-1, 3])]
    assert schema.opset == {"ai.onnx": 17}


def test_initializers_listed_as_inputs_are_not_inputs() -> None:
    from onnx import TensorProto, helper, numpy_helper

    # GIVEN an old-style graph that lists its weight among the inputs, and an unnamed-dim output
    data = _model(
        [
            helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 4]),
            helper.make_tensor_value_info("W", 1, [4, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [None, 4])],
        initializer=[numpy_helper.from_array(TINY_W, "W")],
    )
    # WHEN read
    schema = read_schema(data)
    # THEN only the real input remains, dims without a value are -1, and every domain's opset is kept
    assert [(t.name, t.dtype, t.shape) for t in schema.inputs] == [("x", "float64", [-1, 4])]
    assert schema.outputs[0].dtype == "int64"
    assert schema.opset == {"ai.onnx": 17, "ai.onnx.ml": 3}


def test_sequence_output_is_refused() -> None:
    from onnx import TensorProto, helper

    # GIVEN an output that is a sequence (what a scikit-learn ZipMap produces)
    seq = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    data = _model(
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])], [helper.make_value_info("y", seq)]
    )
    # WHEN read
    # THEN it is refused, naming the output and the zipmap remedy
    with pytest.raises(PackagingError, match=r"output 'y' is a sequence_type.*zipmap=False"):
        read_schema(data)


def test_unsupported_element_type_and_garbage() -> None:
    from onnx import TensorProto, helper

    # GIVEN a complex64 input, then bytes that are not ONNX
    data = _model(
        [helper.make_tensor_value_info("x", TensorProto.COMPLEX64, [2])], [helper.make_tensor_value_info("y", 1, [2])]
    )
    # WHEN read
    # THEN both are PackagingErrors naming the problem
    with pytest.raises(PackagingError, match="input 'x' has ONNX element type 14"):
        read_schema(data)
    with pytest.raises(PackagingError, match="not a valid ONNX model"):
        read_schema(b"\xff\xff\xff")
