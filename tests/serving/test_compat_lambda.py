"""The compatibility routes through the Lambda HTTP handler from every HTTP event source."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from modelfn.handlers.lambda_http import LambdaHTTPHandler, lambda_http_handler
from modelfn.loader import LoadedBundle
from modelfn.serving.asgi import create_app
from tests.handlers.events import HTTP_SOURCES, LambdaContext, http_event
from tests.serving.tiny_models import LABELS, expected_linear, served

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 0.5, 0.0]]
sources = pytest.mark.parametrize("source", HTTP_SOURCES)


@pytest.fixture
def handler(linear: LoadedBundle) -> LambdaHTTPHandler:
    return lambda_http_handler(create_app(served(linear)))


def form(files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart body and its content type, encoded by httpx as a client would send it."""
    request = httpx.Request("POST", "http://x/", files=files)
    return request.read(), request.headers["content-type"]


@sources
def test_tf_serving_predict_and_status(handler: LambdaHTTPHandler, source: str) -> None:
    # GIVEN TF Serving's row format in a Lambda HTTP event
    body = json.dumps({"instances": ROWS}).encode()
    # WHEN invoked for :predict and for the model status
    predicted = handler(http_event(source, "POST", "/v1/models/linear:predict", body), LambdaContext())
    status = handler(http_event(source, "GET", "/v1/models/linear"), LambdaContext())
    # THEN the same answers as in a container
    assert predicted["statusCode"] == 200, predicted
    y, _ = expected_linear(ROWS)
    np.testing.assert_allclose([p["y"] for p in json.loads(predicted["body"])["predictions"]], y, rtol=1e-6)
    assert json.loads(status["body"])["model_version_status"][0]["state"] == "AVAILABLE"


@sources
def test_torchserve_ping_and_base64_multipart(handler: LambdaHTTPHandler, source: str) -> None:
    # GIVEN a multipart upload, base64-encoded as API Gateway passes binary bodies
    body, content_type = form({"data": ("rows.json", json.dumps(ROWS).encode(), "application/json")})
    event = http_event(
        source, "POST", "/predictions/linear", body, as_base64=True, headers={"content-type": content_type}
    )
    # WHEN invoked, and /ping
    predicted = handler(event, LambdaContext())
    ping = handler(http_event(source, "GET", "/ping"), LambdaContext())
    # THEN top-k label probabilities per row, and Healthy
    assert predicted["statusCode"] == 200, predicted
    answer = json.loads(predicted["body"])
    assert [next(iter(row)) for row in answer] == [LABELS[i] for i in expected_linear(ROWS)[0].argmax(axis=1)]
    assert json.loads(ping["body"]) == {"status": "Healthy"}


@sources
def test_keras_multipart_and_image_refusal(handler: LambdaHTTPHandler, source: str) -> None:
    # GIVEN Keras REST API uploads: the input as JSON, and a JPEG
    ok_body, ok_type = form({"image": ("row.json", json.dumps(ROWS[0]).encode(), "application/json")})
    jpeg_body, jpeg_type = form({"image": ("cat.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)), "image/jpeg")})
    # WHEN invoked (base64 bodies)
    ok = handler(
        http_event(source, "POST", "/predict", ok_body, as_base64=True, headers={"content-type": ok_type}),
        LambdaContext(),
    )
    jpeg = handler(
        http_event(source, "POST", "/predict", jpeg_body, as_base64=True, headers={"content-type": jpeg_type}),
        LambdaContext(),
    )
    # THEN success with the arg-max label first, and a 415 naming the field
    assert ok["statusCode"] == 200, ok
    result = json.loads(ok["body"])
    assert result["success"] is True
    assert result["predictions"][0]["label"] == LABELS[int(expected_linear(ROWS[:1])[0].argmax())]
    assert jpeg["statusCode"] == 415 and json.loads(jpeg["body"])["field"] == "image"
