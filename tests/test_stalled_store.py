"""A store that accepts connections and never answers (SECURITY.md rule 28).

Every S3 call is bounded by ``store_connect_timeout_s``, ``store_read_timeout_s`` and
``store_max_attempts``; past that budget the call fails with a typed ``StoreError``, so a Lambda
init ends and answers 503 + Retry-After, and a container stays live and not ready, instead of
hanging for botocore's ~311 s. The stalled endpoint is a real TCP listener that accepts and holds
every connection, counting them: the count is the number of attempts made.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelfn.config import Settings
from modelfn.errors import ConfigError, StoreError
from modelfn.store.base import StoreTimeouts
from modelfn.store.registry import store_for
from modelfn.store.s3 import S3Store
from tests.fixtures.keys import SigningKey

HANG_BOUND_S = 90.0
"""Far above the budgets under test (a few seconds) and far below the unbounded ~311 s: catches a hang."""


class StalledEndpoint:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte; counts and holds what it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def stalled(monkeypatch: pytest.MonkeyPatch) -> Iterator[StalledEndpoint]:
    endpoint = StalledEndpoint()
    for name, value in _aws_env(endpoint.url).items():
        monkeypatch.setenv(name, value)
    yield endpoint
    endpoint.close()


def _aws_env(endpoint_url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def _bounded(call: Callable[[], object]) -> BaseException:
    """Run ``call`` in a thread; it must end (with an exception) well before the hang bound."""
    box: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # recorded and asserted on by the caller
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_BOUND_S)
    assert not thread.is_alive(), "the store call hung"
    assert box, "the stalled store call succeeded"
    return box[0]


@pytest.mark.parametrize("name", ["store_connect_timeout_s", "store_read_timeout_s"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("inf"), float("nan")])
def test_store_timeouts_must_be_finite_and_positive(name: str, value: float) -> None:
    # GIVEN / WHEN a store timeout that would not bound anything / THEN a ConfigError names the setting
    with pytest.raises(ConfigError, match=name) as caught:
        Settings.load(environ={}, **{name: value})
    assert caught.value.field == name


def test_store_max_attempts_counts_the_first_attempt() -> None:
    # GIVEN / WHEN zero attempts / THEN refused by name; the environment variable is read as an integer
    with pytest.raises(ConfigError, match="store_max_attempts") as caught:
        Settings(store_max_attempts=0)
    assert caught.value.field == "store_max_attempts"
    settings = Settings.load(environ={"MODELFN_STORE_MAX_ATTEMPTS": "4", "MODELFN_STORE_READ_TIMEOUT_S": "1.5"})
    assert StoreTimeouts.from_settings(settings) == StoreTimeouts(connect_s=2.0, read_s=1.5, max_attempts=4)


def test_a_stalled_s3_store_fails_typed_after_its_attempt_budget(stalled: StalledEndpoint) -> None:
    # GIVEN an S3 store on an endpoint that accepts and never answers, 2 attempts of 0.5 s reads
    store = S3Store("stalled", "models", timeouts=StoreTimeouts(connect_s=0.5, read_s=0.5, max_attempts=2))
    # WHEN listing it
    error = _bounded(lambda: store.list("tiny/"))
    # THEN the call ends with a StoreError naming the location and the timeout, after exactly 2 attempts
    assert isinstance(error, StoreError), error
    assert "s3://stalled/models/tiny/" in error.message and "timeout" in error.message.lower()
    assert len(stalled.accepted) == 2


def test_store_for_takes_the_budget_from_settings_or_the_environment(
    stalled: StalledEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN explicit settings allowing 1 attempt
    settings = Settings(store_read_timeout_s=0.3, store_max_attempts=1)
    # WHEN reading through store_for with them / THEN exactly one connection is made
    assert isinstance(
        _bounded(lambda: list(store_for("s3://stalled/m", settings).read("tiny/1/model.sig"))), StoreError
    )
    assert len(stalled.accepted) == 1
    # AND without settings, MODELFN_STORE_* variables set the budget (2 attempts here)
    monkeypatch.setenv("MODELFN_STORE_READ_TIMEOUT_S", "0.3")
    monkeypatch.setenv("MODELFN_STORE_MAX_ATTEMPTS", "2")
    assert isinstance(_bounded(lambda: store_for("s3://stalled/m").list("")), StoreError)
    assert len(stalled.accepted) == 1 + 2


@pytest.mark.slow
def test_lambda_init_on_a_stalled_store_ends_and_answers_503_retry_after(
    stalled: StalledEndpoint, signing_key: SigningKey, tmp_path: Path
) -> None:
    from tests.handlers.events import http_event
    from tests.handlers.rie import Emulator

    # GIVEN the HTTP handler in the Lambda emulator, its store stalled, with the default store budget
    env = {
        **_aws_env(stalled.url),
        "MODELFN_STORE_URL": "s3://stalled/models",
        "MODELFN_MODEL_NAME": "tiny",
        "MODELFN_TRUSTED_KEYS": str(signing_key.public_path),
    }
    rie = Emulator(env, tmp_path / "rie.log")
    try:
        # WHEN a request arrives (the init phase loads the model first)
        response = rie.invoke(http_event("http_api_v2", "GET", "/v2/health/ready"), timeout_s=HANG_BOUND_S)
    finally:
        rie.stop()
    # THEN the init ended within its store budget and the handler answers 503 + Retry-After, naming the store
    assert response["statusCode"] == 503, response
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert int(headers["retry-after"]) >= 1
    body = json.loads(response["body"])
    assert body["code"] == "model_not_ready" and "(store)" in body["error"], body
    # AND it tried the default number of times
    assert len(stalled.accepted) == StoreTimeouts().max_attempts


@pytest.mark.slow
def test_container_on_a_stalled_store_fails_by_the_store_budget_not_the_load_timeout(
    stalled: StalledEndpoint, signing_key: SigningKey, tmp_path: Path
) -> None:
    from tests.test_container_failed_node import Serve

    # GIVEN `modelfn serve` on a stalled store, a 300 s load timeout, no retries, the default store budget
    env = {
        **_aws_env(stalled.url),
        "MODELFN_STORE_URL": "s3://stalled/models",
        "MODELFN_MODEL_NAME": "tiny",
        "MODELFN_TRUSTED_KEYS": str(signing_key.public_path),
        "MODELFN_LOAD_RETRIES": "0",
        "MODELFN_LOAD_TIMEOUT_S": "300",
    }
    node = Serve(env, tmp_path / "serve.log")
    try:
        # WHEN it starts: live at once, not ready (503 + Retry-After) while the store stalls
        node.wait_live()
        ready = node.get("/v2/health/ready")
        assert ready is not None and ready[0] == 503 and "retry-after" in ready[1]
        # THEN the attempt fails by the store's own bound, long before load_timeout_s, and the node exits non-zero
        node.proc.wait(HANG_BOUND_S)
        output = node.output()
    finally:
        node.stop()
    assert node.proc.returncode != 0
    assert "not loaded (store)" in output and "load_timeout_s" not in output, output
