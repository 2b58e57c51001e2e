"""OnnxModel: schema enforcement with 4xx errors naming the field, and refusal before onnxruntime."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from modelfn.bundle.manifest import FrameworkInfo, Manifest, TensorSpec
from modelfn.errors import UnprocessableInput, UnsafeBundleError
from modelfn.runtime.onnx_session import OnnxModel


def tiny_manifest(input_name: str = "x", dtype: Any = "float32") -> Manifest:
    return Manifest(
        name="tiny",
        version=1,
        framework=FrameworkInfo(name="onnx"),
        inputs=[TensorSpec(name=input_name, dtype=dtype, shape=[-1, 4])],
        outputs=[TensorSpec(name="y", dtype="float32", shape=[-1, 3])],
        created_at=dt.datetime.now(dt.UTC),
        modelfn_version="test",
    )


@pytest.fixture
def tiny_model(tiny_onnx_path: Path) -> OnnxModel:
    return OnnxModel(tiny_onnx_path.read_bytes(), tiny_manifest(), threads=1)


def test_predict_matches_raw_onnxruntime(tiny_onnx_path: Path, tiny_model: OnnxModel) -> None:
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    raw = ort.InferenceSession(str(tiny_onnx_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = tiny_model.predict({"x": x})
    assert list(got) == ["y"]
    np.testing.assert_array_equal(got["y"], raw)


def test_integer_input_is_cast_to_the_float_schema(tiny_model: OnnxModel) -> None:
    ints = np.arange(8).reshape(2, 4)
    floats = ints.astype(np.float32)
    np.testing.assert_array_equal(tiny_model.predict({"x": ints})["y"], tiny_model.predict({"x": floats})["y"])


@pytest.mark.parametrize(
    ("feeds", "field", "message"),
    [
        ({"z": np.zeros((1, 4), np.float32)}, "z", "unknown input"),
        ({}, "x", "missing input"),
        ({"x": np.zeros((1, 5), np.float32)}, "x", r"shape \[1, 5\], expected \['\?', 4\]"),
        ({"x": np.zeros((4,), np.float32)}, "x", "shape"),
        ({"x": np.array([["a", "b", "c", "d"]])}, "x", "dtype"),
    ],
)
def test_bad_feeds_are_422_naming_the_field(
    tiny_model: OnnxModel, feeds: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(UnprocessableInput, match=message) as info:
        tiny_model.predict(feeds)
    assert info.value.field == field
    assert info.value.status_code == 422


def test_unknown_requested_output_is_422(tiny_model: OnnxModel) -> None:
    with pytest.raises(UnprocessableInput) as info:
        tiny_model.predict({"x": np.zeros((1, 4), np.float32)}, outputs=["nope"])
    assert info.value.field == "nope"


def test_manifest_that_disagrees_with_the_graph_is_refused(tiny_onnx_path: Path) -> None:
    with pytest.raises(UnsafeBundleError, match="do not match"):
        OnnxModel(tiny_onnx_path.read_bytes(), tiny_manifest(input_name="other"))


def test_pickle_never_reaches_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a spy on onnxruntime's session constructor
    calls: list[Any] = []
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: calls.append(a))
    # WHEN a pickle renamed to model.onnx is handed to the runtime
    with pytest.raises(UnsafeBundleError, match="pickle"):
        OnnxModel(pickle.dumps({"w": 1}), tiny_manifest())
    # THEN onnxruntime was never called
    assert calls == []


def test_warm_up_runs_on_schema_shaped_zeros(tiny_model: OnnxModel) -> None:
    tiny_model.warm_up()  # dynamic batch becomes 1; must not raise
    assert tiny_model.output_names == ["y"]
