"""Framework-free responses: what every route returns, and the one place errors become HTTP.

The lean ASGI app and the FastAPI docs app both send these, so an error looks the same
whichever front door a request came through: ``{"error", "code", "field"}`` plus
``Retry-After`` for the retryable 503s.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from modelfn.errors import ModelfnError
from modelfn.serving.metrics import METRICS, REQUEST_ERRORS, UNEXPECTED_ERRORS

logger = logging.getLogger("modelfn.serving")

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
GENERIC_500 = b'{"error":"internal error; the request was logged","code":"internal"}'


@dataclasses.dataclass(frozen=True)
class Response:
    """Status, body bytes and headers (lower-case names); ``content-length`` is added when sent."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()

    def header_list(self) -> list[tuple[bytes, bytes]]:
        """Headers as ASGI wants them, with content type and length."""
        out = [(b"content-type", self.content_type.encode()), (b"content-length", str(len(self.body)).encode())]
        out.extend((k.encode(), v.encode()) for k, v in self.headers)
        return out


def dumps(obj: Any) -> bytes:
    """JSON bytes via orjson; numpy arrays serialize natively (NaN becomes null)."""
    import orjson

    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(obj: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A JSON response."""
    return Response(status=status, body=dumps(obj), headers=headers)


def error_response(exc: ModelfnError) -> Response:
    """The client-facing form of a modelfn error; unexpected ones are logged and kept generic."""
    if exc.status_code == 500:
        return unexpected_error_response(exc)
    METRICS.add(REQUEST_ERRORS)
    headers: tuple[tuple[str, str], ...] = ()
    retry_after = getattr(exc, "retry_after_s", None)
    if exc.status_code == 503:
        headers = (("retry-after", str(retry_after if retry_after is not None else 5)),)
    allow = getattr(exc, "allow", None)
    if allow:
        headers = (("allow", ", ".join(allow)),)  # RFC 9110: a 405 lists the methods the route takes
    return Response(status=exc.status_code, body=dumps(exc.to_dict()), headers=headers)


def unexpected_error_response(exc: BaseException) -> Response:
    """500 with a generic message; the details go to the log, never to the client."""
    METRICS.add(UNEXPECTED_ERRORS)
    logger.error("unexpected error serving a request", exc_info=exc)
    return Response(status=500, body=GENERIC_500)
