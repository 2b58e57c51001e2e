"""``modelfn invoke``: drive a Lambda handler in-process with one request or stored event.

The event's shape picks the handler, as on Lambda: storage notifications (S3 direct, via SQS or
EventBridge) go to the storage-event handler, HTTP front doors through exactly what Lambda runs
(Mangum over the same ASGI app), so what works here works behind API Gateway, Function URLs and ALB.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest

if TYPE_CHECKING:
    from mangum.types import LambdaCognitoIdentity, LambdaMobileClientContext

    from modelfn.config import Settings


@dataclasses.dataclass
class LocalLambdaContext:
    """The fields of Lambda's context object that handlers read, with a real deadline."""

    function_name: str = "modelfn-local"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/modelfn-local"
    log_stream_name: str = "local"
    identity: LambdaCognitoIdentity | None = None
    client_context: LambdaMobileClientContext | None = None
    memory_limit_in_mb: int = 1024
    timeout_s: float = 30.0
    aws_request_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:modelfn-local"
    _started: float = dataclasses.field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the platform would stop this invocation."""
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


def http_api_event(body: bytes, *, path: str = "/predict", method: str = "POST") -> dict[str, Any]:
    """A minimal API Gateway HTTP API (payload v2.0) event carrying ``body``."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "localhost", "content-length": str(len(body))},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "modelfn-invoke",
            },  # fmt: skip
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def read_event(event_path: Path) -> dict[str, Any]:
    """A stored Lambda event (a JSON object); ``-`` reads standard input."""
    import sys

    try:
        text = sys.stdin.read() if str(event_path) == "-" else event_path.read_text()
        event = json.loads(text)
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"cannot read event {event_path}: {exc}", field="event") from exc
    if not isinstance(event, dict):
        raise InvalidRequest(f"event {event_path} must be a JSON object, got {type(event).__name__}", field="event")
    return event


def is_http_event(event: dict[str, Any]) -> bool:
    """True when one of Mangum's front doors (API Gateway v1/v2, Function URL, ALB) recognises the event."""
    from mangum.adapter import HANDLERS
    from mangum.types import LambdaConfig

    config = LambdaConfig(api_gateway_base_path="/", text_mime_types=[], exclude_headers=[])
    return any(h.infer(event, LocalLambdaContext(), config) for h in HANDLERS if h.__name__ != "LambdaAtEdge")


def event_kind(event: dict[str, Any]) -> str:
    """``http`` or ``storage``: which handler the event's shape calls for (first match wins, Mangum-style)."""
    if is_http_event(event):
        return "http"
    from modelfn.batch.trigger import is_storage_event

    if is_storage_event(event):
        return "storage"
    raise InvalidRequest(
        "the event matches no handler: tried http (API Gateway REST v1 / HTTP API v2, Function URL, ALB) and storage"
        " (S3 notification direct, via SQS or EventBridge); `modelfn event s3|sqs|eventbridge|http` prints one",
        field="event",
    )


def invoke_handler(settings: Settings, *, data: str | None, event_path: Path | None, path: str) -> str:
    """Send one request or stored event to the handler its shape calls for; return the response as JSON text."""
    if event_path is not None:
        event = read_event(event_path)
    else:
        assert data is not None
        raw = Path(data[1:]).read_bytes() if data.startswith("@") else data.encode()
        event = http_api_event(raw, path=path)
    if event_kind(event) == "storage":
        return json.dumps(_invoke_storage(settings, event), indent=2)
    return json.dumps(_invoke_http(settings, event), indent=2)


def _invoke_storage(settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    from modelfn.batch.trigger import build_storage_handler

    return build_storage_handler(settings)(event, LocalLambdaContext())


def _invoke_http(settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    from modelfn.handlers.lambda_http import lambda_http_handler
    from modelfn.serving.asgi import create_app
    from modelfn.serving.state import ModelState

    handler = lambda_http_handler(create_app(ModelState.load(settings)))
    response: dict[str, Any] = handler(event, LocalLambdaContext())
    body = response.get("body", "")
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    try:
        response["body"] = json.loads(body)
    except ValueError:
        response["body"] = body
    response.pop("isBase64Encoded", None)
    return response
