"""The HTTP handler inside the real Lambda Runtime Interface Emulator (aws-lambda-rie + awslambdaric).

The emulator binary ships inside the aws-sam-cli wheel. It starts ``python -m awslambdaric
modelfn.handlers.http.handler`` exactly as the Lambda Python runtime does: the module import (init
phase) verifies and loads the model from the store named by ``MODELFN_*`` variables, and each
invocation goes through Mangum. Both addresses are pinned to 127.0.0.1 (the default is 0.0.0.0:8080).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected
from tests.handlers.events import HTTP_SOURCES, http_event

pytestmark = pytest.mark.slow


def _rie_binary() -> Path:
    import samcli

    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    binary = Path(samcli.__file__).parent / "local" / "rapid" / f"aws-lambda-rie-{arch}"
    if not binary.exists():
        pytest.fail(f"aws-lambda-rie not found at {binary}: install the dev extra (aws-sam-cli)")
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Emulator:
    """A running aws-lambda-rie process with the modelfn HTTP handler."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        api_port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/2015-03-31/functions/function/invocations"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                str(_rie_binary()),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{self.port}",
                "--runtime-api-address",
                f"127.0.0.1:{api_port}",
                sys.executable,
                "-m",
                "awslambdaric",
                "modelfn.handlers.http.handler",
            ],  # fmt: skip
            env={**os.environ, **env, "AWS_LAMBDA_FUNCTION_TIMEOUT": "30", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"aws-lambda-rie did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


@pytest.fixture
def emulator(local_published: Published, tmp_path: Path) -> Iterator[Emulator]:
    rie = Emulator(local_published.env, tmp_path / "rie.log")
    yield rie
    rie.stop()


@pytest.mark.parametrize("source", HTTP_SOURCES)
def test_predict_through_the_emulator(emulator: Emulator, source: str) -> None:
    # GIVEN a verified model loaded in the emulator's init phase
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    body = json.dumps({"instances": x.tolist()}).encode()
    # WHEN each front door's event shape is invoked, once with a base64 body
    for as_base64 in (False, True):
        response = emulator.invoke(
            http_event(
                source, "POST", "/predict", body, as_base64=as_base64, headers={"content-type": "application/json"}
            )
        )
        # THEN the handler answers 200 with the model's predictions
        assert response["statusCode"] == 200, response
        payload = json.loads(response["body"])
        np.testing.assert_allclose(payload["predictions"], tiny_onnx_expected(x), rtol=1e-5, atol=1e-6)


def test_health_reports_the_verified_identity(emulator: Emulator, local_published: Published) -> None:
    response = emulator.invoke(http_event("http_api_v2", "GET", "/v2/health/ready"))
    assert response["statusCode"] == 200
    ready = emulator.invoke(http_event("http_api_v2", "GET", f"/v2/models/{local_published.name}"))
    assert json.loads(ready["body"])["name"] == local_published.name


def test_bad_input_is_4xx_not_a_crash(emulator: Emulator) -> None:
    response = emulator.invoke(http_event("http_api_v2", "POST", "/predict", b"{not json"))
    assert response["statusCode"] == 400
    assert "error" in json.loads(response["body"])


def test_tampered_model_never_becomes_ready(local_published: Published, tmp_path: Path) -> None:
    # GIVEN a store whose model.onnx was modified after signing
    path = Path(local_published.settings.store_url) / "tiny" / "1" / "model.onnx"
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    rie = Emulator(local_published.env, tmp_path / "rie.log")
    try:
        # WHEN the function starts and gets a prediction request
        response = rie.invoke(http_event("http_api_v2", "POST", "/predict", b'{"instances": [[1, 2, 3, 4]]}'))
        # THEN it answers 503 with Retry-After instead of serving an unverified model
        assert response["statusCode"] == 503
        headers = {k.lower(): v for k, v in response["headers"].items()}
        assert "retry-after" in headers
    finally:
        rie.stop()
