"""Real Lambda event shapes from ``tests/events/*.json``, and a Lambda context object for invoking handlers."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
HTTP_SOURCES = ("apigw_rest_v1", "http_api_v2", "function_url", "alb")


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    """The stored event ``name`` (file stem), with top-level keys replaced by ``overrides``."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    event.update(copy.deepcopy(overrides))
    return event


def http_event(
    source: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    as_base64: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The stored ``source`` event re-aimed at ``method path`` with ``body``, in that source's own fields."""
    encoded = base64.b64encode(body).decode() if as_base64 else body.decode()
    event = load_event(source, body=encoded or None, isBase64Encoded=as_base64)
    extra = {"content-length": str(len(body)), **(headers or {})}
    if source in ("http_api_v2", "function_url"):
        event["rawPath"] = path
        event["requestContext"]["http"].update(method=method, path=path)
    else:
        event["path"] = path
        event["httpMethod"] = method
    if source == "apigw_rest_v1":
        event["requestContext"].update(httpMethod=method, path=f"/prod{path}", resourcePath="/{proxy+}")
        event["pathParameters"] = {"proxy": path.lstrip("/")}
    for name, value in extra.items():
        _set_header(event, name, value)
    if method == "GET":
        for name in ("content-type", "content-length"):
            _drop_header(event, name)
    return event


def _set_header(event: dict[str, Any], name: str, value: str) -> None:
    """Set a header case-insensitively in ``headers`` (and ``multiValueHeaders`` where the source has them)."""
    _drop_header(event, name)
    event["headers"][name] = value
    if isinstance(event.get("multiValueHeaders"), dict):
        event["multiValueHeaders"][name] = [value]


def _drop_header(event: dict[str, Any], name: str) -> None:
    for key in ("headers", "multiValueHeaders"):
        table = event.get(key)
        if isinstance(table, dict):
            for existing in [k for k in table if k.lower() == name]:
                del table[existing]


def response_headers(response: dict[str, Any]) -> dict[str, str]:
    """Lower-cased response headers from whichever fields the source uses."""
    out = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        out[key.lower()] = ", ".join(values)
    return out


def response_body(response: dict[str, Any]) -> bytes:
    """The response body bytes, decoding base64 when the handler flagged it."""
    body: str = response.get("body", "")
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


@dataclasses.dataclass
class LambdaContext:
    """The data Lambda passes as ``context`` (field meanings as in Mangum's ``LambdaContext`` protocol).

    ``remaining_ms`` is what ``get_remaining_time_in_millis`` reports: a fixed value, so deadline
    tests do not depend on timing.
    """

    remaining_ms: int = 30_000
    function_name: str = "modelfn-http"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:modelfn-http"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "6f1ab1b9-2b21-4e9f-8e2a-0c0d1e2f3a4b"
    log_group_name: str = "/aws/lambda/modelfn-http"
    log_stream_name: str = "2024/04/09/[$LATEST]0123456789abcdef0123456789abcdef"
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out."""
        return self.remaining_ms
