"""Container ``/metrics``: every ``METRICS`` event mirrored into a Prometheus registry (prometheus-client).

The names are the EMF names Lambda emits (``ModelLoadFailed_total``, ``InferenceLatency_bucket`` ...),
errors by type are one counter with a ``type`` label, and the process collector adds CPU seconds and
RSS. prometheus-client is optional (the ``metrics``/``cli`` extras): without it ``/metrics`` is a
JSON 404 and nothing here is imported on the request path.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from modelfn.errors import RouteNotFound
from modelfn.serving.metrics import (
    ERROR_PREFIX,
    INFERENCE_BATCH_ROWS,
    INFERENCE_BATCH_SIZE,
    METRICS,
    MILLISECONDS,
    Metrics,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

LATENCY_BUCKETS_MS = (0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
"""Histogram bounds in milliseconds: sub-ms MLP calls up to a minute-long cold load."""
ERRORS = "Errors"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
COUNT_HISTOGRAMS = frozenset({INFERENCE_BATCH_SIZE, INFERENCE_BATCH_ROWS})
"""Counts observed per event (requests or rows per batched run) rather than summed."""


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


_SINK: PrometheusSink | None = None
_INSTALL_LOCK = threading.Lock()


def install(metrics: Metrics = METRICS) -> PrometheusSink:
    """Mirror ``metrics`` into Prometheus from now on (once per process); raise RouteNotFound without the library."""
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
            metrics.add_sink(sink)
            _SINK = sink
        return _SINK


def exposition(accept: str) -> tuple[bytes, str]:
    """The registry in the text format the ``Accept`` header asks for (Prometheus text or OpenMetrics)."""
    sink = install()
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept)
    return encoder(sink.registry), content_type
