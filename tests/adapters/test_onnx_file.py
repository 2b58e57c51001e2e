"""ONNX files pass through to a bundle unchanged, after the checks a self-contained bundle needs."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfn.adapters.onnx_file import OnnxFileAdapter
from modelfn.adapters.registry import detect, get_adapter
from modelfn.bundle.manifest import Manifest
from modelfn.errors import PackagingError
from modelfn.packaging import package
from modelfn.parity import run_onnx
from modelfn.runtime.onnx_guard import inspect_onnx
from modelfn.runtime.onnx_session import OnnxModel
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey
from tests.fixtures.models import TINY_IR_VERSION, TINY_OPSET, make_tiny_onnx, tiny_onnx_expected

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


def _save_external(tmp_path: Path, location: str) -> Path:
    """The tiny model saved with its weights in a side file named ``location``."""
    import onnx

    path = tmp_path / "ext.onnx"
    proto = onnx.load_model_from_string(make_tiny_onnx())
    onnx.save_model(proto, str(path), save_as_external_data=True, location=location, size_threshold=0)
    return path


def test_external_data_beside_the_model_is_inlined(tmp_path: Path) -> None:
    # GIVEN the tiny model saved with its weights in a side file
    path = _save_external(tmp_path, "weights.bin")
    assert (tmp_path / "weights.bin").stat().st_size > 0
    # WHEN it is packaged
    manifest = package(path, None, tmp_path / "b", name="ext")
    # THEN the bundle holds one self-contained model.onnx that the run-time guard accepts
    bundled = (tmp_path / "b" / "model.onnx").read_bytes()
    assert inspect_onnx(bundled).external == []
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["manifest.json", "model.onnx"]
    assert manifest.parity is not None and manifest.parity.max_abs_diff == 0.0
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(run_onnx(bundled, {"x": x})["y"], tiny_onnx_expected(x), rtol=1e-6)


def test_external_data_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    # GIVEN weights whose side file is a link to a file elsewhere
    path = _save_external(tmp_path, "weights.bin")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "weights.bin").rename(elsewhere / "w.bin")
    (tmp_path / "weights.bin").symlink_to(elsewhere / "w.bin")
    # THEN packaging refuses it and writes nothing
    with pytest.raises(PackagingError, match="no symlinks"):
        package(path, None, tmp_path / "b", name="ext")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("location", "reason"), [("../w.bin", "outside the bundle"), ("/tmp/w.bin", "absolute")])
def test_external_data_outside_the_model_directory_is_refused(tmp_path: Path, location: str, reason: str) -> None:
    import onnx
    from onnx import TensorProto
    from onnx.external_data_helper import set_external_data

    proto = onnx.load_model_from_string(make_tiny_onnx())
    tensor = proto.graph.initializer[0]
    set_external_data(tensor, location)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    path = tmp_path / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(PackagingError, match=reason):
        package(path, None, tmp_path / "b", name="ext")


def test_missing_external_data_file_is_refused(tmp_path: Path) -> None:
    path = _save_external(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(PackagingError, match="weights.bin"):
        package(path, None, tmp_path / "b", name="ext")


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


# --- op-domain allowlist ----------------------------------------------------------------------------------------

NCHWC_OPTION = {"allowed_domains": "ai.onnx.ml,com.microsoft,com.microsoft.nchwc"}


def _single_node_model(node: Any, opsets: dict[str, int], *, channels: int = 4, functions: Any = ()) -> bytes:
    """``y = node(x)`` over a float ``[N, channels, 2, 2]`` tensor (shape kept), with the given opset imports."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [node],
        "one-node",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", channels, 2, 2])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        functions=list(functions),
        ir_version=TINY_IR_VERSION,
    )
    data: bytes = model.SerializeToString()
    return data


def _nchwc_model() -> bytes:
    """ReorderInput -> ReorderOutput: onnxruntime's CPU-layout ops (domain com.microsoft.nchwc), an identity overall."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("ReorderInput", ["x"], ["blocked"], domain="com.microsoft.nchwc"),
            helper.make_node("ReorderOutput", ["blocked"], ["y"], domain="com.microsoft.nchwc", channels=16),
        ],
        "nchwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16, 2, 2])],
    )
    opsets = [helper.make_opsetid("", TINY_OPSET), helper.make_opsetid("com.microsoft.nchwc", 1)]
    data: bytes = helper.make_model(graph, opset_imports=opsets, ir_version=TINY_IR_VERSION).SerializeToString()
    return data


@pytest.mark.slow
def test_custom_op_domain_is_refused_by_default(tmp_path: Path) -> None:
    from onnx import helper

    # GIVEN a model whose op needs a custom-op library (domain com.example)
    path = tmp_path / "custom.onnx"
    node = helper.make_node("Mystery", ["x"], ["y"], domain="com.example")
    path.write_bytes(_single_node_model(node, {"": TINY_OPSET, "com.example": 1}))
    # WHEN it is packaged
    with pytest.raises(PackagingError) as info:
        package(path, None, tmp_path / "b", name="custom")
    # THEN the error names the domain, its op, the allowlist and the option that would allow it; nothing is written
    message = info.value.message
    assert "'com.example' (Mystery)" in message
    assert "[ai.onnx, ai.onnx.ml, com.microsoft]" in message and "never loaded" in message
    assert "--option allowed_domains=ai.onnx.ml,com.microsoft,com.example" in message
    assert info.value.field == "allowed_domains"
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_custom_op_inside_a_subgraph_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    # GIVEN a custom op hidden in the then-branch of an If node
    def branch(name: str, node: Any) -> Any:
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)])

    then_branch = branch("t", helper.make_node("Mystery", ["x"], ["t"], domain="com.example"))
    else_branch = branch("e", helper.make_node("Identity", ["x"], ["e"]))
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["c"]),
            helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch),
        ],
        "branchy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])],
    )
    opsets = [helper.make_opsetid("", TINY_OPSET), helper.make_opsetid("com.example", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=TINY_IR_VERSION)
    # WHEN the adapter exports it
    # THEN the nested op is found
    with pytest.raises(PackagingError, match=r"'com\.example' \(Mystery\)"):
        OnnxFileAdapter().export(model, None, opset=None)


@pytest.mark.slow
def test_allowed_domain_option_admits_an_onnxruntime_domain_that_then_serves(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    # GIVEN a model using onnxruntime's own NCHWc layout ops, outside the default allowlist
    path = tmp_path / "nchwc.onnx"
    path.write_bytes(_nchwc_model())
    x = np.arange(2 * 16 * 4, dtype=np.float32).reshape(2, 16, 2, 2)
    with pytest.raises(PackagingError, match=r"'com\.microsoft\.nchwc' \(ReorderInput, ReorderOutput\)"):
        package(path, x, tmp_path / "refused", name="nchwc")
    # WHEN it is packaged with that domain allowed (as the CLI passes it: one comma-separated string)
    manifest = package(path, x, tmp_path / "b", name="nchwc", options=NCHWC_OPTION)
    # THEN it packages with exact parity and the domain recorded
    assert manifest.opset == {"ai.onnx": TINY_OPSET, "com.microsoft.nchwc": 1}
    assert manifest.parity is not None and manifest.parity.max_abs_diff == 0.0
    # AND, signed, pushed and served over HTTP, it answers like the identity it is
    client = serve(publish(tmp_path / "b", str(tmp_path / "store"), signing_key).settings)
    try:
        response = client.post("/predict", json={"inputs": {"x": x.tolist()}})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    # (a single-output model answers with the bare array, like TF Serving)
    np.testing.assert_array_equal(np.asarray(response.json()["predictions"], dtype=np.float32), x)


@pytest.mark.slow
def test_allowlist_can_be_narrowed_to_standard_onnx(tmp_path: Path) -> None:
    from onnx import helper

    # GIVEN a model using an onnxruntime contrib op (allowed by default)
    path = tmp_path / "gelu.onnx"
    path.write_bytes(
        _single_node_model(helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft"), {"": 17, "com.microsoft": 1})
    )
    assert package(path, None, tmp_path / "ok", name="gelu").opset["com.microsoft"] == 1
    # WHEN it is packaged with only standard ONNX allowed (an empty option value, or a list)
    for allowed in ("", [""], ["ai.onnx"]):
        # THEN the contrib op is refused
        with pytest.raises(PackagingError, match=r"'com\.microsoft' \(Gelu\)"):
            package(path, None, tmp_path / "b", name="gelu", options={"allowed_domains": allowed})


@pytest.mark.slow
def test_ops_defined_by_local_functions_need_no_allowlist(tmp_path: Path) -> None:
    from onnx import helper

    # GIVEN a custom-domain op that the model defines itself as a local function (y = relu(x))
    function = helper.make_function(
        "com.example",
        "MyRelu",
        ["a"],
        ["b"],
        [helper.make_node("Relu", ["a"], ["b"])],
        [helper.make_opsetid("", TINY_OPSET)],
    )
    node = helper.make_node("MyRelu", ["x"], ["y"], domain="com.example")
    path = tmp_path / "local.onnx"
    path.write_bytes(_single_node_model(node, {"": TINY_OPSET, "com.example": 1}, functions=[function]))
    x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(2, 4, 2, 2)
    # WHEN it is packaged with the default allowlist
    manifest = package(path, x, tmp_path / "b", name="local")
    # THEN it passes (no library needed) and runs as the function says
    assert manifest.parity is not None and manifest.parity.max_abs_diff == 0.0
    served = OnnxModel((tmp_path / "b" / "model.onnx").read_bytes(), manifest).predict({"x": x})
    np.testing.assert_array_equal(served["y"], np.maximum(x, 0))


@pytest.mark.parametrize("value", ["com.example, bad domain", "../etc", ["ok.domain", 3]])
def test_malformed_allowed_domains_are_refused(value: Any) -> None:
    # GIVEN an option value that is not a list of domain names
    # WHEN the adapter is built (as packaging does with options)
    with pytest.raises(PackagingError) as info:
        get_adapter("onnx", {"allowed_domains": value})
    # THEN the option is named
    assert info.value.field == "allowed_domains"


def test_detection_by_object_and_by_file_passes_the_allowlist_option(tiny_onnx_path: Path) -> None:
    import onnx

    # GIVEN the tiny model as a file and as a ModelProto
    proto = onnx.load_model_from_string(tiny_onnx_path.read_bytes())
    for target in (tiny_onnx_path, proto):
        # WHEN detection picks the adapter with an allowlist option
        adapter = detect(target, options={"allowed_domains": "com.example"})
        # THEN it is the ONNX adapter, holding exactly standard ONNX plus the named domain
        assert isinstance(adapter, OnnxFileAdapter)
        assert adapter.allowed_domains == {"ai.onnx", "com.example"}


def _wide_onnx(tmp_path: Path) -> tuple[Path, Any, Any]:
    """A ``y = x @ W + B`` model with an 8 KiB ``W``, saved with ``W`` in a side file ``weights.bin``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w, b = rng.standard_normal((64, 32)).astype(np.float32), rng.standard_normal(32).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])],
        "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", TINY_OPSET)], ir_version=TINY_IR_VERSION)
    path = tmp_path / "src" / "wide.onnx"
    path.parent.mkdir()
    onnx.save_model(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=1024)
    return path, w, b


def test_model_over_the_inline_limit_keeps_signed_external_data(tmp_path: Path, signing_key: SigningKey) -> None:
    from modelfn.errors import IntegrityError
    from modelfn.loader import load_bundle

    # GIVEN a model whose 8 KiB of weights are over an inline limit of 4 KiB (standing in for protobuf's 2 GB)
    path, w, b = _wide_onnx(tmp_path)
    x = np.random.default_rng(8).standard_normal((3, 64)).astype(np.float32)
    # WHEN it is packaged with that limit (as the CLI passes options: strings)
    manifest = package(path, x, tmp_path / "b", name="wide", options={"inline_limit": "4096"})
    # THEN the bundle keeps W in model.onnx.data, referenced from a small model.onnx, with exact parity
    bundle = tmp_path / "b"
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "model.onnx", "model.onnx.data"]
    assert inspect_onnx((bundle / "model.onnx").read_bytes()).external == [("W", "model.onnx.data")]
    assert (bundle / "model.onnx.data").read_bytes() == w.tobytes()
    assert (bundle / "model.onnx").stat().st_size < 4096
    assert manifest.parity is not None and manifest.parity.max_abs_diff == 0.0
    # AND, signed and pushed, the data file is a signed file the server loads from the verified bytes
    published = publish(bundle, str(tmp_path / "store"), signing_key)
    client = serve(published.settings)
    try:
        response = client.post("/predict", json={"inputs": {"x": x.tolist()}})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.asarray(response.json()["predictions"]), x @ w + b, rtol=1e-5, atol=1e-5)
    # AND a data file changed in the store after signing is refused before any model is built
    stored = tmp_path / "store" / "wide" / "1" / "model.onnx.data"
    stored.write_bytes(bytes(len(w.tobytes())))
    with pytest.raises(IntegrityError, match="model.onnx.data"):
        load_bundle(published.settings)


def test_external_data_rules_at_run_time(tmp_path: Path) -> None:
    from modelfn.errors import UnsafeBundleError

    path, w, _ = _wide_onnx(tmp_path)
    manifest = package(path, None, tmp_path / "b", name="wide", options={"inline_limit": 4096})
    model_bytes, data = (tmp_path / "b" / "model.onnx").read_bytes(), (tmp_path / "b" / "model.onnx.data").read_bytes()
    # GIVEN the split model WHEN built without its data file THEN the external reference is refused
    with pytest.raises(UnsafeBundleError, match="external data"):
        OnnxModel(model_bytes, manifest)
    # WHEN a data file the graph never references rides along THEN it is refused
    with pytest.raises(UnsafeBundleError, match=r"references no tensor in data file\(s\) \['model.onnx.data.1'\]"):
        OnnxModel(model_bytes, manifest, data_files={"model.onnx.data": data, "model.onnx.data.1": b"x"})
    # WHEN the graph points at a file that is not one of the bundle's data files THEN it is refused
    original = path.read_bytes()
    with pytest.raises(UnsafeBundleError, match="'weights.bin', which is not a signed data file"):
        OnnxModel(original, manifest, data_files={"model.onnx.data": data})
    # AND with exactly its data file it answers
    x = np.ones((2, 64), np.float32)
    served = OnnxModel(model_bytes, manifest, data_files={"model.onnx.data": data}).predict({"x": x})
    np.testing.assert_allclose(served["y"], run_onnx(model_bytes, {"x": x}, data_files={"model.onnx.data": data})["y"])


def test_inline_limit_option_and_what_needs_one_model_file(tmp_path: Path) -> None:
    path, _, _ = _wide_onnx(tmp_path)
    # GIVEN a limit that is not a byte count THEN the option is named
    for bad in ("big", "0", str(2**31)):
        with pytest.raises(PackagingError, match="option 'inline_limit'") as info:
            OnnxFileAdapter(inline_limit=bad)
        assert info.value.field == "inline_limit"
    # GIVEN a model that keeps external data WHEN quantization is asked for THEN it is refused, naming the file
    with pytest.raises(PackagingError, match=r"--quantize.*model.onnx.data"):
        package(path, None, tmp_path / "q", name="wide", options={"inline_limit": "4096"}, quantize="int8")
    # AND under the default limit the same model becomes one self-contained model.onnx
    package(path, None, tmp_path / "one", name="wide")
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["manifest.json", "model.onnx"]
