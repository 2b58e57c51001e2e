"""The Lambda HTTP handler answers exactly as Mangum's full ASGI cycle does, event source by event source.

``modelfn.handlers.lambda_http`` skips Mangum's per-request event loop and calls the lean routes
directly; what reaches the platform (status, headers, multi-value headers, body, base64 flag) must be
the same dictionary Mangum builds, for successes, errors, HEAD, binary answers and the docs pages.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from mangum import Mangum

from modelfn.handlers._base64_body import HANDLERS
from modelfn.handlers.lambda_http import lambda_http_handler
from modelfn.loader import LoadedBundle
from modelfn.serving.asgi import LeanApp, create_app
from modelfn.serving.responses import Response
from tests.handlers.conftest import MAX_BODY_BYTES
from tests.handlers.events import HTTP_SOURCES, LambdaContext, http_event, response_body, response_headers
from tests.serving.tiny_models import served

ROWS = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
V2_BINARY_OUT = {
    "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
    "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
}
JSON = {"content-type": "application/json"}
REQUESTS: dict[str, tuple[str, str, bytes, dict[str, str]]] = {
    "predict": ("POST", "/predict", orjson.dumps(ROWS), JSON),
    "predict-labels": ("POST", "/predict", orjson.dumps({**ROWS, "return_labels": True}), JSON),
    "v2-infer-json": ("POST", "/v2/models/linear/infer", orjson.dumps({"inputs": V2_BINARY_OUT["inputs"]}), JSON),
    "v2-infer-binary-output": ("POST", "/v2/models/linear/infer", orjson.dumps(V2_BINARY_OUT), JSON),
    "malformed-json": ("POST", "/predict", b'{"instances": [1,', JSON),
    "wrong-shape": ("POST", "/predict", orjson.dumps({"instances": [[1.0, 2.0]]}), JSON),
    "unsupported-media": ("POST", "/predict", b"a,b", {"content-type": "text/plain"}),
    "too-large": ("POST", "/predict", b"[" + b"1," * MAX_BODY_BYTES + b"1]", JSON),
    "wrong-method": ("GET", "/predict", b"", {}),
    "unknown-path": ("GET", "/nowhere", b"", {}),
    "model-metadata": ("GET", "/v2/models/linear", b"", {}),
    "percent-encoded-path": ("GET", "/v2/models/lin%65ar/ready", b"", {}),
    "non-ascii-header": ("POST", "/predict", orjson.dumps(ROWS), {"content-type": "application/jsön"}),
    "head-ready": ("HEAD", "/v2/health/ready", b"", {}),
    "server-metadata": ("GET", "/v2", b"", {}),
    "tfserving-metadata": ("GET", "/v1/models/linear", b"", {}),
    "openapi-docs": ("GET", "/openapi.json", b"", {}),
}


@pytest.fixture
def handlers(linear: LoadedBundle) -> tuple[Any, Mangum]:
    """The direct handler and Mangum's full cycle over the same app."""
    app = create_app(served(linear, max_body_bytes=MAX_BODY_BYTES))
    return lambda_http_handler(app), Mangum(app, lifespan="off", custom_handlers=HANDLERS)


def _variant(source: str, event: dict[str, Any]) -> dict[str, Any]:
    """The stored events as other platform settings send them."""
    event = copy.deepcopy(event)
    if source == "alb-multi-value":  # a target group with multi-value headers on
        event["multiValueHeaders"] = {k: [v] for k, v in event.pop("headers").items()}
        event["multiValueHeaders"]["accept"] = ["application/json", "*/*"]
        event["multiValueQueryStringParameters"] = {}
    elif source == "http-api-v1":  # an HTTP API with payload format 1.0
        event["version"] = "1.0"
    elif source == "http-api-v2-cookies":
        event["cookies"] = ["session=1", "theme=dark"]
    return event


VARIANTS = {"alb-multi-value": "alb", "http-api-v1": "apigw_rest_v1", "http-api-v2-cookies": "http_api_v2"}


@pytest.mark.parametrize("source", [*HTTP_SOURCES, *VARIANTS])
@pytest.mark.parametrize("request_name", sorted(REQUESTS))
@pytest.mark.parametrize("as_base64", [False, True], ids=["text", "base64"])
def test_same_answer_as_mangum(handlers: tuple[Any, Mangum], source: str, request_name: str, as_base64: bool) -> None:
    # GIVEN one request in one event source's own shape
    method, path, body, headers = REQUESTS[request_name]
    event = http_event(VARIANTS.get(source, source), method, path, body, as_base64=as_base64, headers=headers)
    event = _variant(source, event)
    direct, mangum = handlers
    # WHEN the direct handler and Mangum's cycle answer it
    answer = direct(copy.deepcopy(event), LambdaContext())
    expected = mangum(copy.deepcopy(event), LambdaContext())
    # THEN the platform receives the same dictionary
    assert answer == expected


def test_other_events_take_mangums_own_path(handlers: tuple[Any, Mangum]) -> None:
    # GIVEN a Lambda@Edge viewer request for a served path (no lean event source reads it)
    direct, mangum = handlers
    event = {
        "Records": [
            {
                "cf": {
                    "config": {"distributionDomainName": "d.cloudfront.net"},
                    "request": {
                        "method": "GET",
                        "uri": "/v2/health/ready",
                        "querystring": "",
                        "headers": {"host": [{"key": "Host", "value": "d.cloudfront.net"}]},
                        "clientIp": "203.0.113.9",
                    },
                }
            }
        ]
    }
    # WHEN the handler answers it
    answer = direct(copy.deepcopy(event), LambdaContext())
    # THEN it is Mangum's answer, and the model is ready
    assert answer == mangum(copy.deepcopy(event), LambdaContext())
    assert answer["status"] == 200


def test_answers_carry_what_the_request_asked(handlers: tuple[Any, Mangum]) -> None:
    # GIVEN an HTTP API v2 event asking for a binary V2 output, and one HEAD request
    direct, _ = handlers
    method, path, body, headers = REQUESTS["v2-infer-binary-output"]
    binary = direct(http_event("http_api_v2", method, path, body, headers=headers), LambdaContext())
    head = direct(http_event("http_api_v2", "HEAD", "/v2/health/ready"), LambdaContext())
    # THEN the binary answer is base64-flagged with the V2 header length, and HEAD has no body
    assert binary["statusCode"] == 200
    assert binary["isBase64Encoded"] is True
    assert "inference-header-content-length" in response_headers(binary)
    assert head["statusCode"] == 200
    assert response_body(head) == b""


def test_deadline_and_size_limits_hold_on_the_direct_path(handlers: tuple[Any, Mangum]) -> None:
    # GIVEN an invocation with 50 ms left, and a body declared larger than the limit
    direct, _ = handlers
    method, path, body, headers = REQUESTS["predict"]
    late = direct(http_event("http_api_v2", method, path, body, headers=headers), LambdaContext(remaining_ms=50))
    declared = {**headers, "content-length": str(MAX_BODY_BYTES + 1)}
    event = http_event("http_api_v2", method, path, body, headers=declared)
    big = direct(event, LambdaContext())
    # THEN the first is a retryable 503 naming the deadline, the second a 413 naming the body
    assert late["statusCode"] == 503
    assert orjson.loads(response_body(late))["field"] == "deadline"
    assert response_headers(late)["retry-after"]
    assert big["statusCode"] == 413
    assert orjson.loads(response_body(big))["field"] == "body"


def test_repeated_headers_take_mangums_shapes_and_the_route_runs_once(linear: LoadedBundle) -> None:
    # GIVEN an app whose answer carries two Set-Cookie headers (Mangum moves them to cookies / multiValueHeaders)
    calls: list[str] = []

    class CookieApp(LeanApp):
        def respond(
            self, method: str, path: str, headers: dict[str, str], body: bytes, context: Any = None
        ) -> Response:
            calls.append(path)
            return Response(status=200, body=b"{}", headers=(("set-cookie", "a=1"), ("set-cookie", "b=2")))

    direct = lambda_http_handler(CookieApp(served(linear)))
    # WHEN an HTTP API v2 and a REST API event are answered
    v2 = direct(http_event("http_api_v2", "GET", "/v2", b""), LambdaContext())
    rest = direct(http_event("apigw_rest_v1", "GET", "/v2", b""), LambdaContext())
    # THEN the cookies are in each source's own field, and each request ran the route once
    assert v2["cookies"] == ["a=1", "b=2"]
    assert rest["multiValueHeaders"]["set-cookie"] == ["a=1", "b=2"]
    assert calls == ["/v2", "/v2"]
