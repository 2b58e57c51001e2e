"""Tiny real ONNX models and the served state around them, built in memory with ``onnx.helper``.

``linear``: x float32 [-1, 4] → y = x·W + b float32 [-1, 3], label = argmax(y) int64 [-1];
labels ``["setosa", "versicolor", "virginica"]``. ``echo``: s string [-1] → s_out string [-1].
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import numpy.typing as npt

from modelfn.bundle.manifest import FrameworkInfo, Manifest, TensorSpec
from modelfn.config import Settings
from modelfn.errors import ModelfnError
from modelfn.loader import LoadedBundle
from modelfn.runtime.onnx_session import OnnxModel
from modelfn.serving.state import ModelState

WEIGHTS = np.array([[1.0, 0.5, -1.0], [0.0, 2.0, 1.0], [-0.5, 0.0, 3.0], [1.5, -1.0, 0.0]], dtype=np.float32)
BIAS = np.array([0.1, -0.2, 0.3], dtype=np.float32)
LABELS = ["setosa", "versicolor", "virginica"]
ROOT_DIGEST = "ab" * 32
VERIFIED_AT = dt.datetime(2024, 4, 9, 18, 3, 49, tzinfo=dt.UTC)


def linear_onnx() -> bytes:
    """MatMul + Add + ArgMax, opset 17."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
            helper.make_node("ArgMax", ["y"], ["label"], axis=1, keepdims=0),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return bytes(model.SerializeToString())


def echo_onnx() -> bytes:
    """Identity over a string tensor."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["s_out"])],
        "echo",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("s_out", TensorProto.STRING, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return bytes(model.SerializeToString())


def manifest(
    name: str, inputs: list[TensorSpec], outputs: list[TensorSpec], labels: list[str | int] | None = None
) -> Manifest:
    return Manifest(
        name=name,
        version=3,
        framework=FrameworkInfo(name="onnx"),
        inputs=inputs,
        outputs=outputs,
        labels=labels,
        created_at=VERIFIED_AT,
        modelfn_version="test",
    )


def linear_bundle() -> LoadedBundle:
    spec = manifest(
        "linear",
        [TensorSpec(name="x", dtype="float32", shape=[-1, 4])],
        [TensorSpec(name="y", dtype="float32", shape=[-1, 3]), TensorSpec(name="label", dtype="int64", shape=[-1])],
        labels=list(LABELS),
    )
    return _bundle(linear_onnx(), spec)


def echo_bundle() -> LoadedBundle:
    spec = manifest(
        "echo",
        [TensorSpec(name="s", dtype="string", shape=[-1])],
        [TensorSpec(name="s_out", dtype="string", shape=[-1])],
    )
    return _bundle(echo_onnx(), spec)


def _bundle(model_bytes: bytes, spec: Manifest) -> LoadedBundle:
    model = OnnxModel(model_bytes, spec, threads=1, providers=["CPUExecutionProvider"])
    return LoadedBundle(
        manifest=spec, model=model, root_digest=ROOT_DIGEST, key_hint="test-key", verified_at=VERIFIED_AT
    )


def served(bundle: LoadedBundle | None, failure: ModelfnError | None = None, **settings: Any) -> ModelState:
    """A ModelState serving ``bundle`` (or not ready with ``failure``)."""
    name = bundle.manifest.name if bundle is not None else "linear"
    return ModelState(Settings(model_name=name, **settings), bundle=bundle, failure=failure)


def expected_linear(x: npt.ArrayLike) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """What the linear model must return, straight from onnxruntime (no modelfn code involved)."""
    import onnxruntime as ort

    session = ort.InferenceSession(linear_onnx(), providers=["CPUExecutionProvider"])
    y, label = session.run(None, {"x": np.asarray(x, dtype=np.float32)})
    return y, label
