"""Container ``/metrics``: every ``METRICS`` event mirrored into a Prometheus registry (prometheus-client).

The names are the EMF names Lambda emits (``ModelLoadFailed_total``, ``InferenceLatency_bucket`` ...),
errors by type are one counter with a ``type`` label, and the process collector adds CPU seconds and
RSS. prometheus-client is optional (the ``metrics``/``cli`` extras): without it ``/metrics`` is a
JSON 404 and nothing here is imported on the request path.

Importing prometheus-client costs ~27 ms of CPU, so the container does not pay it while it starts:
``defer()`` records every event in a ``DeferredSink`` from the start, and the Prometheus registry is
built later (a second after the first load attempt ends, at the first scrape, or once
``DEFER_LIMIT`` events wait), replaying what was recorded, so the counts and histograms are the same as if it had
been there all along.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from modelfn.errors import RouteNotFound
from modelfn.serving.metrics import (
    ERROR_PREFIX,
    INFERENCE_BATCH_ROWS,
    INFERENCE_BATCH_SIZE,
    LOAD_SESSION_TIME,
    METRICS,
    MILLISECONDS,
    MODEL_LOAD_FAILED,
    Metrics,
    MetricSink,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

LATENCY_BUCKETS_MS = (0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
"""Histogram bounds in milliseconds: sub-ms MLP calls up to a minute-long cold load."""
ERRORS = "Errors"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
COUNT_HISTOGRAMS = frozenset({INFERENCE_BATCH_SIZE, INFERENCE_BATCH_ROWS})
"""Counts observed per event (requests or rows per batched run) rather than summed."""
DEFER_LIMIT = 10_000
"""Events a ``DeferredSink`` holds at most; the one that reaches it builds the registry on the spot."""
INSTALL_DELAY_S = 1.0
"""Once the first load attempt has ended, the registry is built this much later (off the first requests' path)."""
LOAD_ENDED = frozenset({LOAD_SESSION_TIME, MODEL_LOAD_FAILED})
"""Events that end a load attempt (the session's timing is recorded whether it was built or refused)."""

logger = logging.getLogger("modelfn.serving.metrics")


class PrometheusSink:
    """A ``MetricSink`` that keeps one counter or histogram per metric name in its own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, ProcessCollector

        self.registry: CollectorRegistry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, process_resident_memory_bytes
        self._series: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, value: float, unit: str) -> None:
        if name.startswith(ERROR_PREFIX):
            self._get(ERRORS, "Count").labels(type=name[len(ERROR_PREFIX) :]).inc(value)
        elif unit == MILLISECONDS or name in COUNT_HISTOGRAMS:
            self._get(name, unit).observe(value)
        elif unit == "Count":
            self._get(name, unit).inc(value)
        else:  # other units (none today) as a gauge of the last value
            self._get(name, unit).set(value)

    def _get(self, name: str, unit: str) -> Any:
        series = self._series.get(name)
        if series is not None:
            return series
        from prometheus_client import Counter, Gauge, Histogram

        with self._lock:
            if name in self._series:
                return self._series[name]
            doc = f"modelfn {name} ({unit})"
            if name == ERRORS:
                series = Counter(name, "modelfn errors by type (the error code)", ["type"], registry=self.registry)
            elif unit == MILLISECONDS:
                series = Histogram(name, doc, buckets=LATENCY_BUCKETS_MS, registry=self.registry)
            elif name in COUNT_HISTOGRAMS:
                series = Histogram(name, doc, buckets=BATCH_BUCKETS, registry=self.registry)
            elif unit == "Count":
                series = Counter(name, doc, registry=self.registry)
            else:
                series = Gauge(name, doc, registry=self.registry)
            self._series[name] = series
            return series


class DeferredSink:
    """Keeps every event until a target sink is attached, replays them into it, then forwards to it."""

    def __init__(self, metrics: Metrics, *, limit: int = DEFER_LIMIT, delay_s: float = INSTALL_DELAY_S) -> None:
        self.metrics = metrics
        self.limit = limit
        self.delay_s = delay_s
        self._events: list[tuple[str, float, str]] = []
        self._target: MetricSink | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __call__(self, name: str, value: float, unit: str) -> None:
        target = self._target
        if target is None:
            target, timer, full = self._record(name, value, unit)
            if target is None:
                if timer is not None:
                    timer.start()
                if full:
                    _install_quietly(self.metrics)
                return
        target(name, value, unit)

    def _record(self, name: str, value: float, unit: str) -> tuple[MetricSink | None, threading.Timer | None, bool]:
        """Keep one event unless a target arrived meanwhile: (target, a timer to start, whether the limit is hit)."""
        with self._lock:
            if self._target is not None:
                return self._target, None, False
            self._events.append((name, value, unit))
            timer = None
            if name in LOAD_ENDED and self._timer is None:
                timer = self._timer = threading.Timer(self.delay_s, _install_quietly, args=(self.metrics,))
                timer.daemon = True
            return None, timer, len(self._events) >= self.limit

    def attach(self, sink: MetricSink) -> None:
        """Replay what was recorded into ``sink`` and forward every later event to it."""
        with self._lock:
            for event in self._events:
                sink(*event)
            self._events.clear()
            self._target = sink
            if self._timer is not None:
                self._timer.cancel()

    @property
    def pending(self) -> int:
        """Events recorded and not yet replayed."""
        with self._lock:
            return len(self._events)


_SINK: PrometheusSink | None = None
_DEFERRED: DeferredSink | None = None
_INSTALL_LOCK = threading.Lock()


def defer(metrics: Metrics = METRICS, *, limit: int = DEFER_LIMIT, delay_s: float = INSTALL_DELAY_S) -> bool:
    """Record ``metrics`` for Prometheus from now on without importing it yet; False without prometheus-client."""
    global _DEFERRED
    from importlib.util import find_spec

    if find_spec("prometheus_client") is None:
        return False
    with _INSTALL_LOCK:
        if _SINK is None and _DEFERRED is None:
            _DEFERRED = DeferredSink(metrics, limit=limit, delay_s=delay_s)
            metrics.add_sink(_DEFERRED)
    return True


def install(metrics: Metrics = METRICS) -> PrometheusSink:
    """Mirror ``metrics`` into Prometheus from now on (once per process); raise RouteNotFound without the library.

    Events a ``defer()``-ed sink recorded before are replayed into the registry first.
    """
    global _SINK
    with _INSTALL_LOCK:
        if _SINK is None:
            try:
                sink = PrometheusSink()
            except ModuleNotFoundError as exc:
                if (exc.name or "").partition(".")[0] != "prometheus_client":
                    raise
                raise RouteNotFound(
                    "/metrics is not served here: prometheus-client is not installed (pip install 'modelfn[metrics]')",
                    field="path",
                ) from exc
            if _DEFERRED is not None and _DEFERRED.metrics is metrics:
                _DEFERRED.attach(sink)
            else:
                metrics.add_sink(sink)
            _SINK = sink
        return _SINK


def _install_quietly(metrics: Metrics) -> None:
    """``install`` from a timer or a metric call: a failure is logged, never raised into serving."""
    try:
        install(metrics)
    except Exception:
        logger.warning("the Prometheus registry could not be built; /metrics will say why", exc_info=True)


def exposition(accept: str) -> tuple[bytes, str]:
    """The registry in the text format the ``Accept`` header asks for (Prometheus text or OpenMetrics)."""
    sink = install()
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept)
    return encoder(sink.registry), content_type
