"""Fuzzing the Lambda front door: any HTTP event a platform can deliver is answered, never a crash or a 5xx (rule 21).

Requests reach the function as JSON events (API Gateway REST v1, HTTP API v2, Function URL, ALB)
that Mangum's event classes read: paths, header values and bodies arrive as text, bodies possibly
base64-encoded. Hypothesis varies each of them on every event source and every served route
(the compatibility routes too, which the OpenAPI document leaves out), through the same
``lambda_http_handler(create_app(state))`` the HTTP handler builds.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelfn.handlers.lambda_http import LambdaHTTPHandler, lambda_http_handler
from modelfn.serving.asgi import create_app
from tests.handlers.events import HTTP_SOURCES, LambdaContext, http_event, response_body, response_headers
from tests.serving.tiny_models import linear_bundle, served

PATHS = [
    "/predict",
    "/v2/models/linear/infer",
    "/v2/models/linear/versions/3/infer",
    "/v2/health/ready",
    "/v2",
    "/metrics",
    "/v1/models/linear:predict",
    "/v1/models/linear/versions/3:predict",
    "/v1/models/linear/metadata",
    "/v1/models",
    "/predictions/linear",
    "/predictions/linear/3",
    "/ping",
]
"""Every served route: V2, /predict, and the TF Serving / TorchServe compatibility routes."""
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)
BODIES = (
    st.binary(max_size=64)
    | st.just(b'{"instances": [[1.0, 2.0, 3.0, 4.0]]}')
    | st.just(b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}')
    | st.just(b'{"signature_name": "serving_default", "inputs": {"x": [[1, 2, 3, 4]]}}')
    | st.just(b'{"data": "t\xc3\xa9xt"}')
    | st.just(b'--b\r\nContent-Disposition: form-data; name="data"\r\n\r\n[[1, 2, 3, 4]]\r\n--b--\r\n')
    | TEXT.map(str.encode)
)
HEADER_NAMES = st.sampled_from(["content-type", "inference-header-content-length", "content-length", "x-ünï"])
HEADER_VALUES = TEXT | st.sampled_from(
    ["application/json", "multipart/form-data; boundary=b", "multipart/form-data", "text/plain", "image/png"]
)


@pytest.fixture(scope="module")
def handler() -> LambdaHTTPHandler:
    return lambda_http_handler(create_app(served(linear_bundle(), max_body_bytes=4096)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from(HTTP_SOURCES),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]),
    path=st.sampled_from(PATHS) | TEXT.map(lambda p: "/" + p),
    body=BODIES,
    as_base64=st.booleans(),
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3),
)
def test_any_platform_event_gets_a_typed_answer(
    handler: LambdaHTTPHandler,
    source: str,
    method: str,
    path: str,
    body: bytes,
    as_base64: bool,
    headers: dict[str, str],
) -> None:
    # GIVEN an event of this source with any method, path, body (plain or base64) and header values
    if not as_base64:
        body = body.decode("utf-8", errors="replace").encode()
    event = http_event(source, method, path, body, as_base64=as_base64, headers=headers)
    # WHEN the Lambda handler is invoked
    response: dict[str, Any] = handler(event, LambdaContext())
    # THEN the status is a success or a client error, and an error is the typed JSON body
    assert response["statusCode"] < 500, response
    if response["statusCode"] >= 400 and method != "HEAD":
        error = json.loads(response_body(response))
        assert set(error) <= {"error", "code", "field"} and error["error"], error
        assert response_headers(response)["content-type"] == "application/json"
    if response.get("isBase64Encoded"):
        base64.b64decode(response["body"], validate=True)
