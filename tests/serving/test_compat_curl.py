"""The documented curl lines, run by the real curl against a real ``modelfn serve`` (uvicorn) on 127.0.0.1."""

from __future__ import annotations

import json
import os
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

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 0.5, 0.0]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_url(local_published: Published, tmp_path: Path) -> Iterator[str]:
    """``modelfn serve`` for the tiny model (x float32 [N, 4] → y float32 [N, 3], no labels), until it is ready."""
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelfn.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **local_published.env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(base + "/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text(errors="replace"))
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def curl(line: str, base: str, cwd: Path) -> tuple[int, Any]:
    """Run a documented curl line (``$URL`` = the server) and return (status, JSON body)."""
    out = subprocess.run(
        ["bash", "-c", line.replace("$URL", base) + " -s -o body.json -w '%{http_code}'"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=True,
    )
    return int(out.stdout), json.loads((cwd / "body.json").read_text())


@pytest.mark.slow
def test_documented_curl_lines(base_url: str, tmp_path: Path) -> None:
    # GIVEN the files the documented lines upload
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    (tmp_path / "row.json").write_text(json.dumps(ROWS[0]))
    (tmp_path / "kitten.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    y = tiny_onnx_expected(np.array(ROWS, dtype=np.float32))
    # WHEN each line is run; THEN each answers as its protocol does
    status, body = curl(f"curl -d '{json.dumps({'instances': ROWS})}' $URL/v1/models/tiny:predict", base_url, tmp_path)
    assert status == 200 and isinstance(body, dict)
    np.testing.assert_allclose(body["predictions"], y, rtol=1e-6)
    status, body = curl("curl $URL/v1/models/tiny", base_url, tmp_path)
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE" and body["ready"] is True
    status, body = curl("curl -X POST $URL/predictions/tiny -F data=@rows.json", base_url, tmp_path)
    assert status == 200
    np.testing.assert_allclose(body, y, rtol=1e-6)
    status, body = curl("curl -X POST $URL/predictions/tiny -T kitten.png", base_url, tmp_path)
    assert status == 415 and isinstance(body, dict) and "no image preprocessing" in body["error"]
    status, body = curl("curl $URL/ping", base_url, tmp_path)
    assert (status, body) == (200, {"status": "Healthy"})
    status, body = curl("curl -X POST $URL/predict -F 'image=@row.json;type=application/json'", base_url, tmp_path)
    assert status == 200 and isinstance(body, dict) and body["success"] is True
    assert body["predictions"][0]["label"] == int(y[0].argmax())  # no labels declared: class indices
