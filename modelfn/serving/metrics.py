"""A tiny metrics hook: counters in memory, plus optional sinks (EMF, Prometheus) added by the platform layer.

Serving code only calls ``METRICS.add(...)``; where the numbers go is decided once at start, so a
local run stays silent and tests can read the counters back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

logger = logging.getLogger("modelfn.serving.metrics")

MetricSink = Callable[[str, float, str], None]
"""Receives ``(name, value, unit)`` for every metric recorded."""
SpanFactory = Callable[[str], contextlib.AbstractContextManager[object]]
"""Opens a trace span (an X-Ray subsegment) around one phase; none by default."""

MODEL_LOAD_FAILED = "ModelLoadFailed"
REQUEST_ERRORS = "RequestErrors"
UNEXPECTED_ERRORS = "UnexpectedErrors"
COLD_START = "ColdStart"
LOAD_FETCH_TIME = "LoadFetchTime"
LOAD_VERIFY_TIME = "LoadVerifyTime"
LOAD_SESSION_TIME = "LoadSessionTime"
INFERENCE_LATENCY = "InferenceLatency"
BATCH_SIZE = "BatchSize"
ROWS_PROCESSED = "RowsProcessed"
BATCH_ERRORS = "BatchErrors"
INFERENCE_BATCH_SIZE = "InferenceBatchSize"
"""Container adaptive batching: requests merged into one model run (a histogram in Prometheus)."""
INFERENCE_BATCH_ROWS = "InferenceBatchRows"
"""Container adaptive batching: rows in one model run (a histogram in Prometheus)."""
INFERENCE_BATCH_WAIT = "InferenceBatchWait"
"""Container adaptive batching: ms a request waited in the queue before its run started."""
ERROR_PREFIX = "Error."
"""``Error.<code>`` counts errors by type (``Error.invalid_request``, ``Error.model_not_ready`` ...)."""
MILLISECONDS = "Milliseconds"


def error_metric(code: str) -> str:
    """The per-type error counter name for a ModelfnError ``code``."""
    return ERROR_PREFIX + code


class Metrics:
    """Counts named events; forwards each to the registered sinks (none by default)."""

    def __init__(self) -> None:
        self._counts: dict[str, float] = {}
        self._sinks: list[MetricSink] = []
        self._lock = threading.Lock()
        self.span_factory: SpanFactory | None = None

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

    @contextlib.contextmanager
    def timed(self, name: str, span: str | None = None) -> Iterator[None]:
        """Record the block's wall time in ms as ``name``, inside a trace span when tracing is on."""
        factory = self.span_factory if span is not None else None
        t0 = time.perf_counter()
        if factory is None:
            try:
                yield
            finally:
                self.add(name, (time.perf_counter() - t0) * 1e3, MILLISECONDS)
            return
        assert span is not None
        with factory(span):
            try:
                yield
            finally:
                self.add(name, (time.perf_counter() - t0) * 1e3, MILLISECONDS)

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
