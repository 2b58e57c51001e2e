"""ONNX files pass through to a bundle unchanged, after the checks a self-contained bundle needs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from modelfn.bundle.manifest import Manifest
from modelfn.errors import PackagingError
from modelfn.packaging import package
from modelfn.runtime.onnx_session import OnnxModel
from tests.fixtures.models import TINY_OPSET, make_tiny_onnx, tiny_onnx_expected

pytestmark = pytest.mark.framework


def test_onnx_file_end_to_end_to_a_bundle(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN the tiny ONNX file and a 5-row sample
    sample = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
    out = tmp_path / "bundle"
    # WHEN it is packaged
    manifest = package(tiny_onnx_path, sample, out, name="tiny", version=3)
    # THEN the bundle holds exactly the model (bytes unchanged) and its manifest
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    assert (out / "model.onnx").read_bytes() == tiny_onnx_path.read_bytes()
    assert Manifest.from_json((out / "manifest.json").read_bytes()) == manifest
    # AND the manifest describes the graph, the source and an exact parity run on the sample
    assert (manifest.name, manifest.version, manifest.opset) == ("tiny", 3, {"ai.onnx": TINY_OPSET})
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [("x", "float32", [-1, 4])]
    assert [(t.name, t.dtype, t.shape) for t in manifest.outputs] == [("y", "float32", [-1, 3])]
    assert (manifest.framework.name, manifest.framework.converter) == ("onnx", "modelfn-tests")
    assert manifest.parity is not None
    assert (manifest.parity.samples, manifest.parity.max_abs_diff, manifest.parity.outputs) == (5, 0.0, {"y": 0.0})
    # AND the run time serves the bundle with the expected answers
    served = OnnxModel((out / "model.onnx").read_bytes(), manifest).predict({"x": sample})
    np.testing.assert_allclose(served["y"], tiny_onnx_expected(sample), rtol=1e-6)


def test_sample_is_synthesized_from_the_schema_when_absent(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN no sample
    # WHEN the ONNX file is packaged
    manifest = package(tiny_onnx_path, None, tmp_path / "b", name="tiny")
    # THEN parity ran on a synthesized 2-row batch
    assert manifest.parity is not None and manifest.parity.samples == 2


def test_opset_is_converted_on_request(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN a model at opset 17
    # WHEN packaged with opset=18
    manifest = package(tiny_onnx_path, None, tmp_path / "b", name="tiny", opset=18)
    # THEN the bundle's graph and manifest say 18, and parity still holds
    assert manifest.opset["ai.onnx"] == 18
    assert manifest.parity is not None and manifest.parity.max_abs_diff == 0.0


def test_external_data_is_refused(tmp_path: Path) -> None:
    import onnx

    # GIVEN the tiny model saved with its weights in a side file
    path = tmp_path / "ext.onnx"
    proto = onnx.load_model_from_string(make_tiny_onnx())
    onnx.save_model(proto, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    # WHEN it is packaged
    with pytest.raises(PackagingError) as info:
        package(path, None, tmp_path / "b", name="ext")
    # THEN the error names the tensor and the side file, and nothing is written
    assert "'weights.bin'" in info.value.message and "self-contained" in info.value.message
    assert not (tmp_path / "b").exists()


def test_pickle_renamed_to_onnx_is_refused(tmp_path: Path) -> None:
    # GIVEN a pickle stream saved under a .onnx name
    path = tmp_path / "model.onnx"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    # WHEN it is packaged
    # THEN it is refused as pickle before any parser sees it
    with pytest.raises(PackagingError, match="pickle"):
        package(path, None, tmp_path / "b", name="renamed")


def test_model_failing_the_checker_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    # GIVEN a graph whose node reads a tensor nobody produces
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "ghost"], ["y"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    path = tmp_path / "broken.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    # WHEN it is packaged
    # THEN onnx.checker's finding is reported
    with pytest.raises(PackagingError, match=r"onnx\.checker.*ghost"):
        package(path, None, tmp_path / "b", name="broken")


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    # GIVEN a .onnx file that is not protobuf
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\xff" * 64)
    # WHEN it is packaged
    # THEN a PackagingError (not a protobuf exception) names the problem
    with pytest.raises(PackagingError, match="not a valid ONNX model"):
        package(path, None, tmp_path / "b", name="junk")
