"""Mangum's HTTP event handlers with a SIMD base64 decode of the request body and a scope built once.

For the requests that still take Mangum's own path (the docs pages; ``modelfn.handlers.lambda_http``
answers the rest) and for anyone running ``Mangum(app)`` directly: the body is decoded with
``modelfn.handlers._body.decode_body`` (pybase64) instead of ``base64.b64decode``, and the scope,
which Mangum builds anew on every read (twice per HTTP API v2 answer), once per event. Passed to
``Mangum(custom_handlers=...)``, which tries these before its own.
"""

from __future__ import annotations

from functools import cached_property

from mangum.handlers.alb import ALB
from mangum.handlers.api_gateway import APIGateway, HTTPGateway
from mangum.types import LambdaHandler, Scope

from modelfn.handlers._body import decode_body


class FastHTTPGateway(HTTPGateway):
    """API Gateway HTTP API (payload v1/v2) and Function URL events."""

    @cached_property
    def scope(self) -> Scope:  # a cached read of the same scope
        scope: Scope = HTTPGateway.scope.fget(self)  # type: ignore[attr-defined]
        return scope

    @property
    def body(self) -> bytes:
        return decode_body(self.event.get("body"), is_base64=bool(self.event.get("isBase64Encoded", False)))


class FastAPIGateway(APIGateway):
    """API Gateway REST API events."""

    @cached_property
    def scope(self) -> Scope:  # a cached read of the same scope
        scope: Scope = APIGateway.scope.fget(self)  # type: ignore[attr-defined]
        return scope

    @property
    def body(self) -> bytes:
        return decode_body(self.event.get("body"), is_base64=bool(self.event.get("isBase64Encoded", False)))


class FastALB(ALB):
    """Application Load Balancer events."""

    @cached_property
    def scope(self) -> Scope:  # a cached read of the same scope
        scope: Scope = ALB.scope.fget(self)  # type: ignore[attr-defined]
        return scope

    @property
    def body(self) -> bytes:
        return decode_body(self.event.get("body"), is_base64=bool(self.event.get("isBase64Encoded", False)))


HANDLERS: list[type[LambdaHandler]] = [FastALB, FastHTTPGateway, FastAPIGateway]
"""In Mangum's own order (ALB, HTTP API, REST API); Lambda@Edge stays Mangum's."""

__all__ = ["HANDLERS", "decode_body"]
