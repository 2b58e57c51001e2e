"""Failed-node removal in container mode (issue 8 item 6; SECURITY.md rules 20, 28).

A container whose model fails verification or load never becomes ready: readiness 503 +
Retry-After, liveness 200 while it retries with backoff, then the process exits non-zero so the
platform replaces it. The subprocess tests run the real ``modelfn serve`` on a free 127.0.0.1
port; the in-process tests drive the same ``LoadSupervisor`` with real stores.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelfn.config import Settings
from modelfn.container import MAX_BACKOFF_S, LoadSupervisor, backoff_delays
from modelfn.errors import IntegrityError, ModelfnError, ModelNotReady
from modelfn.serving.metrics import MODEL_LOAD_FAILED, Metrics
from modelfn.serving.state import ModelState
from tests.fixtures.bundles import Published, publish
from tests.fixtures.keys import SigningKey

EXIT_BOUND_S = 90.0
"""Generous bound for a node to give up (startup on a busy machine + the configured backoff)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tamper(published: Published) -> None:
    path = Path(published.settings.store_url) / published.name / str(published.version) / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _get(url: str) -> tuple[int, dict[str, str], bytes] | None:
    """(status, headers, body), or None while nothing answers on the port."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


class Serve:
    """A real ``modelfn serve`` subprocess on a free 127.0.0.1 port; stopped at the end of the test."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelfn.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> tuple[int, dict[str, str], bytes] | None:
        return _get(self.base + path)

    def wait_live(self, deadline_s: float = 60.0) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            answer = self.get("/v2/health/live")
            if answer is not None and answer[0] == 200:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"modelfn serve never answered /v2/health/live:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for process in started:
        process.stop()


@pytest.mark.slow
def test_tampered_bundle_is_not_ready_stays_live_then_exits_non_zero(
    local_published: Published, tmp_path: Path, serve_process: list[Serve]
) -> None:
    # GIVEN a store whose model.onnx was modified after signing, and a budget of 2 retries
    _tamper(local_published)
    env = {**local_published.env, "MODELFN_LOAD_RETRIES": "2", "MODELFN_LOAD_BACKOFF_S": "2"}
    # WHEN the container entry point starts
    node = Serve(env, tmp_path / "serve.log")
    serve_process.append(node)
    node.wait_live()
    # THEN while it loads and retries: ready 503 + Retry-After naming why (loading, then integrity)
    deadline = time.monotonic() + 30
    reasons: list[str] = []
    while "integrity" not in "".join(reasons) and time.monotonic() < deadline:
        ready = node.get("/v2/health/ready")
        assert ready is not None and ready[0] == 503, ready
        assert int(ready[1]["retry-after"]) >= 1
        body = json.loads(ready[2])
        assert body["code"] == "model_not_ready"
        reasons.append(body["error"])
    assert "(integrity)" in reasons[-1], reasons
    request = urllib.request.Request(node.base + "/predict", data=b'{"instances": [[1, 2, 3, 4]]}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 503 and refused.value.headers["retry-after"]  # predictions refused too
    live_answers: list[int] = []
    deadline = time.monotonic() + EXIT_BOUND_S
    while node.proc.poll() is None and time.monotonic() < deadline:
        answer = node.get("/v2/health/live")
        if answer is not None:
            live_answers.append(answer[0])
            readiness = node.get("/v2/health/ready")
            assert readiness is None or readiness[0] == 503  # never ready, not even once
        time.sleep(0.2)
    # AND when the retries run out the process exits non-zero, within the bound, saying why
    assert node.proc.poll() is not None, f"still running after {EXIT_BOUND_S} s:\n{node.output()}"
    assert node.proc.returncode != 0
    assert live_answers and set(live_answers) == {200}
    log = node.output()
    assert "load attempt 1/3" in log and "load attempt 2/3" in log, log
    assert "did not load after 3 attempt(s)" in log and "integrity" in log, log


@pytest.mark.slow
def test_good_bundle_becomes_ready_and_stays_up(
    local_published: Published, tmp_path: Path, serve_process: list[Serve]
) -> None:
    # GIVEN a good signed bundle and a short retry budget
    env = {**local_published.env, "MODELFN_LOAD_RETRIES": "1", "MODELFN_LOAD_BACKOFF_S": "0.2"}
    node = Serve(env, tmp_path / "serve.log")
    serve_process.append(node)
    node.wait_live()
    # WHEN it has had time to load
    deadline = time.monotonic() + 60
    ready = node.get("/v2/health/ready")
    while (ready is None or ready[0] != 200) and time.monotonic() < deadline:
        time.sleep(0.1)
        ready = node.get("/v2/health/ready")
    # THEN it is ready with the verified identity, and still serving after the retry budget has passed
    assert ready is not None and ready[0] == 200, node.output()
    assert json.loads(ready[2])["name"] == local_published.name
    time.sleep(1.0)
    assert node.proc.poll() is None
    request = urllib.request.Request(
        node.base + "/predict",
        data=b'{"instances": [[1, 2, 3, 4]]}',
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and "predictions" in json.loads(response.read())
    # AND a platform's SIGTERM stops it gracefully (uvicorn finishes, then re-raises the signal)
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(30) in (0, -signal.SIGTERM)
    assert "Finished server process" in node.output()


@pytest.fixture
def stalled_endpoint() -> Iterator[str]:
    """A TCP port that accepts connections (kernel backlog) and never answers: a stalled store."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.slow
def test_stalled_store_leaves_the_node_up_not_ready_then_exits(
    stalled_endpoint: str, tmp_path: Path, signing_key: SigningKey, serve_process: list[Serve]
) -> None:
    # GIVEN an S3 store whose endpoint accepts connections and never answers, and 1.5 s per attempt
    env = {
        "AWS_ENDPOINT_URL": stalled_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "MODELFN_STORE_URL": "s3://stalled/models",
        "MODELFN_MODEL_NAME": "tiny",
        "MODELFN_TRUSTED_KEYS": str(signing_key.public_path),
        "MODELFN_LOAD_RETRIES": "1",
        "MODELFN_LOAD_BACKOFF_S": "0.5",
        "MODELFN_LOAD_TIMEOUT_S": "1.5",
    }
    node = Serve(env, tmp_path / "serve.log")
    serve_process.append(node)
    # WHEN it starts: the socket is up although the store never answers
    node.wait_live()
    ready = node.get("/v2/health/ready")
    # THEN it answers: live 200, ready 503 + Retry-After, never hung
    assert ready is not None and ready[0] == 503 and "retry-after" in ready[1]
    # AND after the bounded attempts it exits non-zero, naming the per-attempt bound
    node.proc.wait(EXIT_BOUND_S)
    assert node.proc.returncode != 0
    assert "load_timeout_s" in node.output()


# --- the supervisor in-process, with real stores ------------------------------------------------------


def test_backoff_doubles_with_bounded_jitter_and_a_cap() -> None:
    # GIVEN 8 retries from 5 s
    settings = Settings(load_retries=8, load_backoff_s=5.0)
    # WHEN the delays are drawn
    delays = backoff_delays(settings, random.Random(7))
    # THEN each is within 50-100 % of min(5 * 2**k, cap)
    assert len(delays) == 8
    for k, delay in enumerate(delays):
        nominal = min(MAX_BACKOFF_S, 5.0 * 2**k)
        assert nominal / 2 <= delay <= nominal
    assert backoff_delays(Settings(load_retries=0)) == []


def test_supervisor_gives_up_after_the_budget_with_the_typed_failure(local_published: Published) -> None:
    # GIVEN a tampered bundle, 2 retries with tiny waits, and a private metrics hook
    _tamper(local_published)
    settings = local_published.settings.replace(load_retries=2, load_backoff_s=0.01)
    state, metrics, given_up = ModelState.pending(settings), Metrics(), []
    supervisor = LoadSupervisor(state, on_give_up=given_up.append, metrics=metrics)
    # WHEN it runs to the end
    supervisor.run()
    # THEN every attempt failed on integrity, each counted, and it gave up exactly once, never ready
    assert state.attempts == 3 and metrics.count(MODEL_LOAD_FAILED) == 3
    assert len(given_up) == 1 and isinstance(given_up[0], IntegrityError)
    assert not state.ready
    with pytest.raises(ModelNotReady):
        state.require()


def test_supervisor_loads_once_the_store_is_fixed(
    tmp_path: Path, tiny_bundle_dir: Path, signing_key: SigningKey
) -> None:
    # GIVEN an empty store (the model is published a moment after the node starts)
    store = str(tmp_path / "store")
    settings = Settings(
        store_url=store, model_name="tiny", model_version="1", trusted_keys=(str(signing_key.public_path),), threads=1
    ).replace(load_retries=5, load_backoff_s=0.5)
    state, metrics, given_up = ModelState.pending(settings), Metrics(), []
    supervisor = LoadSupervisor(state, on_give_up=given_up.append, metrics=metrics, rng=random.Random(1))
    supervisor.start()
    deadline = time.monotonic() + 30
    while state.attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # WHILE waiting to retry: not ready, and Retry-After counts down to the next attempt
    with pytest.raises(ModelNotReady) as info:
        state.require()
    assert info.value.retry_after_s == 1
    # WHEN the model is published
    publish(tiny_bundle_dir, store, signing_key)
    supervisor.join(30)
    # THEN the next attempt loads it: ready, no give-up, one failure counted
    assert state.ready and given_up == [] and metrics.count(MODEL_LOAD_FAILED) >= 1
    assert state.require().manifest.name == "tiny"


def test_stop_cuts_the_backoff_short_without_giving_up(local_published: Published) -> None:
    # GIVEN a failing load and a long backoff
    _tamper(local_published)
    settings = local_published.settings.replace(load_retries=3, load_backoff_s=30.0)
    state, given_up = ModelState.pending(settings), []
    supervisor = LoadSupervisor(state, on_give_up=given_up.append, metrics=Metrics())
    supervisor.start()
    deadline = time.monotonic() + 30
    while state.attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # WHEN the process shuts down during the wait
    supervisor.stop()
    supervisor.join(10)
    # THEN the supervisor ended without another attempt and without asking for a non-zero exit
    assert state.attempts == 1 and given_up == []
    assert not any(t.name == "modelfn-load-supervisor" for t in threading.enumerate())


def test_a_loaded_model_is_never_replaced(local_published: Published) -> None:
    # GIVEN a state that has loaded the verified model
    state = ModelState.load(local_published.settings, metrics=Metrics())
    loaded = state.require()
    # WHEN a later outcome is recorded (a failure, or another load)
    state.record(ModelfnError("late failure"))
    state.record(ModelState.load(local_published.settings, metrics=Metrics()).require())
    # THEN the first verified bundle keeps serving
    assert state.require() is loaded and state.failure is None
