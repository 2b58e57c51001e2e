"""Metrics: phase timings and spans from ``METRICS.timed``, container ``/metrics`` in Prometheus text, batch counts.

The Prometheus text is parsed with prometheus-client's own parser, read before and after real
requests, so each test shows a value move rather than a name merely existing.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelfn.batch.trigger import build_storage_handler
from modelfn.serving.asgi import create_app
from modelfn.serving.metrics import (
    BATCH_ERRORS,
    BATCH_SIZE,
    INFERENCE_BATCH_SIZE,
    INFERENCE_LATENCY,
    LOAD_SESSION_TIME,
    METRICS,
    MODEL_LOAD_FAILED,
    ROWS_PROCESSED,
    Metrics,
    error_metric,
)
from modelfn.serving.observability_prometheus import DeferredSink, PrometheusSink, install
from modelfn.serving.state import ModelState
from tests.batch.s3_events import csv_rows, put, sqs_of
from tests.fixtures.bundles import Published
from tests.handlers.events import LambdaContext
from tests.serving.asgi_client import SyncASGIClient

REPO_ROOT = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``(sample name, sorted labels) -> value`` for every sample in a Prometheus text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_timed_records_milliseconds_inside_a_span_even_when_the_block_fails() -> None:
    # GIVEN a metrics hook whose span factory notes every span it opens
    metrics, spans = Metrics(), []

    @contextlib.contextmanager
    def span(name: str) -> Iterator[None]:
        spans.append(name)
        yield

    metrics.span_factory = span
    seen: list[tuple[str, float, str]] = []
    metrics.add_sink(lambda name, value, unit: seen.append((name, value, unit)))
    # WHEN one block succeeds and one raises
    with metrics.timed("LoadVerifyTime", span="verify"):
        sum(range(1000))
    with pytest.raises(ValueError), metrics.timed(INFERENCE_LATENCY, span="infer"):
        raise ValueError("boom")
    # THEN both were timed in ms, each inside its span
    assert spans == ["verify", "infer"]
    assert [(name, unit) for name, _, unit in seen] == [
        ("LoadVerifyTime", "Milliseconds"),
        (INFERENCE_LATENCY, "Milliseconds"),
    ]
    assert all(value >= 0 for _, value, _ in seen)
    assert metrics.count("LoadVerifyTime") > 0


def test_metrics_route_serves_prometheus_text_and_the_values_move(local_published: Published) -> None:
    # GIVEN the Prometheus mirror installed before the load (as the container does), then a verified load
    install()
    before_load = _samples(
        SyncASGIClient(create_app(ModelState.pending(local_published.settings))).get("/metrics").text
    )
    state = ModelState.load(local_published.settings)
    client = SyncASGIClient(create_app(state))
    try:
        first = client.get("/metrics")
        # WHEN two good predictions and one bad one are served
        for body in (b'{"instances": [[1, 2, 3, 4]]}', b'{"instances": [[0, 0, 0, 0]]}', b'{"instances": "x"}'):
            client.post("/predict", content=body, headers={"content-type": "application/json"})
        second = client.get("/metrics")
    finally:
        client.close()
    # THEN /metrics is Prometheus text with the process collector's CPU and RSS
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain")
    a, b = _samples(first.text), _samples(second.text)
    assert _value(b, "process_resident_memory_bytes") > 0
    assert _value(b, "process_cpu_seconds_total") > 0
    # AND the load phases were observed once more by the load
    for phase in ("LoadFetchTime", "LoadVerifyTime", "LoadSessionTime"):
        assert _value(a, f"{phase}_count") == _value(before_load, f"{phase}_count") + 1
        assert _value(a, f"{phase}_sum") > _value(before_load, f"{phase}_sum")
    # AND every POST was timed, and the bad one counted by type and as a request error
    assert _value(b, "InferenceLatency_count") == _value(a, "InferenceLatency_count") + 3
    assert _value(b, "InferenceLatency_sum") > _value(a, "InferenceLatency_sum")
    assert _value(b, "Errors_total", type="invalid_request") == _value(a, "Errors_total", type="invalid_request") + 1
    assert _value(b, "RequestErrors_total") == _value(a, "RequestErrors_total") + 1


def test_openmetrics_is_served_when_asked(local_published: Published) -> None:
    # GIVEN a served model
    client = SyncASGIClient(create_app(ModelState.load(local_published.settings)))
    try:
        # WHEN a scraper asks for OpenMetrics
        response = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    finally:
        client.close()
    # THEN it gets OpenMetrics, which ends with # EOF
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_metrics_route_is_a_json_404_without_prometheus_client(tmp_path: Path) -> None:
    # GIVEN a process where prometheus-client cannot be imported
    code = """
import sys, json
sys.modules["prometheus_client"] = None
from modelfn.config import Settings
from modelfn.serving.asgi import create_app
from modelfn.serving.state import ModelState
from tests.serving.asgi_client import SyncASGIClient
client = SyncASGIClient(create_app(ModelState.pending(Settings(model_name="m"))))
r = client.get("/metrics")
live = client.get("/v2/health/live")
client.close()
print(json.dumps({"status": r.status_code, "body": r.json(), "live": live.status_code}))
"""
    # WHEN /metrics is requested
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    out = json.loads(result.stdout.splitlines()[-1])
    # THEN it is a JSON 404 naming the missing package, and the server keeps serving
    assert out["status"] == 404
    assert out["body"]["code"] == "not_found" and "prometheus-client" in out["body"]["error"]
    assert out["live"] == 200


@pytest.mark.slow
def test_storage_event_counts_batch_size_rows_and_errors(s3_published: Published, s3_bucket: str) -> None:
    # GIVEN a batch of two objects on S3 (moto_server): ten good rows and one poison CSV
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    good = put(s3_bucket, "incoming/good.csv", csv_rows(x))
    poison = put(s3_bucket, "incoming/poison.csv", b"a,b,c,d\n1,2,oops,4\n")
    settings = s3_published.settings.replace(
        input_url=f"s3://{s3_bucket}/incoming/", output_url=f"s3://{s3_bucket}/out/"
    )
    handler = build_storage_handler(settings)
    before = {name: METRICS.count(name) for name in (BATCH_SIZE, ROWS_PROCESSED, BATCH_ERRORS)}
    # WHEN the batch arrives through SQS
    answer = handler(sqs_of(good, poison), LambdaContext())
    # THEN the batch size, the rows scored and the one failure are counted
    assert len(answer["batchItemFailures"]) == 1
    assert METRICS.count(BATCH_SIZE) == before[BATCH_SIZE] + 2
    assert METRICS.count(ROWS_PROCESSED) == before[ROWS_PROCESSED] + 10
    assert METRICS.count(BATCH_ERRORS) == before[BATCH_ERRORS] + 1


EVENTS: list[tuple[str, float, str]] = [
    ("LoadFetchTime", 12.5, "Milliseconds"),
    (MODEL_LOAD_FAILED, 1, "Count"),
    (error_metric("model_not_ready"), 1, "Count"),
    (INFERENCE_LATENCY, 0.7, "Milliseconds"),
    (LOAD_SESSION_TIME, 80.0, "Milliseconds"),
    (INFERENCE_BATCH_SIZE, 3, "Count"),
    (INFERENCE_LATENCY, 2.5, "Milliseconds"),
]
"""A start's worth of events: load phases, a failed attempt, a 503 while loading, requests, a batched run."""


def _without_process(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a registry minus the process collector's (CPU and RSS differ between reads) and the
    ``_created`` times (a replayed series is created when the registry is built, before any scrape sees it)."""
    return {
        k: v for k, v in _samples(text).items() if not k[0].startswith("process_") and not k[0].endswith("_created")
    }


def test_a_deferred_sink_replays_into_prometheus_what_came_before() -> None:
    # GIVEN events recorded through a deferred sink, and the same events fed straight to a Prometheus sink
    from prometheus_client import generate_latest

    metrics, reference = Metrics(), PrometheusSink()
    deferred = DeferredSink(metrics, delay_s=600)
    metrics.add_sink(deferred)
    for event in EVENTS:
        metrics.add(*event)
        reference(*event)
    assert deferred.pending == len(EVENTS)
    # WHEN the registry is attached later, and more events follow
    late = PrometheusSink()
    deferred.attach(late)
    for event in EVENTS[3:]:
        metrics.add(*event)
        reference(*event)
    # THEN it holds exactly what a registry present from the start holds: counts, sums and buckets
    assert deferred.pending == 0
    got, want = _without_process(generate_latest(late.registry).decode()), generate_latest(reference.registry).decode()
    assert got == _without_process(want)
    assert _value(got, "InferenceLatency_count") == 4
    assert _value(got, "Errors_total", type="model_not_ready") == 1


def test_a_deferred_registry_is_built_after_the_load_and_counts_the_start() -> None:
    # GIVEN a fresh process that defers Prometheus as the container does, with a short delay
    code = """
import sys, time, json
from modelfn.serving import observability_prometheus as prom
from modelfn.serving.metrics import METRICS
EVENTS = json.loads(sys.argv[1])
assert prom.defer(delay_s=0.05)
for event in EVENTS[:4]:
    METRICS.add(*event)
before = "prometheus_client" in sys.modules
METRICS.add(*EVENTS[4])  # the load attempt ended: the registry is built a moment later
deadline = time.monotonic() + 60
while prom._SINK is None and time.monotonic() < deadline:
    time.sleep(0.01)
METRICS.add(*EVENTS[6])
body, _ = prom.exposition("")
print(json.dumps({"imported_before": before, "text": body.decode()}))
"""
    # WHEN the load's events arrive before and after the registry exists
    argv = [sys.executable, "-c", code, json.dumps(EVENTS)]
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    out = json.loads(result.stdout.splitlines()[-1])
    # THEN prometheus-client was not imported while the start ran
    assert out["imported_before"] is False
    # AND every event counts, those replayed from before the registry and those after
    samples = _samples(out["text"])
    assert _value(samples, "InferenceLatency_count") == 2
    assert _value(samples, "LoadSessionTime_count") == 1 and _value(samples, "LoadFetchTime_sum") == 12.5
    assert _value(samples, "ModelLoadFailed_total") == 1


def test_a_full_deferred_sink_builds_the_registry_on_the_spot() -> None:
    # GIVEN a fresh process whose deferred sink holds at most three events (and no load ending)
    code = """
import json
from modelfn.serving import observability_prometheus as prom
from modelfn.serving.metrics import METRICS, INFERENCE_LATENCY
assert prom.defer(limit=3, delay_s=600)
METRICS.add(INFERENCE_LATENCY, 1.0, "Milliseconds")
METRICS.add(INFERENCE_LATENCY, 1.0, "Milliseconds")
built_early = prom._SINK is not None
METRICS.add(INFERENCE_LATENCY, 1.0, "Milliseconds")
built = prom._SINK is not None
METRICS.add(INFERENCE_LATENCY, 1.0, "Milliseconds")
print(json.dumps({"early": built_early, "built": built, "text": prom.exposition("")[0].decode()}))
"""
    # WHEN the third event arrives
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    out = json.loads(result.stdout.splitlines()[-1])
    # THEN the registry is built then (not before), with all of them counted, and later ones too
    assert out["early"] is False and out["built"] is True
    assert _value(_samples(out["text"]), "InferenceLatency_count") == 4
