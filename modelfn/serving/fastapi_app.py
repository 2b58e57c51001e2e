"""The FastAPI app behind ``/docs``, ``/redoc`` and ``/openapi.json``, built on first use only.

FastAPI gives the Swagger UI and ReDoc pages; the document itself is ``openapi_document``'s
(plain JSON Schema and examples run against the served model), built in a worker thread and
rebuilt only when the served model changes. Every other path goes to the lean app mounted
underneath, so mounted on its own (as a container could) this app answers exactly as the lean app
does. Only ``LeanApp.docs_app`` imports this module, on the first documentation request.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route

from modelfn._version import __version__

if TYPE_CHECKING:
    from modelfn.serving.request import Receive, Scope, Send
    from modelfn.serving.state import ModelState


class DocsApp(FastAPI):
    """FastAPI whose OpenAPI document describes the lean routes of one ``ModelState``."""

    def __init__(self, state: ModelState) -> None:
        super().__init__(title="modelfn", version=__version__)
        self.model_state = state
        self._document: tuple[object, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        # ahead of FastAPI's own /openapi.json, which would build the document on the event loop
        self.router.routes.insert(0, Route(self.openapi_url or "/openapi.json", self.serve_document))

    async def serve_document(self, request: Request) -> JSONResponse:
        """``/openapi.json``: built in a worker thread (examples run the model), so serving never stalls."""
        document = await run_in_threadpool(self.openapi)
        root_path = request.scope.get("root_path", "").rstrip("/")
        if root_path and self.root_path_in_servers:  # behind a path prefix (an API Gateway stage)
            document = {**document, "servers": [{"url": root_path}]}
        return JSONResponse(document)

    def openapi(self) -> dict[str, Any]:
        """The document for the model served now (rebuilt once it loads, or if it ever changes)."""
        from modelfn.serving.openapi_document import openapi_document

        with self._lock:
            bundle = self.model_state.bundle
            if self._document is None or self._document[0] is not bundle:
                self._document = (bundle, openapi_document(self.model_state))
            return self._document[1]


def build_fastapi_app(state: ModelState, lean: Callable[[Scope, Receive, Send], Awaitable[None]]) -> FastAPI:
    """The documentation pages over ``lean``, the app for ``state`` that serves every other path."""
    app = DocsApp(state)
    app.mount("/", lean)
    return app
