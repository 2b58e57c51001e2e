"""The ONNX guard refuses pickle, zip checkpoints, garbage and external data before onnxruntime runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import onnx
import pytest

from modelfn.errors import UnsafeBundleError
from modelfn.runtime.onnx_guard import inspect_onnx, refuse_external_data


def _with_external(model_path: Path, location: str) -> bytes:
    from onnx import TensorProto
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(model_path))
    tensor = model.graph.initializer[0]
    set_external_data(tensor, location)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    return bytes(model.SerializeToString())


def test_reads_opsets_of_a_real_model(tiny_onnx_path: Path) -> None:
    facts = inspect_onnx(tiny_onnx_path.read_bytes())
    assert facts.has_graph and facts.opsets.get("ai.onnx", 0) >= 13
    assert facts.external == []


@pytest.mark.parametrize(
    ("location", "reason"),
    [("../../etc/passwd", r"outside the bundle"), ("/etc/passwd", "absolute"), ("weights.bin", "external data")],
)
def test_external_data_is_refused_with_the_reason(tiny_onnx_path: Path, location: str, reason: str) -> None:
    # GIVEN a model whose initializer points to external data
    facts = inspect_onnx(_with_external(tiny_onnx_path, location))
    # THEN the guard names the location and refuses it
    assert facts.external and facts.external[0][1] == location
    with pytest.raises(UnsafeBundleError, match=reason):
        refuse_external_data(facts)


def test_external_data_inside_a_subgraph_is_found(tiny_onnx_path: Path) -> None:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    const = numpy_helper.from_array(np.ones(3, dtype=np.float32), "c")
    set_external_data(const, "../secret")
    const.data_location = TensorProto.EXTERNAL
    const.ClearField("raw_data")
    then_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["o"], value=const)], "then", [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [3])],
    )  # fmt: skip
    node = helper.make_node("If", ["cond"], ["out"], then_branch=then_graph, else_branch=then_graph)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [3])],
    )  # fmt: skip
    facts = inspect_onnx(helper.make_model(graph).SerializeToString())
    assert ("c", "../secret") in facts.external


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (pickle.dumps({"weights": [1, 2, 3]}, protocol=2), "pickle"),
        (pickle.dumps({"weights": [1, 2, 3]}, protocol=5), "pickle"),
        (b"PK\x03\x04" + b"\0" * 40, "zip archive"),
        (b"\xff\xfe garbage", "not a valid ONNX model"),
        (b"", "not a valid ONNX model"),
    ],
)
def test_non_onnx_payloads_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(UnsafeBundleError, match=message):
        inspect_onnx(payload)


def test_truncated_model_is_refused(tiny_onnx_path: Path) -> None:
    data = tiny_onnx_path.read_bytes()
    with pytest.raises(UnsafeBundleError, match="not a valid ONNX model"):
        inspect_onnx(data[: len(data) // 2])


def test_external_data_after_long_unpacked_runs_is_still_found() -> None:
    # GIVEN a node whose attributes are long unpacked repeated scalars (as tree ensembles have),
    # followed by a Constant whose tensor points outside the bundle
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    bulky = helper.make_node(
        "Identity", ["x"], ["x2"], floats_attr=[0.5] * 5000, ints_attr=list(range(0, 10**6, 97)), strs=["a"] * 300
    )
    const = numpy_helper.from_array(np.ones(3, dtype=np.float32), "c")
    set_external_data(const, "../escape.bin")
    const.data_location = TensorProto.EXTERNAL
    const.ClearField("raw_data")
    graph = helper.make_graph(
        [bulky, helper.make_node("Constant", [], ["o"], value=const)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [3])],
    )  # fmt: skip
    # WHEN the guard inspects it THEN the reference is found and refused
    facts = inspect_onnx(helper.make_model(graph).SerializeToString())
    assert facts.external == [("c", "../escape.bin")]
    with pytest.raises(UnsafeBundleError, match="outside the bundle"):
        refuse_external_data(facts)
