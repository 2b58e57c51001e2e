"""An unmodified ``tritonclient.http`` client against the app served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from modelfn.loader import LoadedBundle
from modelfn.serving.asgi import create_app
from tests.serving.tiny_models import expected_linear, served

pytestmark = pytest.mark.slow

X = np.array([[1.0, 2.0, 3.0, 4.0], [0.25, -1.0, 0.5, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    import uvicorn

    from tests.serving.tiny_models import linear_bundle

    bundle: LoadedBundle = linear_bundle()
    port = _free_port()
    config = uvicorn.Config(create_app(served(bundle)), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def triton(server_url: str) -> Iterator[object]:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=server_url)
    yield client
    client.close()


def test_health_and_metadata(triton: object) -> None:
    import tritonclient.http as httpclient

    assert isinstance(triton, httpclient.InferenceServerClient)
    # WHEN the client probes the server and reads the model metadata
    # THEN it sees a live server, a ready model and the V2 schema
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("linear")
    assert triton.is_model_ready("linear", model_version="3")
    assert not triton.is_model_ready("other")
    metadata = triton.get_model_metadata("linear")
    assert metadata["platform"] == "onnxruntime"
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in metadata["outputs"]] == ["y", "label"]


@pytest.mark.parametrize("binary_data", [True, False], ids=["binary", "json"])
def test_infer_matches_onnxruntime(triton: object, binary_data: bool) -> None:
    import tritonclient.http as httpclient

    assert isinstance(triton, httpclient.InferenceServerClient)
    # GIVEN an input set from numpy, as binary (the client's default) or as JSON
    infer_input = httpclient.InferInput("x", list(X.shape), "FP32")
    infer_input.set_data_from_numpy(X, binary_data=binary_data)
    # WHEN inferred with default outputs (binary) and with explicitly requested JSON/binary outputs
    default_outputs = triton.infer("linear", [infer_input])
    requested = triton.infer(
        "linear",
        [infer_input],
        outputs=[httpclient.InferRequestedOutput(name, binary_data=binary_data) for name in ("label", "y")],
    )
    # THEN both equal onnxruntime's result exactly
    y, label = expected_linear(X)
    for result in (default_outputs, requested):
        np.testing.assert_array_equal(result.as_numpy("y"), y)
        np.testing.assert_array_equal(result.as_numpy("label"), label)


def test_client_errors_surface_as_inference_server_exceptions(triton: object) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    assert isinstance(triton, httpclient.InferenceServerClient)
    # GIVEN an input with the wrong inner dimension
    bad = httpclient.InferInput("x", [1, 5], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 5), dtype=np.float32))
    # WHEN inferred
    with pytest.raises(InferenceServerException) as info:
        triton.infer("linear", [bad])
    # THEN the client reports our 422 message naming the input
    assert info.value.status() == "422"
    assert "'x'" in info.value.message()
