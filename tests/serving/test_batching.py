"""Adaptive batching (container mode): concurrent requests merged into one model run, split back per request.

The served app and the batcher run for real (real onnxruntime sessions over tiny models, httpx over
the ASGI app, and one real ``modelfn serve`` on 127.0.0.1); run counts come from the batcher and
from the Prometheus ``InferenceBatchSize`` histogram, never from timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelfn.bundle.manifest import TensorSpec
from modelfn.config import Settings
from modelfn.errors import ConfigError
from modelfn.loader import LoadedBundle
from modelfn.runtime.onnx_session import OnnxModel
from modelfn.serving.asgi import create_app
from modelfn.serving.batching import Batcher, batched_bundle
from modelfn.serving.metrics import INFERENCE_BATCH_ROWS, INFERENCE_BATCH_SIZE, INFERENCE_BATCH_WAIT, METRICS
from modelfn.serving.state import ModelState
from tests.fixtures.bundles import Published
from tests.serving.tiny_models import ROOT_DIGEST, VERIFIED_AT, expected_linear, manifest

RNG = np.random.default_rng(7)


def _onnx(nodes: list[Any], inputs: list[Any], outputs: list[Any], initializers: list[Any] = ()) -> bytes:  # type: ignore[assignment]
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()
    )


def _loaded(model_bytes: bytes, name: str, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> LoadedBundle:
    spec = manifest(name, inputs, outputs)
    model = OnnxModel(model_bytes, spec, threads=1, providers=["CPUExecutionProvider"])
    return LoadedBundle(manifest=spec, model=model, root_digest=ROOT_DIGEST, key_hint="k", verified_at=VERIFIED_AT)


def _batching_state(bundle: LoadedBundle, **settings: Any) -> ModelState:
    """What ``modelfn serve`` builds: a batching state that records the loaded model."""
    state = ModelState(Settings(model_name=bundle.manifest.name, **settings), batching=True)
    state.record(bundle)
    return state


@contextlib.contextmanager
def _metric_values() -> Iterator[list[tuple[str, float]]]:
    seen: list[tuple[str, float]] = []

    def sink(name: str, value: float, unit: str) -> None:
        seen.append((name, value))

    METRICS.add_sink(sink)
    try:
        yield seen
    finally:
        METRICS.remove_sink(sink)


async def _post_all(state: ModelState, requests: list[tuple[str, Any]]) -> list[httpx.Response]:
    """Every request at once through the real ASGI app."""
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return list(await asyncio.gather(*(client.post(path, json=body) for path, body in requests)))


def _v2(x: np.ndarray[Any, Any]) -> tuple[str, dict[str, Any]]:
    return "/v2/models/linear/infer", {
        "inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]
    }


def _v2_output(response: httpx.Response, name: str) -> np.ndarray[Any, Any]:
    out = next(o for o in response.json()["outputs"] if o["name"] == name)
    return np.asarray(out["data"]).reshape(out["shape"])


@pytest.fixture
def linear_batching(linear: LoadedBundle) -> Iterator[ModelState]:
    state = _batching_state(linear, max_batch_size=64, max_batch_delay_ms=200)
    yield state
    state.close()


def test_concurrent_requests_share_runs_and_each_gets_its_unbatched_answer(linear_batching: ModelState) -> None:
    # GIVEN 32 concurrent requests of 1-3 rows each, over /predict, V2 infer and TF Serving's predict
    xs = [RNG.normal(size=(1 + i % 3, 4)).astype(np.float32) for i in range(32)]
    routes = ["/predict", "/v2/models/linear/infer", "/v1/models/linear:predict"]
    requests = [_v2(x) if i % 3 == 1 else (routes[i % 3], {"instances": x.tolist()}) for i, x in enumerate(xs)]
    batcher = linear_batching.batcher
    assert batcher is not None
    # WHEN they are sent at once
    with _metric_values() as seen:
        responses = asyncio.run(_post_all(linear_batching, requests))
    # THEN there were fewer model runs than requests, every request was answered by one
    assert batcher.runs < 32
    assert batcher.requests == 32
    sizes = [v for n, v in seen if n == INFERENCE_BATCH_SIZE]
    assert max(sizes) > 1 and sum(sizes) == 32
    assert sum(v for n, v in seen if n == INFERENCE_BATCH_ROWS) == sum(len(x) for x in xs)
    waits = [v for n, v in seen if n == INFERENCE_BATCH_WAIT]
    assert len(waits) == 32 and min(waits) >= 0
    # AND each answer is exactly what the model gives that request alone
    for i, (x, response) in enumerate(zip(xs, responses, strict=True)):
        assert response.status_code == 200, response.text
        y, label = expected_linear(x)
        if i % 3 == 1:
            np.testing.assert_allclose(_v2_output(response, "y"), y, rtol=1e-6)
            assert _v2_output(response, "label").tolist() == label.tolist()
        elif i % 3 == 2:
            rows = response.json()["predictions"]
            np.testing.assert_allclose([row["y"] for row in rows], y, rtol=1e-6)
            assert [row["label"] for row in rows] == label.tolist()
        else:
            np.testing.assert_allclose(np.asarray(response.json()["predictions"]["y"]), y, rtol=1e-6)


def test_a_malformed_request_fails_alone(linear_batching: ModelState) -> None:
    # GIVEN good requests with a wrong-shape one and a wrong-dtype one among them
    xs = [RNG.normal(size=(2, 4)).astype(np.float32) for _ in range(12)]
    requests = [_v2(x) for x in xs]
    requests.insert(3, ("/predict", {"instances": [[1.0, 2.0, 3.0, 4.0, 5.0]]}))
    requests.insert(8, ("/predict", {"inputs": {"x": [["a", "b", "c", "d"]]}}))
    # WHEN all are sent at once
    responses = asyncio.run(_post_all(linear_batching, requests))
    # THEN only the two bad ones fail, each with a 4xx naming the input; the rest are right
    bad = [responses.pop(8), responses.pop(3)]
    assert [r.status_code for r in bad] == [422, 422]
    assert all(r.json()["field"] == "x" for r in bad)
    for x, response in zip(xs, responses, strict=True):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(_v2_output(response, "y"), expected_linear(x)[0], rtol=1e-6)


def test_a_failed_merged_run_falls_back_to_one_run_per_request() -> None:
    # GIVEN a model whose output does not keep one row per input row (a column sum), though declared dynamic
    from onnx import TensorProto, helper

    model = _onnx(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1, noop_with_empty_axes=0)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["M", 1])],
    )
    spec_in, spec_out = (
        TensorSpec(name="x", dtype="float32", shape=[-1, 2]),
        TensorSpec(name="s", dtype="float32", shape=[-1, 1]),
    )
    state = _batching_state(_loaded(model, "colsum", [spec_in], [spec_out]), max_batch_size=64, max_batch_delay_ms=200)
    xs = [RNG.normal(size=(1 + i % 2, 2)).astype(np.float32) for i in range(16)]
    try:
        # WHEN 16 requests come at once
        responses = asyncio.run(_post_all(state, [("/predict", {"instances": x.tolist()}) for x in xs]))
    finally:
        state.close()
    # THEN each one gets the sum over its own rows only (its own run), never a sum over its batch-mates
    for x, response in zip(xs, responses, strict=True):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"], [[x.sum()]], rtol=1e-5)


def test_a_request_over_max_batch_size_runs_alone(linear: LoadedBundle) -> None:
    # GIVEN batches of at most 4 rows
    state = _batching_state(linear, max_batch_size=4, max_batch_delay_ms=200)
    xs = [RNG.normal(size=(1, 4)).astype(np.float32) for _ in range(8)]
    big = RNG.normal(size=(10, 4)).astype(np.float32)
    try:
        # WHEN a 10-row request comes among 1-row ones
        with _metric_values() as seen:
            responses = asyncio.run(_post_all(state, [_v2(x) for x in [*xs[:4], big, *xs[4:]]]))
    finally:
        state.close()
    # THEN it is answered in full, no merged run ever held more than 4 rows, and the small ones were batched
    assert responses[4].status_code == 200
    np.testing.assert_allclose(_v2_output(responses[4], "y"), expected_linear(big)[0], rtol=1e-6)
    rows = [v for n, v in seen if n == INFERENCE_BATCH_ROWS]
    assert rows and max(rows) <= 4 and sum(rows) == 8
    for x, response in zip(xs, responses[:4] + responses[5:], strict=True):
        np.testing.assert_allclose(_v2_output(response, "y"), expected_linear(x)[0], rtol=1e-6)


def test_batching_is_off_with_a_log_line_for_a_fixed_batch_model(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a model whose input has a fixed batch of 1
    from onnx import TensorProto, helper

    model = _onnx(
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    bundle = _loaded(
        model,
        "fixed",
        [TensorSpec(name="x", dtype="float32", shape=[1, 2])],
        [TensorSpec(name="y", dtype="float32", shape=[1, 2])],
    )
    # WHEN it is served with batching asked for
    with caplog.at_level(logging.WARNING, logger="modelfn.serving.batching"):
        state = _batching_state(bundle, max_batch_size=32)
    # THEN batching is off, the log says why, and requests are still served unbatched
    assert state.batcher is None and state.bundle is bundle
    assert "adaptive batching is off for model fixed" in caplog.text and "'x'" in caplog.text
    (response,) = asyncio.run(_post_all(state, [("/predict", {"instances": [[1.0, 2.0]]})]))
    assert response.status_code == 200 and response.json()["predictions"] == [[1.0, 2.0]]


def test_batching_is_off_for_inputs_with_different_batch_dimensions(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN two inputs whose axis 0 are different symbols in the graph
    from onnx import TensorProto, helper

    model = _onnx(
        [helper.make_node("Identity", ["a"], ["ya"]), helper.make_node("Identity", ["b"], ["yb"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [d, 2]) for n, d in (("a", "N"), ("b", "K"))],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [d, 2]) for n, d in (("ya", "N"), ("yb", "K"))],
    )
    specs = [TensorSpec(name=n, dtype="float32", shape=[-1, 2]) for n in ("a", "b", "ya", "yb")]
    bundle = _loaded(model, "two", specs[:2], specs[2:])
    # WHEN batching is asked for
    with caplog.at_level(logging.WARNING, logger="modelfn.serving.batching"):
        _, batcher = batched_bundle(bundle, Settings(max_batch_size=8))
    # THEN it is off, naming the dimensions
    assert batcher is None and "batch dimensions" in caplog.text and "'K'" in caplog.text


def test_batching_is_off_by_default_and_on_lambda(local_published: Published) -> None:
    # GIVEN the default settings, and settings asking for batching on the Lambda path (ModelState.load)
    assert Settings().max_batch_size == 1
    default = ModelState(local_published.settings, batching=True)
    default.record(ModelState.load(local_published.settings).require())
    on_lambda = ModelState.load(local_published.settings.replace(max_batch_size=16))
    # THEN neither batches
    assert default.batcher is None and on_lambda.ready and on_lambda.batcher is None


def test_settings_read_the_batching_variables_and_name_the_bad_one() -> None:
    # GIVEN the environment variables
    settings = Settings.load(environ={"MODELFN_MAX_BATCH_SIZE": "32", "MODELFN_MAX_BATCH_DELAY_MS": "2.5"})
    # THEN they are read, and invalid values are refused naming the field
    assert (settings.max_batch_size, settings.max_batch_delay_ms) == (32, 2.5)
    with pytest.raises(ConfigError) as size:
        Settings(max_batch_size=0)
    with pytest.raises(ConfigError) as delay:
        Settings(max_batch_delay_ms=float("nan"))
    assert (size.value.field, delay.value.field) == ("max_batch_size", "max_batch_delay_ms")


async def _never_disconnects() -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class _SlowDecoder:
    """A request still being decoded on a request thread (as a large body would be) until released."""

    def __init__(self, batcher: Batcher) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.task = asyncio.ensure_future(batcher.call(_never_disconnects, self._decode))

    def _decode(self) -> str:
        self.started.set()
        self.release.wait(30)
        return "decoded"

    async def wait_started(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.started.wait, 10)


def _predict_rows(batcher: Batcher, n: int) -> list[Any]:
    return [batcher.call(_never_disconnects, batcher.predict, {"x": np.full((1, 4), i, np.float32)}) for i in range(n)]


def test_a_full_queue_flushes_before_the_delay(linear: LoadedBundle) -> None:
    # GIVEN a 10 s delay, batches of 4, and another request still decoding (so the batcher would wait for it)
    batcher = Batcher(linear.model, max_batch_size=4, max_delay_ms=10_000)

    async def scenario() -> tuple[list[Any], bool]:
        slow = _SlowDecoder(batcher)
        await slow.wait_started()
        # WHEN 4 one-row requests fill a batch
        answers = await asyncio.wait_for(asyncio.gather(*_predict_rows(batcher, 4)), timeout=5)
        still_decoding = not slow.task.done()
        slow.release.set()
        assert await slow.task == "decoded"
        return answers, still_decoding

    try:
        answers, still_decoding = asyncio.run(scenario())
    finally:
        batcher.close()
    # THEN they ran as one batch, long before the delay, while the slow request was still decoding
    assert still_decoding and batcher.runs == 1 and batcher.requests == 4
    for i, answer in enumerate(answers):
        np.testing.assert_allclose(answer["y"], expected_linear(np.full((1, 4), i))[0], rtol=1e-6)


def test_a_partial_batch_waits_no_longer_than_the_delay(linear: LoadedBundle) -> None:
    # GIVEN a 100 ms delay, room for 64 rows, and a request that stays in decoding for good
    batcher = Batcher(linear.model, max_batch_size=64, max_delay_ms=100)

    async def scenario() -> bool:
        slow = _SlowDecoder(batcher)
        await slow.wait_started()
        # WHEN 2 requests queue
        await asyncio.wait_for(asyncio.gather(*_predict_rows(batcher, 2)), timeout=5)
        waiting = not slow.task.done()
        slow.release.set()
        await slow.task
        return waiting

    try:
        waiting = asyncio.run(scenario())
    finally:
        batcher.close()
    # THEN they were answered (bounded by the delay, not by the slow request) in one run
    assert waiting and batcher.runs == 1 and batcher.requests == 2


def test_a_disconnected_client_is_dropped_from_the_batch(linear: LoadedBundle) -> None:
    # GIVEN a batcher held waiting (a slow request decoding, 10 s delay) and a queued request whose client leaves
    batcher = Batcher(linear.model, max_batch_size=64, max_delay_ms=10_000)
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def scenario() -> tuple[Any, list[Any]]:
        slow = _SlowDecoder(batcher)
        await slow.wait_started()
        leaving = asyncio.ensure_future(batcher.call(receive, batcher.predict, {"x": np.ones((1, 4), np.float32)}))
        cancelled = asyncio.ensure_future(batcher.call(receive, batcher.predict, {"x": np.ones((1, 4), np.float32)}))
        await asyncio.sleep(0.2)  # both queued (or about to be)
        # WHEN one client disconnects, another request's task is cancelled, then the slow one finishes
        gone.set()
        cancelled.cancel()
        left = await asyncio.wait_for(leaving, timeout=5)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        slow.release.set()
        await slow.task
        later = await asyncio.wait_for(asyncio.gather(*_predict_rows(batcher, 2)), timeout=5)
        return left, later

    try:
        left, later = asyncio.run(scenario())
    finally:
        batcher.close()
    # THEN the departed requests got no answer and never ran; later requests are served as usual
    assert left is None
    assert batcher.requests == 2 and len(later) == 2


@contextlib.contextmanager
def _modelfn_serve(env: dict[str, str], log: Path, *flags: str) -> Iterator[str]:
    """A real ``modelfn serve`` subprocess on a free 127.0.0.1 port, ready; its base URL. Stopped on exit."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        args = [sys.executable, "-m", "modelfn.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *flags]
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(base + "/v2/health/ready", timeout=2).status_code == 200:
                        break
                assert proc.poll() is None, log.read_text()
                time.sleep(0.05)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.mark.slow
def test_modelfn_serve_batches_concurrent_clients(local_published: Published, tmp_path: Path) -> None:
    # GIVEN a real `modelfn serve` with the batching flags
    from tests.fixtures.models import tiny_onnx_expected

    xs = [RNG.normal(size=(1, 4)).astype(np.float32) for _ in range(32)]
    log = tmp_path / "serve.log"

    async def clients(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            return list(await asyncio.gather(*(client.post("/predict", json={"instances": x.tolist()}) for x in xs)))

    with _modelfn_serve(local_published.env, log, "--max-batch-size", "16", "--max-batch-delay-ms", "50") as base:
        # WHEN 32 clients post at once
        responses = asyncio.run(clients(base))
        metrics = httpx.get(base + "/metrics", timeout=10).text
    # THEN each answer is its own, and /metrics shows fewer batched runs than requests
    for x, response in zip(xs, responses, strict=True):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"], tiny_onnx_expected(x), rtol=1e-5)
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines() if line[:1] != "#"}
    assert values["InferenceBatchSize_sum"] == 32
    assert values["InferenceBatchSize_count"] < 32


def test_small_bodies_are_decoded_and_answered_on_the_event_loop_thread(linear: LoadedBundle) -> None:
    # GIVEN a batcher and 9 requests whose bodies are small, each recording the thread it decodes and encodes on
    batcher = Batcher(linear.model, max_batch_size=64, max_delay_ms=10_000)
    threads: list[int] = []

    def route(i: int) -> Any:
        threads.append(threading.get_ident())
        answer = batcher.predict({"x": np.full((1, 4), i, np.float64)})
        threads.append(threading.get_ident())
        return answer

    run_threads: list[int] = []

    def sink(name: str, value: float, unit: str) -> None:
        if name == INFERENCE_BATCH_SIZE:  # recorded by the thread making the run
            run_threads.append(threading.get_ident())

    async def scenario() -> tuple[int, list[Any]]:
        calls = [batcher.call(_never_disconnects, route, i, size=100) for i in range(8)]
        answers = await asyncio.wait_for(asyncio.gather(*calls), timeout=5)
        alone = await asyncio.wait_for(batcher.call(_never_disconnects, route, 8, size=100), timeout=5)
        return threading.get_ident(), [*answers, alone]

    METRICS.add_sink(sink)
    try:
        # WHEN they come at once, then one more alone
        loop_thread, answers = asyncio.run(scenario())
    finally:
        METRICS.remove_sink(sink)
        batcher.close()
    # THEN all of it ran on the event loop thread, the 8 in one merged run on the worker (long before the delay),
    # the lone one's run on the loop thread itself, each with its own rows
    assert threads == [loop_thread] * 18
    assert (batcher.runs, batcher.requests) == (2, 9)
    assert run_threads[0] != loop_thread and run_threads[1] == loop_thread
    for i, answer in enumerate(answers):
        np.testing.assert_allclose(answer["y"], expected_linear(np.full((1, 4), i))[0], rtol=1e-6)


def test_a_small_request_whose_client_leaves_or_is_cancelled_is_dropped_and_unwound(linear: LoadedBundle) -> None:
    # GIVEN a batcher held waiting (a slow request decoding, 10 s delay) and two small queued requests
    batcher = Batcher(linear.model, max_batch_size=64, max_delay_ms=10_000)
    gone = asyncio.Event()
    unwound: list[str] = []

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    def route(name: str) -> Any:
        try:
            return batcher.predict({"x": np.ones((1, 4), np.float32)})
        finally:
            unwound.append(name)

    async def scenario() -> tuple[Any, list[Any]]:
        slow = _SlowDecoder(batcher)
        await slow.wait_started()
        leaving = asyncio.ensure_future(batcher.call(receive, route, "leaving", size=100))
        cancelled = asyncio.ensure_future(batcher.call(_never_disconnects, route, "cancelled", size=100))
        await asyncio.sleep(0.2)  # both queued
        # WHEN one client disconnects and the other request's task is cancelled, then the slow one finishes
        gone.set()
        cancelled.cancel()
        left = await asyncio.wait_for(leaving, timeout=5)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        slow.release.set()
        await slow.task
        later = [batcher.call(_never_disconnects, route, f"later{i}", size=100) for i in range(2)]
        return left, await asyncio.wait_for(asyncio.gather(*later), timeout=5)

    try:
        left, later = asyncio.run(scenario())
    finally:
        batcher.close()
    # THEN the departed requests got no answer, never ran, and their routes unwound; later ones are served
    assert left is None
    assert sorted(unwound) == ["cancelled", "later0", "later1", "leaving"]
    assert batcher.requests == 2 and len(later) == 2


def test_a_float_outside_the_input_range_fails_alone_among_merged_requests(linear: LoadedBundle) -> None:
    # GIVEN float64 rows for a float32 input, one of them beyond float32's range
    from modelfn.errors import UnprocessableInput

    batcher = Batcher(linear.model, max_batch_size=64, max_delay_ms=10_000)
    xs = [np.full((1, 4), i, np.float64) for i in range(6)]
    xs[2] = np.array([[1e300, 0.0, 0.0, 0.0]])

    async def scenario() -> list[Any]:
        calls = [batcher.call(_never_disconnects, batcher.predict, {"x": x}, size=100) for x in xs]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=5)

    try:
        # WHEN they come at once
        answers = asyncio.run(scenario())
    finally:
        batcher.close()
    # THEN that request alone gets the 422 naming the input; the others get their own rows
    error = answers.pop(2)
    assert isinstance(error, UnprocessableInput) and error.field == "x" and "float32 range" in error.message
    for x, answer in zip(xs[:2] + xs[3:], answers, strict=True):
        np.testing.assert_allclose(answer["y"], expected_linear(x)[0], rtol=1e-6)


def test_without_greenlet_small_bodies_take_request_threads(
    linear: LoadedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an install without greenlet
    from modelfn.serving import batch_loop

    monkeypatch.setattr(batch_loop, "_GREENLET", None)
    batcher = Batcher(linear.model, max_batch_size=64, max_delay_ms=50)
    threads: list[int] = []

    def route(i: int) -> Any:
        threads.append(threading.get_ident())
        return batcher.predict({"x": np.full((1, 4), i, np.float32)})

    async def scenario() -> tuple[int, list[Any]]:
        calls = [batcher.call(_never_disconnects, route, i, size=100) for i in range(4)]
        return threading.get_ident(), await asyncio.wait_for(asyncio.gather(*calls), timeout=5)

    try:
        # WHEN small requests come
        loop_thread, answers = asyncio.run(scenario())
    finally:
        batcher.close()
    # THEN they are decoded on request threads, as before, and answered right
    assert len(threads) == 4 and loop_thread not in threads
    for i, answer in enumerate(answers):
        np.testing.assert_allclose(answer["y"], expected_linear(np.full((1, 4), i))[0], rtol=1e-6)
