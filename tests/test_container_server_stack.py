"""`modelfn serve` runs on uvloop + httptools when they are installed, on asyncio + h11 when not.

The stack is read from the running server itself: the shared objects mapped into its process
(/proc/PID/maps), so the test shows what uvicorn actually loaded, not what a helper returned. The
load starts before uvicorn is imported; a load that gives up before the server exists must still
end the process non-zero.
"""

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

import pytest

from modelfn.container import server_stack
from tests.fixtures.bundles import Published

ENTRY = "from modelfn._entry import main; main()"
WITHOUT_FAST_STACK = "import sys; sys.modules['uvloop'] = None; sys.modules['httptools'] = None; " + ENTRY
"""The CLI with uvloop and httptools made unimportable, as on an install without them."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: bytes) -> int | None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


class Server:
    """A real `modelfn serve` on a free 127.0.0.1 port, started from ``code`` (a ``python -c`` string)."""

    def __init__(self, code: str, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self._log = log.open("wb")
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def first_prediction(self, deadline_s: float = 60.0) -> None:
        url = f"http://127.0.0.1:{self.port}/predict"
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and self.proc.poll() is None:
            if _post(url, json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]}).encode()) == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"no 200 from {url}:\n{self.log.read_text(errors='replace')}")

    def mapped_libraries(self) -> str:
        return Path(f"/proc/{self.proc.pid}/maps").read_text()

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
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def test_server_stack_names_uvloop_and_httptools_when_installed() -> None:
    # GIVEN the dev environment, which installs the cli extra (uvloop and httptools included)
    # WHEN the container entry point picks its stack
    # THEN it is the fast one
    assert server_stack() == ("uvloop", "httptools")


@pytest.mark.slow
def test_serve_runs_on_uvloop_and_httptools(local_published: Published, tmp_path: Path, servers: list[Server]) -> None:
    # GIVEN a signed model in a local store
    # WHEN `modelfn serve` starts and answers its first prediction
    server = Server(ENTRY, local_published.env, tmp_path / "serve.log")
    servers.append(server)
    server.first_prediction()
    # THEN the process has uvloop's event loop and httptools' parser loaded
    maps = server.mapped_libraries()
    assert "/uvloop/loop." in maps
    assert "/httptools/parser/" in maps
    # and plain options skipped typer's parse, which would have loaded pydantic (~110 ms of CPU)
    assert "pydantic_core" not in maps


@pytest.mark.slow
def test_serve_falls_back_to_asyncio_and_h11(local_published: Published, tmp_path: Path, servers: list[Server]) -> None:
    # GIVEN an install where uvloop and httptools cannot be imported
    # WHEN `modelfn serve` starts
    server = Server(WITHOUT_FAST_STACK, local_published.env, tmp_path / "serve.log")
    servers.append(server)
    # THEN it still serves predictions, on asyncio + h11
    server.first_prediction()
    maps = server.mapped_libraries()
    assert "/uvloop/" not in maps and "/httptools/" not in maps


@pytest.mark.slow
def test_load_that_gives_up_at_once_still_ends_the_process(
    local_published: Published, tmp_path: Path, servers: list[Server]
) -> None:
    # GIVEN a model name the store does not hold and no retries: the load fails as the server starts
    env = {**local_published.env, "MODELFN_MODEL_NAME": "absent", "MODELFN_LOAD_RETRIES": "0"}
    # WHEN `modelfn serve` starts (the load begins before uvicorn is even imported)
    server = Server(ENTRY, env, tmp_path / "serve.log")
    servers.append(server)
    # THEN the process exits non-zero by itself, saying why
    assert server.proc.wait(90) != 0
    assert "absent" in server.log.read_text(errors="replace")
