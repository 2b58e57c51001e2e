"""Every client mistake is a 4xx JSON error naming the field; not-ready is 503 + Retry-After; never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from modelfn.errors import SignatureError
from modelfn.loader import LoadedBundle
from modelfn.runtime.onnx_session import OnnxModel
from modelfn.serving.asgi import create_app
from modelfn.serving.metrics import METRICS, UNEXPECTED_ERRORS
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import served

INFER = "/v2/models/linear/infer"


def tensor(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    return {"inputs": [base | overrides]}


def binary(header: dict[str, Any], tail: bytes) -> dict[str, Any]:
    """Request kwargs for the binary extension: JSON header, then ``tail``."""
    head = orjson.dumps(header)
    return {"content": head + tail, "headers": {"inference-header-content-length": str(len(head))}}


CASES: list[tuple[str, str, dict[str, Any], int, str, str]] = [
    # (id, path, request kwargs, status, code, field)
    ("predict-malformed-json", "/predict", {"content": b'{"instances": [1,'}, 400, "invalid_request", "body"),
    ("infer-malformed-json", INFER, {"content": b"{nope"}, 400, "invalid_request", "body"),
    ("predict-not-an-object", "/predict", {"json": [1, 2]}, 400, "invalid_request", "body"),
    ("predict-both-forms", "/predict", {"json": {"instances": [], "inputs": {}}}, 400, "invalid_request", "instances"),
    ("predict-unknown-key", "/predict", {"json": {"instancez": [[1]]}}, 400, "invalid_request", "instancez"),
    ("infer-no-inputs", INFER, {"json": {"inputs": []}}, 400, "invalid_request", "inputs"),
    ("infer-bad-datatype", INFER, {"json": tensor(datatype="FP33")}, 400, "invalid_request", "x"),
    ("infer-bad-shape-type", INFER, {"json": tensor(shape=[1, -4])}, 400, "invalid_request", "x"),
    ("infer-bad-header-length", INFER, {"content": b"{}", "headers": {"inference-header-content-length": "99"}},
     400, "invalid_request", "Inference-Header-Content-Length"),
    ("infer-unclaimed-binary", INFER, binary(tensor(shape=[0, 4], data=[]), b"xx"), 400, "invalid_request", "body"),
    ("unknown-model", "/v2/models/other/infer", {"json": tensor()}, 404, "model_not_found", "model_name"),
    ("unknown-version", "/v2/models/linear/versions/2/infer", {"json": tensor()}, 404, "model_not_found",
     "model_version"),
    ("unknown-model-metadata", "/v2/models/other", {"method": "GET"}, 404, "model_not_found", "model_name"),
    ("unknown-route", "/v3/whatever", {"method": "GET"}, 404, "not_found", "path"),
    ("wrong-method", "/predict", {"method": "GET"}, 405, "method_not_allowed", "method"),
    ("too-large", "/predict", {"content": b"[" + b"1," * 40_000 + b"1]"}, 413, "payload_too_large", "body"),
    ("wrong-content-type", "/predict", {"content": b"instances=1", "headers": {"content-type":
     "application/x-www-form-urlencoded"}}, 415, "unsupported_media_type", "content-type"),
    ("predict-wrong-shape", "/predict", {"json": {"instances": [[1, 2, 3]]}}, 422, "unprocessable_input", "x"),
    ("predict-wrong-dtype", "/predict", {"json": {"instances": [["a", "b", "c", "d"]]}}, 422,
     "unprocessable_input", "x"),
    ("predict-ragged", "/predict", {"json": {"instances": [[1, 2, 3, 4], [1]]}}, 422, "unprocessable_input", "x"),
    ("predict-unknown-input", "/predict", {"json": {"inputs": {"z": [[1, 2, 3, 4]]}}}, 422,
     "unprocessable_input", "z"),
    ("predict-labels-not-bool", "/predict", {"json": {"instances": [[1, 2, 3, 4]], "return_labels": "yes"}}, 400,
     "invalid_request", "return_labels"),
    ("infer-count-mismatch", INFER, {"json": tensor(shape=[2, 4])}, 422, "unprocessable_input", "x"),
    ("infer-float-for-int", INFER, {"json": tensor(datatype="INT64", data=[1.5, 2, 3, 4])}, 422,
     "unprocessable_input", "x"),
    ("infer-out-of-range", INFER, {"json": tensor(datatype="UINT8", data=[1, 2, 3, 300])}, 422,
     "unprocessable_input", "x"),
    ("infer-wrong-schema-shape", INFER, {"json": tensor(shape=[1, 2, 2])}, 422, "unprocessable_input", "x"),
    ("infer-unknown-output", INFER, {"json": tensor() | {"outputs": [{"name": "nope"}]}}, 422,
     "unprocessable_input", "nope"),
    ("infer-binary-size-wrong", INFER, binary({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
     "parameters": {"binary_data_size": 8}}]}, b"12345678"), 422, "unprocessable_input", "x"),
    ("infer-binary-size-overruns", INFER, binary({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
     "parameters": {"binary_data_size": 99}}]}, b"12345678"), 400, "invalid_request", "x"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_client_errors_are_json_naming_the_field(
    client: SyncASGIClient, path: str, kwargs: dict[str, Any], status: int, code: str, field: str
) -> None:
    # GIVEN a request that is wrong in exactly one way
    kwargs = dict(kwargs)
    method = kwargs.pop("method", "POST")
    # WHEN it is sent to the lean app
    response = client.request(method, path, **kwargs)
    # THEN the status, error code and field say what is wrong
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["field"] == field
    assert isinstance(body["error"], str) and body["error"]


def test_413_names_the_limit(client: SyncASGIClient) -> None:
    # GIVEN a body one byte over the configured 64 KiB limit, declared by Content-Length
    body = b" " * (64 * 1024 + 1)
    # WHEN posted
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    # THEN the message names the limit in bytes and the setting that controls it
    assert response.status_code == 413
    assert "65536" in response.json()["error"] and "max_body_bytes" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "/predict", "POST"), ("TRACE", "/predict", "POST"), ("POST", "/v2/health/ready", "GET, HEAD")],
)
def test_405_lists_the_methods_the_route_takes(client: SyncASGIClient, method: str, path: str, allow: str) -> None:
    # GIVEN a route called with a method it does not take
    response = client.request(method, path)
    # THEN the 405 carries the Allow header RFC 9110 requires
    assert response.status_code == 405 and response.headers["allow"] == allow


def test_body_at_the_limit_is_read(linear: LoadedBundle) -> None:
    # GIVEN a limit that exactly fits a valid request
    body = b'{"instances": [[1, 2, 3, 4]]}'
    client = SyncASGIClient(create_app(served(linear, max_body_bytes=len(body))))
    try:
        # WHEN posted
        response = client.post("/predict", content=body)
    finally:
        client.close()
    # THEN it is served (the limit is inclusive)
    assert response.status_code == 200, response.text


@pytest.fixture
def not_ready_client() -> Iterator[SyncASGIClient]:
    state = served(None, failure=SignatureError("bad signature over /secret/path"))
    client = SyncASGIClient(create_app(state))
    yield client
    client.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/health/ready"),
        ("GET", "/v2/models/linear/ready"),
        ("GET", "/v2/models/linear"),
        ("POST", "/v2/models/linear/infer"),
        ("POST", "/predict"),
    ],
)
def test_not_ready_is_503_with_retry_after(not_ready_client: SyncASGIClient, method: str, path: str) -> None:
    # GIVEN a state whose load failed verification
    # WHEN any model route is called
    response = not_ready_client.request(method, path, json={"instances": [[1, 2, 3, 4]]} if method == "POST" else None)
    # THEN 503 + Retry-After, with the failure's code but none of its internals
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["code"] == "model_not_ready" and "signature" in body["error"]
    assert "/secret/path" not in response.text


def test_liveness_holds_while_not_ready(not_ready_client: SyncASGIClient) -> None:
    # WHEN liveness is probed on a not-ready server
    response = not_ready_client.get("/v2/health/live")
    # THEN the process reports itself alive (so the platform replaces it via readiness, not a crash loop)
    assert response.status_code == 200


def test_unknown_model_while_not_ready_is_still_404(not_ready_client: SyncASGIClient) -> None:
    # WHEN a different model is asked for while the configured one failed to load
    response = not_ready_client.get("/v2/models/other/ready")
    # THEN the answer is about the name, not readiness
    assert response.status_code == 404 and response.json()["field"] == "model_name"


class ExplodingModel(OnnxModel):
    """A real OnnxModel whose predict hits a bug (the one case a 500 is right)."""

    def predict(self, feeds: Any, outputs: Any = None) -> dict[str, np.ndarray[Any, Any]]:
        raise RuntimeError("internal detail: /opt/secret/weights")


def test_unexpected_errors_are_a_generic_500_and_counted(linear: LoadedBundle) -> None:
    # GIVEN a served model with a bug in its run path
    broken = ExplodingModel.__new__(ExplodingModel)
    broken.__dict__.update(linear.model.__dict__)
    bundle = LoadedBundle(
        manifest=linear.manifest,
        model=broken,
        root_digest=linear.root_digest,
        key_hint=linear.key_hint,
        verified_at=linear.verified_at,
    )
    client = SyncASGIClient(create_app(served(bundle)))
    before = METRICS.count(UNEXPECTED_ERRORS)
    try:
        # WHEN a valid request reaches it
        response = client.post("/predict", json={"instances": [[1, 2, 3, 4]]})
    finally:
        client.close()
    # THEN the client sees a generic JSON 500 (no internals) and the error is counted
    assert response.status_code == 500
    assert response.json()["code"] == "internal"
    assert "secret" not in response.text
    assert METRICS.count(UNEXPECTED_ERRORS) == before + 1
