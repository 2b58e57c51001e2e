"""Offline graph optimization keeps the answers, stays portable, and the optimized bundle serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from modelfn.errors import PackagingError
from modelfn.onnx_optimize import optimize_onnx
from modelfn.parity import run_onnx
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey

pytestmark = [pytest.mark.framework, pytest.mark.slow]

RNG = np.random.default_rng(3)
W1 = RNG.standard_normal((8, 16)).astype(np.float32)
B1 = RNG.standard_normal(16).astype(np.float32)
W2 = RNG.standard_normal((16, 3)).astype(np.float32)
X = RNG.standard_normal((5, 8)).astype(np.float32)


def _optimizable_model() -> bytes:
    """``y = relu(x @ W1 + (B1 + 0)) @ W2`` with an Identity and a foldable constant Add on the way."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Add", ["B1", "zero"], ["bias"]),  # constant folding
        helper.make_node("MatMul", ["x", "W1"], ["xw"]),
        helper.make_node("Add", ["xw", "bias"], ["pre"]),  # MatMul + Add -> Gemm
        helper.make_node("Relu", ["pre"], ["act"]),  # Gemm + Relu -> FusedGemm (extended)
        helper.make_node("Identity", ["act"], ["same"]),  # redundant node
        helper.make_node("MatMul", ["same", "W2"], ["y"]),
    ]
    initializers = [
        numpy_helper.from_array(W1, "W1"),
        numpy_helper.from_array(B1, "B1"),
        numpy_helper.from_array(np.zeros(16, np.float32), "zero"),
        numpy_helper.from_array(W2, "W2"),
    ]
    graph = helper.make_graph(
        nodes,
        "optimizable",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def _expected(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.maximum(x @ W1 + B1, 0.0) @ W2


@pytest.mark.parametrize(
    ("level", "domains"),
    [("basic", {""}), ("extended", {"", "com.microsoft"})],
)
def test_optimized_model_keeps_outputs_and_loses_nodes(level: str, domains: set[str]) -> None:
    import onnx

    # GIVEN a graph with a foldable constant, a redundant Identity and fusable MatMul+Add(+Relu)
    original = _optimizable_model()
    # WHEN it is optimized offline
    optimized = optimize_onnx(original, level)
    # THEN it has fewer nodes, declares only the domains it uses, and keeps its inputs and outputs
    before, after = onnx.load_model_from_string(original), onnx.load_model_from_string(optimized)
    assert len(after.graph.node) < len(before.graph.node)
    assert {o.domain for o in after.opset_import} == domains
    assert [i.name for i in after.graph.input] == ["x"] and [o.name for o in after.graph.output] == ["y"]
    # AND its outputs equal the original's within 1e-5
    np.testing.assert_allclose(run_onnx(optimized, {"x": X})["y"], run_onnx(original, {"x": X})["y"], atol=1e-5)


@pytest.mark.parametrize("level", ["all", "ALL", "layout"])
def test_hardware_specific_levels_are_refused(level: str) -> None:
    # GIVEN a model
    # WHEN optimization at a machine-specific level is requested
    with pytest.raises(PackagingError, match="not be portable; choose one of basic, extended") as info:
        optimize_onnx(_optimizable_model(), level)
    # THEN it is refused, naming the option
    assert info.value.field == "optimize"


def test_unknown_level_lists_the_choices() -> None:
    # GIVEN a made-up level
    # WHEN optimizing
    # THEN the error lists the valid levels
    with pytest.raises(PackagingError, match=r"must be one of basic, extended, got 'fast'"):
        optimize_onnx(_optimizable_model(), "fast")


def test_unloadable_model_is_a_packaging_error() -> None:
    # GIVEN bytes that are not a model
    # WHEN optimizing
    # THEN onnxruntime's failure arrives as a PackagingError
    with pytest.raises(PackagingError, match="onnxruntime cannot load the model"):
        optimize_onnx(b"\x08\x01garbage", "basic")


def test_extended_optimized_bundle_packages_and_serves(tmp_path: Path, signing_key: SigningKey) -> None:
    from modelfn.packaging import package

    # GIVEN the model optimized at the extended level (onnxruntime contrib ops in the graph)
    path = tmp_path / "optimized.onnx"
    path.write_bytes(optimize_onnx(_optimizable_model(), "extended"))
    # WHEN it is packaged with the reference outputs, signed, pushed and served
    manifest = package(path, X, tmp_path / "bundle", name="fused")
    assert manifest.opset == {"ai.onnx": 17, "com.microsoft": 1}
    client = serve(publish(tmp_path / "bundle", str(tmp_path / "store"), signing_key).settings)
    try:
        request = {"inputs": [{"name": "x", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]}
        response = client.post("/v2/models/fused/infer", json=request)
    finally:
        client.close()
    # THEN the served V2 answer equals the unoptimized maths within 1e-5
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    served = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    np.testing.assert_allclose(served, _expected(X), atol=1e-5)
