"""``modelfn serve --lambda``: a handler under the real Lambda Runtime Interface Emulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelfn.emulate.lambda_rie import INVOKE_PATH, LambdaEmulator, free_port, settings_env
from modelfn.errors import ConfigError, InvalidRequest
from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected

MODELFN = Path(sys.executable).parent / "modelfn"
ROWS = [[0.1, 0.2, 0.3, 0.4]]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _generated_event(*args: str) -> dict[str, object]:
    out = subprocess.run([str(MODELFN), "event", *args], capture_output=True, text=True, check=True, timeout=60)
    event: dict[str, object] = json.loads(out.stdout)
    return event


@pytest.fixture
def served_lambda(local_published: Published, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`modelfn serve --lambda` as users run it: a foreground process that stops on Ctrl-C."""
    port = free_port()
    args = [str(MODELFN), "serve", "--lambda", "--port", str(port), "--store", local_published.settings.store_url,
            "--model", local_published.name, "--trust", local_published.settings.trusted_keys[0]]  # fmt: skip
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _listening(port):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.1)
    yield proc, port
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.slow
def test_serve_lambda_answers_generated_events_and_stops_on_ctrl_c(
    served_lambda: tuple[subprocess.Popen[bytes], int],
) -> None:
    import urllib.request

    proc, port = served_lambda
    # GIVEN `modelfn serve --lambda` listening on 127.0.0.1, and an event from `modelfn event http`
    event = _generated_event("http", "-d", json.dumps({"instances": ROWS}))
    # WHEN the event is POSTed to the emulator's invoke API
    request = urllib.request.Request(f"http://127.0.0.1:{port}{INVOKE_PATH}", data=json.dumps(event).encode())
    with urllib.request.urlopen(request, timeout=120) as answer:
        response = json.loads(answer.read())
    # THEN the handler (loaded and verified in the init phase) answers with the model's predictions
    assert response["statusCode"] == 200, response
    np.testing.assert_allclose(json.loads(response["body"])["predictions"], tiny_onnx_expected(np.array(ROWS)),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    # AND Ctrl-C stops the command and the emulator with it
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert not _listening(port)


@pytest.mark.slow
def test_emulator_reports_not_ready_for_an_unloadable_model(local_published: Published, tmp_path: Path) -> None:
    # GIVEN settings that name a model absent from the store
    env = settings_env(local_published.settings.replace(model_name="absent"))
    with (tmp_path / "rie.log").open("wb") as log, LambdaEmulator("http", env=env, log=log) as rie:
        # WHEN the readiness route is invoked
        response = rie.invoke(_generated_event("http", "--method", "GET", "--path", "/v2/health/ready"))
    # THEN the function answers 503 + Retry-After rather than crashing
    assert response["statusCode"] == 503
    assert "retry-after" in {k.lower() for k in response["headers"]}


def test_settings_env_round_trips_through_the_environment(local_published: Published) -> None:
    from modelfn.config import Settings

    # GIVEN settings with a tuple, a bool and an optional field set
    settings = local_published.settings.replace(allow_custom_code=True, output_url="s3://out/results")
    # WHEN they travel as MODELFN_* variables, THEN the handler process reads the same settings
    assert Settings.load(environ=settings_env(settings)) == settings


@pytest.mark.parametrize("missing", ["samcli", "awslambdaric"])
def test_missing_emulator_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    # GIVEN an environment without one of the emulate extra's packages
    monkeypatch.setitem(sys.modules, missing, None)
    # WHEN the emulator is asked for, THEN the error says which extra to install
    with pytest.raises(ConfigError, match=r"modelfn\[emulate\]"):
        LambdaEmulator("http")


def test_unknown_handler_lists_the_choices() -> None:
    with pytest.raises(InvalidRequest, match="http, storage_event, wsgi or give module.function") as caught:
        LambdaEmulator("websocket")
    assert caught.value.field == "handler"


def test_serve_lambda_with_an_unknown_handler_exits_2() -> None:
    out = subprocess.run([str(MODELFN), "serve", "--lambda", "--handler", "nope", "--port", str(free_port())],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "choose one of http, storage_event, wsgi" in out.stderr


@pytest.mark.slow
def test_storage_event_handler_under_the_emulator(s3_published: Published, s3_bucket: str, tmp_path: Path) -> None:
    import io

    import boto3

    # GIVEN an input object on moto_server and the storage-event handler under aws-lambda-rie
    buffer = io.BytesIO()
    np.save(buffer, np.array(ROWS * 2, dtype=np.float32))
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="incoming/rows.npy", Body=buffer.getvalue())
    env = settings_env(s3_published.settings.replace(output_url=f"s3://{s3_bucket}/results"))
    event = _generated_event("sqs", "--bucket", s3_bucket, "--key", "incoming/rows.npy", "--lookup")
    with (tmp_path / "rie.log").open("wb") as log, LambdaEmulator("storage_event", env=env, log=log) as rie:
        # WHEN an SQS-delivered S3 notification from `modelfn event sqs` is invoked
        response = rie.invoke(event)
    # THEN no record failed and the predictions were written under the output prefix
    assert response == {"batchItemFailures": []}, (tmp_path / "rie.log").read_text()
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="results/")["Contents"]
    assert any(obj["Key"].endswith(".npz") for obj in listed)
