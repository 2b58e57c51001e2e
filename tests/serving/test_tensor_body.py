"""Raw tensor bodies (``application/octet-stream``, ``application/x-npy``) on /predict and V2 infer.

Through the lean ASGI app, through Mangum with base64 Lambda events (API Gateway HTTP API v2,
Function URL, REST v1, ALB) and through the real Lambda Runtime Interface Emulator.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mangum import Mangum

from modelfn.bundle.manifest import TensorSpec
from modelfn.handlers._base64_body import HANDLERS, decode_body
from modelfn.loader import LoadedBundle
from modelfn.serving.asgi import create_app
from modelfn.serving.tensor_body import read_npy
from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected
from tests.handlers.events import HTTP_SOURCES, LambdaContext, http_event, response_body, response_headers
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import _bundle, expected_linear, manifest, served

IMAGE = (3, 4, 4)
X = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.25, 2.0]], dtype=np.float32)


def scale_onnx() -> bytes:
    """y = 2·x over float32 [N, 3, 4, 4]: one output, an image-like input."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *IMAGE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *IMAGE])],
        [numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def scale() -> LoadedBundle:
    spec = manifest(
        "scale",
        [TensorSpec(name="x", dtype="float32", shape=[-1, *IMAGE])],
        [TensorSpec(name="y", dtype="float32", shape=[-1, *IMAGE])],
    )
    return _bundle(scale_onnx(), spec)


@pytest.fixture
def scale_client(scale: LoadedBundle) -> Iterator[SyncASGIClient]:
    client = SyncASGIClient(create_app(served(scale)))
    yield client
    client.close()


def npy(array: npt.NDArray[Any]) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=array.dtype.hasobject)
    return out.getvalue()


def load_npy(data: bytes) -> npt.NDArray[Any]:
    return np.load(io.BytesIO(data), allow_pickle=False)  # type: ignore[no-any-return]


def images(n: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(n).standard_normal((n, *IMAGE)).astype(np.float32)


def test_octet_stream_batch_is_inferred_from_the_manifest(client: SyncASGIClient) -> None:
    # GIVEN two rows of the linear model's float32 [?, 4] input as raw little-endian bytes
    # WHEN posted to /predict as application/octet-stream with no shape
    response = client.post("/predict", content=X.tobytes(), headers={"content-type": "application/octet-stream"})
    # THEN the batch of 2 is inferred and both outputs come back as JSON, equal to onnxruntime's
    assert response.status_code == 200, response.text
    y, label = expected_linear(X)
    np.testing.assert_allclose(response.json()["predictions"]["y"], y, rtol=1e-6)
    assert response.json()["predictions"]["label"] == label.tolist()


def test_octet_stream_with_an_explicit_shape(client: SyncASGIClient) -> None:
    # GIVEN the same bytes with X-Tensor-Shape naming the shape
    headers = {"content-type": "application/octet-stream", "x-tensor-shape": "2,4"}
    # WHEN posted, and once with a shape that does not match the byte count
    ok = client.post("/predict", content=X.tobytes(), headers=headers)
    bad = client.post("/predict", content=X.tobytes(), headers={**headers, "x-tensor-shape": "[3, 4]"})
    garbage = client.post("/predict", content=X.tobytes(), headers={**headers, "x-tensor-shape": "2,x"})
    # THEN the matching shape runs, the mismatch is a 422 and a malformed header a 400, both naming the header
    assert ok.status_code == 200, ok.text
    assert bad.status_code == 422 and bad.json()["field"] == "x-tensor-shape"
    assert "needs 48 bytes" in bad.json()["error"]
    assert garbage.status_code == 400 and garbage.json()["field"] == "x-tensor-shape"


@pytest.mark.parametrize("size", [7, 12])
def test_octet_stream_of_the_wrong_size_is_422(client: SyncASGIClient, size: int) -> None:
    # GIVEN 7 bytes (not whole float32s) or 3 floats (not whole rows of 4)
    response = client.post("/predict", content=b"\0" * size, headers={"content-type": "application/octet-stream"})
    # THEN 422 naming the input
    assert response.status_code == 422 and response.json()["field"] == "x"


@pytest.mark.parametrize(
    "array",
    [X, X.astype(">f8"), np.asfortranarray(X), X.astype(np.int16)],
    ids=["float32", "big-endian-float64", "fortran-order", "int16"],
)
def test_npy_bodies_decode_dtype_shape_and_order_from_the_header(client: SyncASGIClient, array: Any) -> None:
    # GIVEN a .npy file in another dtype, byte order or memory order than the model's float32 C arrays
    # WHEN posted as application/x-npy
    response = client.post("/predict", content=npy(array), headers={"content-type": "application/x-npy"})
    # THEN the values are read as numpy would read them and run
    assert response.status_code == 200, response.text
    y, _ = expected_linear(np.asarray(array, dtype=np.float32))
    np.testing.assert_allclose(response.json()["predictions"]["y"], y, rtol=1e-6)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (npy(np.array([[1, "a", None, 2.0]], dtype=object)), 415),
        (npy(np.zeros((1, 4), dtype=[("a", "<f4")])), 415),
        (npy(np.array([["a", "b", "c", "d"]])), 415),
        (npy(X)[:-4], 422),
        (npy(X) + b"\0\0\0\0", 422),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': os.system}" + b" " * 8, 400),
        (b"not a npy file at all", 400),
        (b"\x93NUMPY\x03\x00" + b"\0" * 16, 400),
        (b"\x93NUMPY\x01\x00\xff\xff" + b" " * 16, 400),
    ],
    ids=["object", "record", "unicode", "truncated", "trailing", "code-in-header", "garbage", "v3", "header-overrun"],
)
def test_unsafe_or_malformed_npy_is_refused(client: SyncASGIClient, body: bytes, status: int) -> None:
    # GIVEN a pickled object array, a record or text dtype, a size that disagrees with the header, or no .npy
    response = client.post("/predict", content=body, headers={"content-type": "application/x-npy"})
    # THEN a 4xx naming the input, never a 500 and never an unpickled object
    assert response.status_code == status, response.text
    assert response.json()["field"] == "x"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=96) | st.builds(lambda b: npy(X)[:40] + b, st.binary(max_size=96)),
    content_type=st.sampled_from(["application/octet-stream", "application/x-npy"]),
    shape=st.none() | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16),
    accept=st.sampled_from(["application/json", "application/x-npy", "application/octet-stream", "*/*"]),
)
def test_any_raw_body_is_answered_or_refused_never_a_500(
    client: SyncASGIClient, body: bytes, content_type: str, shape: str | None, accept: str
) -> None:
    # GIVEN arbitrary bytes (some behind a real .npy prefix), any shape header and any accepted reply
    headers = {"content-type": content_type, "accept": accept, **({"x-tensor-shape": shape} if shape else {})}
    # WHEN posted to /predict
    response = client.post("/predict", content=body, headers=headers)
    # THEN a 200 with both outputs, or a typed client error naming a field
    if response.status_code == 200:
        assert set(response.json()["predictions"]) == {"y", "label"}
    else:
        assert response.status_code in {400, 406, 415, 422}, response.text
        assert response.json()["field"]


def test_npy_array_is_a_read_only_view_of_the_body() -> None:
    # GIVEN a .npy body
    body = npy(images(2))
    # WHEN decoded
    array = read_npy(body, field="x")
    # THEN no copy is made: the array reads the request bytes in place
    assert not array.flags.writeable and not array.flags.owndata
    np.testing.assert_array_equal(array, images(2))


def test_accept_npy_returns_the_single_output_as_npy(scale_client: SyncASGIClient) -> None:
    # GIVEN a batch of 3 images as .npy, asking for a .npy reply
    x = images(3)
    headers = {"content-type": "application/x-npy", "accept": "application/x-npy"}
    # WHEN posted to /predict and to the V2 infer route
    for path in ("/predict", "/v2/models/scale/infer"):
        response = scale_client.post(path, content=npy(x), headers=headers)
        # THEN the reply is a .npy file holding 2·x
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/x-npy"
        np.testing.assert_array_equal(load_npy(response.content), 2 * x)


def test_accept_octet_stream_returns_raw_bytes_with_shape_and_dtype(scale_client: SyncASGIClient) -> None:
    # GIVEN raw bytes in and application/octet-stream accepted
    x = images(1)
    headers = {"content-type": "application/octet-stream", "accept": "application/octet-stream"}
    # WHEN posted
    response = scale_client.post("/predict", content=x.tobytes(), headers=headers)
    # THEN raw little-endian bytes come back, described by X-Tensor-Shape and X-Tensor-Dtype
    assert response.status_code == 200, response.text
    assert response.headers["x-tensor-shape"] == "1,3,4,4" and response.headers["x-tensor-dtype"] == "float32"
    np.testing.assert_array_equal(np.frombuffer(response.content, "<f4").reshape(1, *IMAGE), 2 * x)


def test_tensor_reply_of_a_multi_output_model_is_406(client: SyncASGIClient) -> None:
    # GIVEN the two-output linear model and Accept: application/x-npy
    headers = {"content-type": "application/octet-stream", "accept": "application/x-npy"}
    response = client.post("/predict", content=X.tobytes(), headers=headers)
    # THEN 406 naming the accept header (JSON remains the way to get both outputs)
    assert response.status_code == 406 and response.json()["field"] == "accept"


def test_v2_infer_with_a_raw_body_answers_v2_json(client: SyncASGIClient) -> None:
    # GIVEN raw bytes on the V2 infer route, without Inference-Header-Content-Length
    response = client.post(
        "/v2/models/linear/infer", content=X.tobytes(), headers={"content-type": "application/octet-stream"}
    )
    # THEN a V2 response with every output, equal to onnxruntime's
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    y, label = expected_linear(X)
    assert outputs["y"]["shape"] == [2, 3] and outputs["y"]["datatype"] == "FP32"
    np.testing.assert_allclose(outputs["y"]["data"], y.reshape(-1), rtol=1e-6)
    assert outputs["label"]["data"] == label.tolist()


def test_string_input_has_no_raw_form(echo_client: SyncASGIClient) -> None:
    # GIVEN a model whose input is a string tensor
    response = echo_client.post("/predict", content=b"abcd", headers={"content-type": "application/octet-stream"})
    # THEN 415: strings go as JSON
    assert response.status_code == 415 and response.json()["field"] == "content-type"


# --- through Mangum, as the Lambda handler runs it ---------------------------------------------


@pytest.fixture(scope="module")
def lambda_handler(scale: LoadedBundle) -> Any:
    return Mangum(create_app(served(scale)), lifespan="off", custom_handlers=HANDLERS)


@pytest.mark.parametrize("source", HTTP_SOURCES)
def test_base64_npy_event_through_each_front_door(lambda_handler: Any, source: str) -> None:
    # GIVEN a .npy body base64-encoded in the source's own event shape, asking for a .npy reply
    x = images(2)
    event = http_event(
        source,
        "POST",
        "/predict",
        npy(x),
        as_base64=True,
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    # WHEN the handler is invoked
    response = lambda_handler(event, LambdaContext())
    # THEN the reply is a base64 .npy body holding 2·x
    assert response["statusCode"] == 200, response
    assert response_headers(response)["content-type"] == "application/x-npy" and response["isBase64Encoded"]
    np.testing.assert_array_equal(load_npy(response_body(response)), 2 * x)


@pytest.mark.parametrize("source", ["http_api_v2", "function_url"])
def test_base64_octet_stream_event_on_v2_infer(lambda_handler: Any, source: str) -> None:
    # GIVEN raw bytes base64-encoded in an HTTP API v2 / Function URL event for the V2 route
    x = images(1)
    headers = {"content-type": "application/octet-stream"}
    event = http_event(source, "POST", "/v2/models/scale/infer", x.tobytes(), as_base64=True, headers=headers)
    # WHEN invoked
    response = lambda_handler(event, LambdaContext())
    # THEN a V2 JSON reply with 2·x
    assert response["statusCode"] == 200, response
    (output,) = json.loads(response_body(response))["outputs"]
    np.testing.assert_array_equal(np.asarray(output["data"], dtype=np.float32), (2 * x).reshape(-1))


def test_body_decoding_matches_mangum_for_odd_base64() -> None:
    # GIVEN valid base64, base64 with a newline (lenient) and plain text
    data = bytes(range(256)) * 3
    encoded = base64.b64encode(data).decode()
    # THEN the fast decoder returns what base64.b64decode returns, and plain bodies are passed through
    assert decode_body(encoded, is_base64=True) == data
    assert decode_body(encoded[:40] + "\n" + encoded[40:], is_base64=True) == data
    assert decode_body("text", is_base64=False) == b"text" and decode_body(None, is_base64=True) == b""


@pytest.mark.slow
def test_npy_body_through_the_lambda_runtime_emulator(local_published: Published, tmp_path: Path) -> None:
    from tests.handlers.rie import Emulator

    # GIVEN the real HTTP handler in aws-lambda-rie, serving the tiny float32 [?, 4] model
    rie = Emulator(local_published.env, tmp_path / "rie.log")
    try:
        x = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
        headers = {"content-type": "application/x-npy", "accept": "application/x-npy"}
        # WHEN a base64 .npy body is invoked through the HTTP API v2 event shape
        response = rie.invoke(http_event("http_api_v2", "POST", "/predict", npy(x), as_base64=True, headers=headers))
    finally:
        rie.stop()
    # THEN the .npy reply holds the model's predictions
    assert response["statusCode"] == 200, response
    np.testing.assert_allclose(load_npy(response_body(response)), tiny_onnx_expected(x), rtol=1e-5, atol=1e-6)
