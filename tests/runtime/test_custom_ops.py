"""Custom-op libraries are never loaded from model metadata (SECURITY.md rule 13, second half).

A signed model may name a shared library in its metadata (as onnxruntime-extensions models do);
loading it would run arbitrary native code inside the function. The served session registers no
custom-op library, so such a model's custom op stays unknown and the node never becomes ready.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime

from modelfn.bundle.manifest import TensorSpec
from modelfn.config import Settings
from modelfn.serving.asgi import create_app
from modelfn.serving.state import ModelState
from modelfn.signing.sign import sign_bundle
from tests.fixtures.keys import SigningKey
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import manifest


def _custom_op_model(library: Path) -> bytes:
    """``y = com.example:MyOp(x)`` with the library path in the model's metadata."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MyOp", ["x"], ["y"], domain="com.example")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)], ir_version=9
    )
    helper.set_model_props(model, {"custom_op_library": str(library), "ai.onnx.contrib.library": str(library)})
    return bytes(model.SerializeToString())


def test_a_library_named_in_model_metadata_is_never_loaded(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a real shared library at a unique path, named by a signed model that needs a custom op from it
    library = tmp_path / "libmodelfn_custom_ops_probe.so"
    shutil.copyfile(next(Path(onnxruntime.__file__).parent.glob("capi/*.so")), library)
    bundle = tmp_path / "store" / "custom" / "1"
    bundle.mkdir(parents=True)
    (bundle / "model.onnx").write_bytes(_custom_op_model(library))
    spec = manifest(
        "custom",
        [TensorSpec(name="x", dtype="float32", shape=[-1])],
        [TensorSpec(name="y", dtype="float32", shape=[-1])],
    )
    (bundle / "manifest.json").write_bytes(spec.replace(version=1).to_json())
    sign_bundle(bundle, signing_key.signer, name="custom", version=1)
    settings = Settings(
        store_url=str(tmp_path / "store"),
        model_name="custom",
        model_version="1",
        trusted_keys=(str(signing_key.public_path),),
        threads=1,
    )

    # WHEN the function loads it
    state = ModelState.load(settings)

    # THEN it never becomes ready (503 + Retry-After), and the library was never mapped into the process
    assert not state.ready and state.failure is not None
    client = SyncASGIClient(create_app(state))
    response = client.get("/v2/health/ready")
    client.close()
    assert response.status_code == 503 and response.headers["retry-after"]
    assert library.name not in Path("/proc/self/maps").read_text()
