"""The lean ASGI app's protocol duties: lifespan that loads nothing, and streamed bodies counted against the limit."""

from __future__ import annotations

import asyncio
from typing import Any

from modelfn.serving.asgi import create_app
from modelfn.serving.state import ModelState


def run_asgi(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drive one ASGI call with scripted ``receive`` messages; return everything the app sent."""
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(app(scope, receive, send))
    return sent


def test_lifespan_completes_startup_and_shutdown(state: ModelState) -> None:
    # GIVEN the lean app under a server that runs lifespan (uvicorn's default)
    app = create_app(state)
    # WHEN startup then shutdown are sent
    sent = run_asgi(app, {"type": "lifespan"}, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    # THEN both complete, and the already-loaded model is untouched
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert state.ready


def test_chunked_body_without_content_length_is_cut_off_at_the_limit(state: ModelState) -> None:
    # GIVEN a streamed body (no Content-Length) whose chunks add up to more than the 64 KiB limit
    chunk = {"type": "http.request", "body": b" " * 40_000, "more_body": True}
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"content-type", b"application/json")]}
    # WHEN the app reads it
    sent = run_asgi(create_app(state), scope, [chunk, chunk, chunk | {"more_body": False}])
    # THEN it answers 413 as soon as the limit is passed
    assert sent[0]["status"] == 413
    assert b"payload_too_large" in sent[1]["body"]


def test_deadline_from_the_lambda_context_in_scope(state: ModelState) -> None:
    # GIVEN a scope carrying a Lambda context with 10 ms left (as Mangum puts it under "aws.context")
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 10

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [], "aws.context": Context()}
    body = {"type": "http.request", "body": b'{"instances": [[1, 2, 3, 4]]}', "more_body": False}
    # WHEN the request arrives
    sent = run_asgi(create_app(state, deadline_margin_ms=200), scope, [body])
    # THEN 503 + Retry-After instead of running the model
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"1") in sent[0]["headers"]
