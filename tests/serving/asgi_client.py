"""A synchronous wrapper over ``httpx.AsyncClient(transport=ASGITransport(app))`` for plain pytest tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from modelfn.serving.asgi import ASGIApp


class SyncASGIClient:
    """Sends real HTTP requests through httpx's ASGI transport, one event loop for the client's life."""

    def __init__(self, app: ASGIApp) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()
