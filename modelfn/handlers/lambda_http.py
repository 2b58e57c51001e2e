"""Lambda HTTP events answered on the calling thread: Mangum's event shapes, no ASGI cycle per request.

Mangum runs every invocation through an ASGI cycle on asyncio (a task, a queue,
``run_until_complete``) and builds an ASGI scope it then takes apart again: together about 0.15 ms
per request, more than everything else the Lambda path adds over ``session.run`` for a small model
(bench/bench_handler.py). The lean routes are synchronous and a sandbox serves one invocation at a
time, so this handler reads the four HTTP event sources (REST API, HTTP API payload v1 and v2,
Function URLs, ALB) itself and calls the routes directly, shaping each answer exactly as Mangum
(default settings) would. The documentation pages (FastAPI, ASGI only), event kinds no lean route
serves (Lambda@Edge) and answers Mangum shapes specially (repeated headers, cookies) still take
Mangum's own path. tests/handlers/test_lambda_http.py checks both give the same dictionary, event
source by event source.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from modelfn.handlers._body import decode_body
from modelfn.serving.asgi import LeanApp
from modelfn.serving.responses import JSON, Response
from modelfn.serving.routes import DOCS_PATHS

TEXT_MEDIA = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/vnd.api+json",
    "application/vnd.oai.openapi",
)
"""Mangum's default text media types: bodies of these are sent as text, everything else base64."""
V2, HTTP_V1, REST, ALB = "v2", "http_v1", "rest", "alb"


class LambdaHTTPHandler:
    """``handler(event, context)`` for every Lambda HTTP event source, over a lean app."""

    def __init__(self, app: LeanApp) -> None:
        self.app = app
        self._mangum: Any = None

    def _adapter(self) -> Any:
        """Mangum over the same app, built on first use (importing it and asyncio costs cold start)."""
        if self._mangum is None:
            from mangum import Mangum

            from modelfn.handlers._base64_body import HANDLERS

            self._mangum = Mangum(self.app, lifespan="off", custom_handlers=HANDLERS)
        return self._mangum

    def mangum(self, event: Any, context: Any) -> dict[str, Any]:
        """Mangum's own answer, through its whole ASGI cycle."""
        answer: dict[str, Any] = self._adapter()(event, context)
        return answer

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        source = event_source(event)
        if source is None:
            return self.mangum(event, context)
        method, path, headers = _request(source, event)
        if path in DOCS_PATHS:
            return self.mangum(event, context)
        body = decode_body(event.get("body"), is_base64=bool(event.get("isBase64Encoded", False)))
        response = self.app.respond(method, path, headers, body, context)
        if response.headers and _special_headers(response):  # Mangum's own shapes for these; the route ran once
            shaped: dict[str, Any] = self._adapter().infer(event, context)(
                {
                    "status": response.status,
                    "headers": response.header_list(),
                    "body": b"" if method == "HEAD" else response.body,
                }
            )
            return shaped
        return _answer(source, event, response, head=method == "HEAD")


def lambda_http_handler(app: LeanApp) -> LambdaHTTPHandler:
    """The Lambda handler for ``app`` (``modelfn.serving.asgi.create_app``)."""
    return LambdaHTTPHandler(app)


def _special_headers(response: Response) -> bool:
    """Set-Cookie or a repeated header, which Mangum moves to ``cookies`` / ``multiValueHeaders``."""
    names = [name for name, _ in response.headers]
    return "set-cookie" in names or len(set(names)) != len(names)


def event_source(event: Any) -> str | None:
    """Which HTTP event source sent ``event``, tested in Mangum's order; None for anything else."""
    if not isinstance(event, dict):
        return None
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return None
    if "elb" in context:
        return ALB
    if "version" in event:
        return V2 if event["version"] == "2.0" else HTTP_V1
    if "resource" in event:
        return REST
    return None


def _request(source: str, event: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """Method, path and lower-case headers, as Mangum's scope would give them to the app."""
    if source == V2:
        http = event["requestContext"]["http"]
        headers = {k.lower(): v for k, v in event.get("headers", {}).items()}
        if event.get("cookies"):
            headers["cookie"] = "; ".join(event["cookies"])
        return http["method"], _path(http["path"]), _as_asgi(headers)
    if source == ALB:
        return event["httpMethod"], _path(event["path"]), _alb_headers(event)
    headers = {k.lower(): v for k, v in (event.get("headers", {}) or {}).items()}
    if event.get("multiValueHeaders"):
        headers.update(
            {k.lower(): ", ".join(v) if isinstance(v, list) else "" for k, v in event["multiValueHeaders"].items()}
        )
    return event["httpMethod"], _path(event["path"]), _as_asgi(headers)


def _alb_headers(event: dict[str, Any]) -> dict[str, str]:
    """ALB headers: every value of a multi-value header, joined as the lean app joins repeated headers."""
    if "multiValueHeaders" not in event:
        return _as_asgi({k.lower(): v for k, v in event["headers"].items()})
    out: dict[str, str] = {}
    for name, values in event["multiValueHeaders"].items():
        key = name.lower()
        for value in values:
            out[key] = f"{out[key]}, {value}" if key in out else value
    return _as_asgi(out)


def _as_asgi(headers: dict[str, str]) -> dict[str, str]:
    """Header values as they read after Mangum's UTF-8 encoding and the app's Latin-1 decoding."""
    if "".join(headers.values()).isascii():  # the usual case: one pass, values unchanged
        return headers
    return {k: v if v.isascii() else v.encode().decode("latin-1") for k, v in headers.items()}


def _path(raw: str) -> str:
    return unquote(raw) if raw else "/"


def _answer(source: str, event: Mapping[str, Any], response: Response, *, head: bool) -> dict[str, Any]:
    """The response dictionary for ``source``, as Mangum shapes it."""
    headers = {"content-type": response.content_type, "content-length": str(len(response.body))}
    headers.update(response.headers)
    body, is_base64 = _body(b"" if head else response.body, response.content_type)
    if source == V2:
        return {"statusCode": response.status, "body": body, "headers": headers, "isBase64Encoded": is_base64}
    if source == ALB:
        shaped = {"statusCode": response.status, "body": body, "isBase64Encoded": is_base64}
        if "multiValueHeaders" in event:
            shaped["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
        else:
            shaped["headers"] = headers
        return shaped
    return {
        "statusCode": response.status,
        "headers": headers,
        "multiValueHeaders": {},
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _body(body: bytes, content_type: str) -> tuple[str, bool]:
    """Text for text media types (base64 when not UTF-8), base64 for everything else; empty stays empty."""
    if not body:
        return "", False
    if content_type == JSON or any(media in content_type for media in TEXT_MEDIA):
        try:
            return body.decode(), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode(), True
