"""When a container answers a request on the event loop's thread instead of a worker thread.

Handing a request to a worker thread and back costs ~0.05–0.1 ms and two GIL hand-offs: more than
a random forest or a small MLP needs for the whole run. So requests whose recent runs were short
(a moving average under ``INLINE_BUDGET_MS``) with small bodies are run right on the loop, as a
FastAPI ``async def`` endpoint would; slower models (CNNs, large batches) keep running in worker
threads so the loop stays free for other connections and health checks. The first request of a
process always goes to a worker, which measures it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
INLINE_BUDGET_MS = 1.0
"""A run this short blocks the loop for less than a thread hop costs other requests."""
INLINE_MAX_BODY_BYTES = 64 * 1024
"""Bigger bodies take longer to decode than the average says: they go to a worker."""
SMOOTHING = 0.2


class InlinePace:
    """A moving average of run times, and the choice it implies."""

    def __init__(self, budget_ms: float = INLINE_BUDGET_MS) -> None:
        self.budget_ms = budget_ms
        self.average_ms: float | None = None

    def inline(self, body_bytes: int) -> bool:
        """True when this request should run on the loop's thread."""
        average = self.average_ms
        return average is not None and average < self.budget_ms and body_bytes <= INLINE_MAX_BODY_BYTES

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, timed into the average (errors included: they cost the loop the same)."""
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            ms = (time.perf_counter() - t0) * 1e3
            average = self.average_ms
            self.average_ms = ms if average is None else average + SMOOTHING * (ms - average)
