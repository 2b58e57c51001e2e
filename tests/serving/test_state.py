"""ModelState: a failed load is recorded, never raised, and never replaced by another model."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelfn.config import Settings
from modelfn.errors import ModelNotReady
from modelfn.serving.metrics import METRICS, MODEL_LOAD_FAILED, Metrics
from modelfn.serving.state import ModelState


def test_failed_load_is_not_ready_logged_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN an empty store (the configured model does not exist) and a private metrics hook
    settings = Settings(store_url=str(tmp_path), model_name="missing")
    metrics = Metrics()
    seen: list[tuple[str, float, str]] = []
    metrics.add_sink(lambda name, value, unit: seen.append((name, value, unit)))
    # WHEN the state loads
    with caplog.at_level(logging.ERROR, logger="modelfn.serving"):
        state = ModelState.load(settings, metrics=metrics)
    # THEN nothing raised, the state is not ready, the reason was logged and ModelLoadFailed emitted
    assert not state.ready and state.bundle is None
    assert state.failure is not None
    assert metrics.count(MODEL_LOAD_FAILED) == 1
    assert seen == [(MODEL_LOAD_FAILED, 1, "Count")]
    assert any("missing" in r.getMessage() for r in caplog.records)
    with pytest.raises(ModelNotReady) as info:
        state.require()
    assert info.value.status_code == 503 and state.failure.code in info.value.message
    assert state.health() == {"ready": False, "name": "missing", "reason": state.failure.code}


def test_unconfigured_model_is_not_ready_too(tmp_path: Path) -> None:
    # GIVEN no model name at all
    before = METRICS.count(MODEL_LOAD_FAILED)
    # WHEN the state loads with the process-wide metrics hook
    state = ModelState.load(Settings(store_url=str(tmp_path)))
    # THEN it is not ready because of configuration, and the failure is counted
    assert not state.ready and state.failure is not None and state.failure.code == "config"
    assert METRICS.count(MODEL_LOAD_FAILED) == before + 1


def test_a_failing_metric_sink_does_not_break_the_caller() -> None:
    # GIVEN a sink that raises
    metrics = Metrics()

    def broken(name: str, value: float, unit: str) -> None:
        raise OSError("backend down")

    metrics.add_sink(broken)
    # WHEN a metric is recorded
    metrics.add("Anything")
    # THEN the count is still kept
    assert metrics.count("Anything") == 1
