"""Reading an ASGI request: the types, headers and a size-limited body.

Shared by the lean app and the FastAPI documentation app, which therefore import this module and
not each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from modelfn.errors import PayloadTooLarge
from modelfn.serving.inference import header_int

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def request_headers(scope: Scope) -> dict[str, str]:
    """Lower-case header names; repeated headers joined with ``", "``."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name, value = bytes(raw_name).decode("latin-1").lower(), bytes(raw_value).decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole request body, refusing (413) as soon as it is known to exceed ``limit``."""
    check_body_size(headers, 0, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def check_body_size(headers: dict[str, str], size: int, limit: int) -> None:
    """413 when the declared ``content-length`` or ``size`` (bytes already received) exceeds ``limit``."""
    declared = headers.get("content-length")
    if declared is not None and header_int(declared, field="content-length") > limit:
        raise too_large(limit)
    if size > limit:
        raise too_large(limit)


def too_large(limit: int) -> PayloadTooLarge:
    """The 413 error naming the limit."""
    return PayloadTooLarge(f"request body is over the {limit}-byte limit (max_body_bytes)", field="body")
