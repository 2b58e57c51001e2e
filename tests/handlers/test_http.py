"""The Lambda HTTP handler over every HTTP event source: API Gateway REST v1, HTTP API v2, Function URL, ALB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from modelfn.errors import IntegrityError
from modelfn.handlers.lambda_http import LambdaHTTPHandler, lambda_http_handler
from modelfn.serving.asgi import create_app
from tests.handlers.conftest import MAX_BODY_BYTES
from tests.handlers.events import (
    HTTP_SOURCES,
    LambdaContext,
    http_event,
    load_event,
    response_body,
    response_headers,
)
from tests.serving.tiny_models import ROOT_DIGEST, expected_linear, served

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0]]
PREDICT_BODY = orjson.dumps({"instances": ROWS})
REPO_ROOT = Path(__file__).resolve().parents[2]

sources = pytest.mark.parametrize("source", HTTP_SOURCES)


@sources
def test_stored_event_is_served_as_is(handler: LambdaHTTPHandler, source: str) -> None:
    # GIVEN the stored event exactly as the platform sends it (POST /predict, one row)
    event = load_event(source)
    # WHEN the handler is invoked
    response = handler(event, LambdaContext())
    # THEN it answers 200 with JSON predictions
    assert response["statusCode"] == 200, response
    assert response["isBase64Encoded"] is False
    y, _ = expected_linear([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(json.loads(response["body"])["predictions"]["y"], y, rtol=1e-6)


@sources
@pytest.mark.parametrize("as_base64", [False, True], ids=["text-body", "base64-body"])
def test_predict_with_text_or_base64_body(handler: LambdaHTTPHandler, source: str, as_base64: bool) -> None:
    # GIVEN a predict body, sent plain or base64-encoded (isBase64Encoded: true)
    event = http_event(source, "POST", "/predict", PREDICT_BODY, as_base64=as_base64)
    # WHEN invoked
    response = handler(event, LambdaContext())
    # THEN the predictions equal onnxruntime's, and the JSON response is not base64
    assert response["statusCode"] == 200, response
    assert response["isBase64Encoded"] is False
    assert response_headers(response)["content-type"] == "application/json"
    y, label = expected_linear(ROWS)
    predictions = json.loads(response["body"])["predictions"]
    np.testing.assert_allclose(predictions["y"], y, rtol=1e-6)
    assert predictions["label"] == label.tolist()


@sources
def test_body_over_the_limit_is_413_naming_it(handler: LambdaHTTPHandler, source: str) -> None:
    # GIVEN a body larger than the configured limit
    body = orjson.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]] * 100})
    assert len(body) > MAX_BODY_BYTES
    # WHEN invoked
    response = handler(http_event(source, "POST", "/predict", body), LambdaContext())
    # THEN 413 with the limit in the message
    assert response["statusCode"] == 413
    error = json.loads(response["body"])
    assert error["code"] == "payload_too_large" and str(MAX_BODY_BYTES) in error["error"]


@sources
def test_malformed_json_is_400(handler: LambdaHTTPHandler, source: str) -> None:
    # WHEN a truncated JSON body arrives
    response = handler(http_event(source, "POST", "/predict", b'{"instances": [[1, 2'), LambdaContext())
    # THEN 400 naming the body
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["field"] == "body"


@sources
def test_health_ready_reports_the_verified_model(handler: LambdaHTTPHandler, source: str) -> None:
    # WHEN readiness is read through the platform
    response = handler(http_event(source, "GET", "/v2/health/ready"), LambdaContext())
    # THEN the verified identity comes back
    assert response["statusCode"] == 200
    health = json.loads(response["body"])
    assert (health["name"], health["version"], health["root_digest"]) == ("linear", 3, ROOT_DIGEST)
    assert health["verified_at"].startswith("2024-04-09T18:03:49")


@sources
def test_near_deadline_is_503_with_retry_after_not_a_gateway_timeout(handler: LambdaHTTPHandler, source: str) -> None:
    # GIVEN an invocation with only 50 ms left
    event = http_event(source, "POST", "/predict", PREDICT_BODY)
    # WHEN invoked
    response = handler(event, LambdaContext(remaining_ms=50))
    # THEN the model is not run: 503 + Retry-After, code deadline_exceeded
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["code"] == "deadline_exceeded"
    assert int(response_headers(response)["retry-after"]) >= 1


@sources
def test_not_ready_is_503_with_retry_after(source: str) -> None:
    # GIVEN a function whose model failed verification at init
    handler = lambda_http_handler(create_app(served(None, failure=IntegrityError("model.onnx digest mismatch"))))
    # WHEN a prediction is asked for
    response = handler(http_event(source, "POST", "/predict", PREDICT_BODY), LambdaContext())
    # THEN 503 + Retry-After, and no prediction
    assert response["statusCode"] == 503
    assert "retry-after" in response_headers(response)
    assert "predictions" not in response["body"]


@sources
def test_v2_binary_response_is_base64_for_the_platform(handler: LambdaHTTPHandler, source: str) -> None:
    # GIVEN a V2 request asking for binary outputs
    request = orjson.dumps(
        {
            "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": ROWS}],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    )
    # WHEN invoked through the platform
    response = handler(http_event(source, "POST", "/v2/models/linear/infer", request), LambdaContext())
    # THEN the binary body travels base64-encoded and decodes to the exact tensor
    assert response["statusCode"] == 200, response
    assert response["isBase64Encoded"] is True
    raw = response_body(response)
    split = int(response_headers(response)["inference-header-content-length"])
    meta = json.loads(raw[:split])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 2 * 3 * 4
    y, _ = expected_linear(ROWS)
    np.testing.assert_array_equal(np.frombuffer(raw[split:], dtype="<f4").reshape(2, 3), y)


def test_docs_are_served_behind_the_platform(handler: LambdaHTTPHandler) -> None:
    # WHEN /docs is requested through a Function URL
    response = handler(http_event("function_url", "GET", "/docs"), LambdaContext())
    # THEN the lazily built FastAPI app answers with HTML
    assert response["statusCode"] == 200
    assert "text/html" in response_headers(response)["content-type"]
    assert "swagger" in response_body(response).decode().lower()


def test_handler_module_loads_at_import_and_serves_503_when_the_model_is_missing(tmp_path: Path) -> None:
    # GIVEN a fresh interpreter configured (by environment) for a model absent from an empty store
    env = {**os.environ, "MODELFN_STORE_URL": str(tmp_path), "MODELFN_MODEL_NAME": "absent"}
    env.pop("MODELFN_CONFIG", None)
    code = """
import json, sys
import modelfn.handlers.http as h
from tests.handlers.events import LambdaContext, http_event
ready = h.handler(http_event("http_api_v2", "GET", "/v2/health/ready"), LambdaContext())
live = h.handler(http_event("http_api_v2", "GET", "/v2/health/live"), LambdaContext())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette", "torch", "sklearn"))
print(json.dumps({"ready": ready, "live": live["statusCode"], "heavy": heavy}))
"""
    # WHEN the handler module is imported (INIT) and invoked
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # THEN init succeeded, readiness is 503 + Retry-After, liveness holds, and no web framework was imported
    assert out["ready"]["statusCode"] == 503
    assert "retry-after" in response_headers(out["ready"])
    assert json.loads(out["ready"]["body"])["code"] == "model_not_ready"
    assert out["live"] == 200
    assert out["heavy"] == []
