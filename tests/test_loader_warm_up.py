"""The warm-up run after loading: on wherever loading happens ahead of traffic, skipped in an on-demand Lambda
cold start (where it only adds a run to the caller's wait), and ``warm_up`` on/off overrides both.

A spy on ``onnxruntime.InferenceSession`` counts the runs the loader makes; the served answers are the
same with or without the warm-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from modelfn.config import Settings
from modelfn.errors import ConfigError
from modelfn.loader import INIT_TYPE_ENV, load_bundle
from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The output names of every ``run`` of every session built while the test runs."""
    seen: list[str] = []

    class Spy(ort.InferenceSession):
        def run(self, output_names: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(",".join(output_names or []))
            return super().run(output_names, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", Spy)
    yield seen


@pytest.mark.parametrize(
    ("warm_up", "init_type", "warmed"),
    [
        ("auto", None, True),  # containers, tests, the CLI: loading happens before traffic
        ("auto", "provisioned-concurrency", True),
        ("auto", "snap-start", True),
        ("auto", "on-demand", False),  # the first request waits for init: a warm-up only adds a run
        ("on", "on-demand", True),
        ("off", None, False),
    ],
)
def test_warm_up_follows_the_setting_and_the_lambda_init_type(
    local_published: Published,
    runs: list[str],
    monkeypatch: pytest.MonkeyPatch,
    warm_up: str,
    init_type: str | None,
    warmed: bool,
) -> None:
    # GIVEN the setting and Lambda's init type (absent outside Lambda)
    if init_type is None:
        monkeypatch.delenv(INIT_TYPE_ENV, raising=False)
    else:
        monkeypatch.setenv(INIT_TYPE_ENV, init_type)
    settings = dataclasses.replace(local_published.settings, warm_up=warm_up)
    # WHEN the model is loaded
    bundle = load_bundle(settings)
    # THEN the loader ran it once on zeros exactly when a warm-up is wanted
    assert len(runs) == (1 if warmed else 0)
    # AND the first prediction is the same either way
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(bundle.model.predict({"x": x})["y"], tiny_onnx_expected(x), rtol=1e-6)
    assert len(runs) == (2 if warmed else 1)


def test_warm_up_setting_is_validated_by_name() -> None:
    # GIVEN MODELFN_WARM_UP set to something that is not auto, on or off
    # WHEN settings load THEN the error names the setting
    with pytest.raises(ConfigError, match="warm_up must be one of auto, on, off") as info:
        Settings.load(environ={"MODELFN_WARM_UP": "sometimes"})
    assert info.value.field == "warm_up"
    # AND the valid values load, auto by default
    assert Settings.load(environ={"MODELFN_WARM_UP": "off"}).warm_up == "off"
    assert Settings.load(environ={}).warm_up == "auto"
