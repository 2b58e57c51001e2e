"""Which container requests run on the event loop's thread, and that the answers do not depend on it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import orjson

from modelfn.serving.asgi import create_app
from modelfn.serving.inline import INLINE_MAX_BODY_BYTES, InlinePace
from tests.serving.tiny_models import expected_linear, linear_bundle, served


def test_pace_runs_inline_only_after_short_runs_and_for_small_bodies() -> None:
    # GIVEN a fresh pace
    pace = InlinePace(budget_ms=5.0)
    # THEN the first request goes to a worker (nothing measured yet)
    assert not pace.inline(100)
    # WHEN a few short runs are measured
    for _ in range(3):
        assert pace.run(lambda: 42) == 42
    # THEN small bodies run inline, big ones still go to a worker
    assert pace.inline(100)
    assert not pace.inline(INLINE_MAX_BODY_BYTES + 1)
    # WHEN runs turn slow (20 ms against a 5 ms budget)
    for _ in range(20):
        pace.run(time.sleep, 0.02)
    # THEN requests go back to worker threads
    assert not pace.inline(100)


def test_a_failing_run_is_timed_and_raises() -> None:
    # GIVEN a pace and a run that fails
    pace = InlinePace()

    def fail() -> None:
        raise ValueError("boom")

    # WHEN it runs
    try:
        pace.run(fail)
    except ValueError as exc:
        assert str(exc) == "boom"
    else:
        raise AssertionError("the error was swallowed")
    # THEN its time still counts
    assert pace.average_ms is not None


async def _post(app: Any, body: bytes) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", b"application/json")],
    }
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_container_answers_are_the_same_inline_or_in_a_worker() -> None:
    # GIVEN the lean app over a real tiny model, and a loop that records which threads run the model
    app = create_app(served(linear_bundle()))
    app.pace.budget_ms = 60_000.0  # every run counts as short here: the test must not depend on the machine's speed
    threads: list[int] = []
    run = app.pace.run

    def recording_run(fn: Any, *args: Any) -> Any:
        threads.append(threading.get_ident())
        return run(fn, *args)

    app.pace.run = recording_run  # type: ignore[method-assign]
    rows = [[1.0, 2.0, 3.0, 4.0]]
    body = orjson.dumps({"instances": rows})

    async def three_requests() -> tuple[list[tuple[int, bytes]], int]:
        answers = [await _post(app, body) for _ in range(3)]
        return answers, threading.get_ident()

    # WHEN three requests are served in a row
    answers, loop_thread = asyncio.run(three_requests())
    # THEN the first ran in a worker thread and the later ones on the loop's own thread
    assert threads[0] != loop_thread
    assert threads[1:] == [loop_thread, loop_thread]
    # AND every answer is the model's prediction
    y, _ = expected_linear(rows)
    for status, payload in answers:
        assert status == 200
        np.testing.assert_allclose(orjson.loads(payload)["predictions"]["y"], y, rtol=1e-6)
