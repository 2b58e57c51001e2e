"""The lean ASGI app: the serving routes with no web framework on the request path.

``import fastapi`` alone costs ~270 ms of cold start, so the routes Lambda and containers serve
are dispatched here directly; only the documentation paths (``/docs``, ``/redoc``,
``/openapi.json``) are handed to a FastAPI app built on first use, which declares the same routes
over the same core functions. Lifespan is supported but does nothing: the model is loaded before
the app exists (Mangum runs lifespan per invocation, so it must stay ``"off"`` there).
"""

from __future__ import annotations

from typing import Any, Protocol

from modelfn.errors import ModelfnError, RouteNotFound
from modelfn.serving.inline import InlinePace
from modelfn.serving.metrics import INFERENCE_LATENCY, METRICS, error_metric
from modelfn.serving.request import Receive, Scope, Send, check_body_size, read_body, request_headers
from modelfn.serving.responses import Response, error_response, unexpected_error_response
from modelfn.serving.routes import (
    DEFAULT_DEADLINE_MARGIN_MS,
    DOCS_PATHS,
    POST_ROUTES,
    check_deadline,
    resolve,
    run_route,
)
from modelfn.serving.state import ModelState

DOCS_PACKAGES = frozenset({"fastapi", "starlette", "pydantic", "pydantic_core"})
"""What the documentation app needs; where they are absent (the Lambda zip) the docs paths answer a JSON 404."""


class ASGIApp(Protocol):
    """An ASGI 3 application (what Mangum and uvicorn run)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class LeanApp:
    """Serves V2 + /predict; delegates docs to a lazily built FastAPI app."""

    def __init__(self, state: ModelState, *, deadline_margin_ms: int = DEFAULT_DEADLINE_MARGIN_MS) -> None:
        self.state = state
        self.max_body_bytes = state.settings.max_body_bytes
        self.deadline_margin_ms = deadline_margin_ms
        self._docs_app: ASGIApp | None = None
        self.pace = InlinePace()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "websocket":  # not served: reject the handshake
            await send({"type": "websocket.close", "code": 1003})
            return
        if scope["type"] != "http":
            raise RuntimeError(f"unsupported ASGI scope type {scope['type']!r}")
        if scope["path"] in DOCS_PATHS:
            try:
                docs = self.docs_app()
            except RouteNotFound as exc:  # a slim deployment (the Lambda zip) leaves FastAPI out
                await _send(send, error_response(exc), head=scope["method"] == "HEAD")
                return
            await docs(scope, receive, send)
            return
        try:
            response = await self._handle(scope, receive)
            if response is None:  # the client disconnected while its request waited for a batch
                return
        except ModelfnError as exc:
            METRICS.add(error_metric(exc.code))
            response = error_response(exc)
        except Exception as exc:  # never leak internals; the log has the traceback
            response = unexpected_error_response(exc)
        await _send(send, response, head=scope["method"] == "HEAD")

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes, context: Any = None) -> Response:
        """One request whose body is already in memory, answered on this thread, errors included.

        The Lambda path (modelfn.handlers.lambda_http): a sandbox serves one invocation at a time, so
        there is nothing to wait for concurrently and no event loop to run. Same checks, in the same
        order, as the ASGI path below.
        """
        try:
            route = resolve(method, path)
            if route[0] not in POST_ROUTES:
                return run_route(self.state, route, headers, b"")
            check_deadline(context, self.deadline_margin_ms)
            check_body_size(headers, len(body), self.max_body_bytes)
            with METRICS.timed(INFERENCE_LATENCY, span="infer"):
                return run_route(self.state, route, headers, body)
        except ModelfnError as exc:
            METRICS.add(error_metric(exc.code))
            return error_response(exc)
        except Exception as exc:  # never leak internals; the log has the traceback
            return unexpected_error_response(exc)

    async def _handle(self, scope: Scope, receive: Receive) -> Response | None:
        route = resolve(scope["method"], scope["path"])
        headers = request_headers(scope)
        if route[0] not in POST_ROUTES:
            return run_route(self.state, route, headers, b"")
        context = scope.get("aws.context")
        check_deadline(context, self.deadline_margin_ms)
        body = await read_body(receive, headers, self.max_body_bytes)
        with METRICS.timed(INFERENCE_LATENCY, span="infer"):
            if context is not None:  # Mangum's own cycle: one invocation per Lambda sandbox, no thread hop
                return run_route(self.state, route, headers, body)
            if self.state.batcher is not None:  # container batching: small bodies on the loop, disconnects watched
                return await self.state.batcher.call(
                    receive, run_route, self.state, route, headers, body, size=len(body)
                )
            if self.pace.inline(len(body)):  # a hop to a worker thread would cost more than the run
                return self.pace.run(run_route, self.state, route, headers, body)
            import asyncio  # here, not at import: the Lambda path never runs an event loop

            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self.pace.run, run_route, self.state, route, headers, body)

    def docs_app(self) -> ASGIApp:
        """The FastAPI app behind ``/docs``; imported and built on first use only."""
        if self._docs_app is None:
            try:
                from modelfn.serving.fastapi_app import build_fastapi_app
            except ModuleNotFoundError as exc:
                if (exc.name or "").partition(".")[0] not in DOCS_PACKAGES:
                    raise
                raise RouteNotFound(
                    "the OpenAPI pages are not served here: this deployment leaves out FastAPI (pip install fastapi)",
                    field="path",
                ) from exc
            self._docs_app = build_fastapi_app(self.state, self)
        return self._docs_app


def create_app(state: ModelState, *, deadline_margin_ms: int = DEFAULT_DEADLINE_MARGIN_MS) -> LeanApp:
    """The ASGI app for ``state``: give it to uvicorn, or to ``modelfn.handlers.lambda_http`` on Lambda."""
    return LeanApp(state, deadline_margin_ms=deadline_margin_ms)


async def _send(send: Send, response: Response, *, head: bool = False) -> None:
    await send({"type": "http.response.start", "status": response.status, "headers": response.header_list()})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
