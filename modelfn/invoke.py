"""``modelfn invoke``: drive the Lambda HTTP handler in-process with one request or stored event.

The request goes through exactly what Lambda runs (Mangum over the same ASGI app), so what works
here works behind API Gateway, Function URLs and ALB.
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


def invoke_handler(settings: Settings, *, data: str | None, event_path: Path | None, path: str) -> str:
    """Build the handler for ``settings``, send one event, return the response as pretty JSON text."""
    from mangum import Mangum

    from modelfn.serving.asgi import create_app
    from modelfn.serving.state import ModelState

    if event_path is not None:
        try:
            event = json.loads(event_path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidRequest(f"cannot read event {event_path}: {exc}", field="event") from exc
    else:
        assert data is not None
        raw = Path(data[1:]).read_bytes() if data.startswith("@") else data.encode()
        event = http_api_event(raw, path=path)
    handler = Mangum(create_app(ModelState.load(settings)), lifespan="off")
    response = handler(event, LocalLambdaContext())
    body = response.get("body", "")
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    try:
        response["body"] = json.loads(body)
    except ValueError:
        response["body"] = body
    response.pop("isBase64Encoded", None)
    return json.dumps(response, indent=2)
