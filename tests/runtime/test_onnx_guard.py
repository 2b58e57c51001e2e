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


def _model_with_initializers(*tensors: object) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=list(tensors),  # type: ignore[arg-type]
    )  # fmt: skip
    return bytes(helper.make_model(graph).SerializeToString())


def test_external_initializer_without_a_location_is_refused() -> None:
    # GIVEN an initializer marked EXTERNAL that names no location, in a model without the bytes "location"
    import numpy as np
    from onnx import TensorProto, numpy_helper

    tensor = numpy_helper.from_array(np.ones(3, dtype=np.float32), "w")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    data = _model_with_initializers(tensor)
    assert b"location" not in data
    # WHEN the guard inspects it THEN the reference is found (initializers are always walked) and refused
    facts = inspect_onnx(data)
    assert facts.external == [("w", "<unnamed>")]
    with pytest.raises(UnsafeBundleError, match="'w' points to '<unnamed>'"):
        refuse_external_data(facts)


def test_location_in_a_string_tensor_with_many_elements_is_found() -> None:
    # GIVEN a string initializer of 1,000 elements (one protobuf field each) that points outside the bundle
    from onnx import TensorProto, helper

    strings = helper.make_tensor("s", TensorProto.STRING, [1000], [b"v%d" % i for i in range(1000)])
    strings.data_location = TensorProto.EXTERNAL
    entry = strings.external_data.add()
    entry.key, entry.value = "location", "../strings.bin"
    # WHEN the guard inspects it THEN the search that replaces the field walk still finds the location
    facts = inspect_onnx(_model_with_initializers(strings))
    assert facts.external == [("s", "../strings.bin")]


def test_weights_that_look_like_an_external_reference_are_not_read_as_one() -> None:
    # GIVEN raw weights whose bytes spell a serialized external-data entry, and no real external data
    from onnx import TensorProto, helper

    forged = b"\x6a\x13\x0a\x08location\x12\x07../x.bin\x70\x01" * 8
    weights = helper.make_tensor("w", TensorProto.UINT8, [len(forged)], forged, raw=True)
    data = _model_with_initializers(weights)
    assert b"location" in data
    # WHEN the guard inspects it THEN weights are skipped by length: nothing external, and onnxruntime agrees
    facts = inspect_onnx(data)
    assert facts.external == []
    refuse_external_data(facts)
    import onnxruntime as ort

    ort.InferenceSession(data, providers=["CPUExecutionProvider"])
