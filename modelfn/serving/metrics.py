"""A tiny metrics hook: counters in memory, plus optional sinks (EMF, Prometheus) added by the platform layer.

Serving code only calls ``METRICS.add(...)``; where the numbers go is decided once at start, so a
local run stays silent and tests can read the counters back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger("modelfn.serving.metrics")

MetricSink = Callable[[str, float, str], None]
"""Receives ``(name, value, unit)`` for every metric recorded."""

MODEL_LOAD_FAILED = "ModelLoadFailed"
REQUEST_ERRORS = "RequestErrors"
UNEXPECTED_ERRORS = "UnexpectedErrors"


class Metrics:
    """Counts named events; forwards each to the registered sinks (none by default)."""

    def __init__(self) -> None:
        self._counts: dict[str, float] = {}
        self._sinks: list[MetricSink] = []
        self._lock = threading.Lock()

    def add(self, name: str, value: float = 1, unit: str = "Count") -> None:
        """Record one metric value; a failing sink is logged, never raised into a request."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + value
            sinks = list(self._sinks)
        for sink in sinks:
            try:
                sink(name, value, unit)
            except Exception:  # a metrics backend must never break serving
                logger.warning("metric sink %r failed for %s", sink, name, exc_info=True)

    def count(self, name: str) -> float:
        """The running total for ``name`` in this process."""
        with self._lock:
            return self._counts.get(name, 0)

    def add_sink(self, sink: MetricSink) -> None:
        """Forward every later metric to ``sink`` (e.g. an EMF or Prometheus adapter)."""
        with self._lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: MetricSink) -> None:
        """Stop forwarding to ``sink``."""
        with self._lock:
            self._sinks.remove(sink)


METRICS = Metrics()
"""The process-wide metrics hook."""
