"""Execution providers from settings, the CPU fallback or refusal, and the IO-binding run path.

No GPU here: the binding path (what runs on CUDA) is exercised with the CPU provider, which
supports IO binding too, and must give exactly what ``session.run`` gives.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from modelfn.config import Settings
from modelfn.errors import ConfigError
from modelfn.runtime.onnx_session import CPU, PROVIDER_FALLBACK, OnnxModel, resolve_providers
from modelfn.serving.metrics import METRICS
from modelfn.serving.state import ModelState
from tests.fixtures.bundles import Published
from tests.serving.tiny_models import echo_bundle, echo_onnx, expected_linear, linear_bundle, linear_onnx

X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)


def test_default_is_cpu_and_short_names_are_accepted() -> None:
    # GIVEN no request, short names and full names
    available = ["CUDAExecutionProvider", CPU]
    # THEN CPU by default, and names are normalised to onnxruntime's
    assert resolve_providers((), available) == [CPU]
    assert resolve_providers(("cuda", " CPU "), available) == ["CUDAExecutionProvider", CPU]
    assert resolve_providers(("CUDAExecutionProvider",), available) == ["CUDAExecutionProvider"]


def test_io_binding_on_cpu_gives_exactly_the_plain_run() -> None:
    # GIVEN the same model run plainly and through an IO binding (inputs from host, outputs bound per name)
    spec = linear_bundle().manifest
    plain = OnnxModel(linear_onnx(), spec, threads=1)
    bound = OnnxModel(linear_onnx(), spec, threads=1, io_binding=True)
    assert bound.io_binding and not plain.io_binding and bound.device == "cpu"
    bound.warm_up()
    # WHEN both predict every output, a subset, and a non-contiguous input
    every, subset = bound.predict({"x": X}), bound.predict({"x": X}, ["label"])
    strided = bound.predict({"x": np.asfortranarray(X)})
    # THEN the outputs are identical to the plain run and to onnxruntime itself
    expected = plain.predict({"x": X})
    y, label = expected_linear(X)
    for name in ("y", "label"):
        np.testing.assert_array_equal(every[name], expected[name])
        np.testing.assert_array_equal(strided[name], expected[name])
    np.testing.assert_array_equal(every["y"], y)
    assert list(subset) == ["label"] and subset["label"].tolist() == label.tolist()


def test_string_inputs_skip_the_binding() -> None:
    # GIVEN a string model with IO binding asked for (strings have no device form)
    model = OnnxModel(echo_onnx(), echo_bundle().manifest, threads=1, io_binding=True)
    # WHEN run
    out = model.predict({"s": np.array(["a", "bc"], dtype=object)})
    # THEN it runs through session.run and echoes the strings
    assert out["s_out"].tolist() == ["a", "bc"]


def test_cuda_requested_with_cpu_listed_falls_back_with_a_log_and_metric(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN this machine's onnxruntime has no CUDA provider, and the request allows CPU
    before = METRICS.count(PROVIDER_FALLBACK)
    # WHEN a model is built asking for cuda,cpu
    with caplog.at_level(logging.WARNING, logger="modelfn.runtime"):
        model = OnnxModel(linear_onnx(), linear_bundle().manifest, threads=1, providers=["cuda", "cpu"])
    # THEN it runs on CPU without IO binding, says so in one warning, and counts a ProviderFallback
    assert model.providers == [CPU] and model.device == "cpu" and not model.io_binding
    assert METRICS.count(PROVIDER_FALLBACK) == before + 1
    (record,) = [r for r in caplog.records if r.name == "modelfn.runtime"]
    assert "CUDAExecutionProvider unavailable" in record.getMessage() and CPU in record.getMessage()
    np.testing.assert_array_equal(model.predict({"x": X})["y"], expected_linear(X)[0])


def test_cuda_required_without_a_gpu_is_refused() -> None:
    # GIVEN a request for cuda alone (no cpu to fall back to)
    # WHEN the model is built
    with pytest.raises(ConfigError, match="requires CUDAExecutionProvider.*onnxruntime-gpu") as info:
        OnnxModel(linear_onnx(), linear_bundle().manifest, threads=1, providers=["cuda"])
    # THEN the error names the setting
    assert info.value.field == "providers"


def test_providers_come_from_the_environment_through_the_loader(local_published: Published) -> None:
    # GIVEN MODELFN_PROVIDERS set for a verified local model
    fallback = Settings.load(environ={**local_published.env, "MODELFN_PROVIDERS": "cuda,cpu"})
    required = Settings.load(environ={**local_published.env, "MODELFN_PROVIDERS": "cuda"})
    # WHEN each is loaded as a served state
    served = ModelState.load(fallback)
    refused = ModelState.load(required)
    # THEN the fallback serves on CPU, and the required GPU leaves the state not ready with the reason
    assert served.require().model.providers == [CPU]  # type: ignore[attr-defined]
    assert refused.bundle is None and refused.failure is not None
    assert "CUDAExecutionProvider" in refused.failure.message
