"""The real Lambda Runtime Interface Emulator (aws-lambda-rie + awslambdaric) around one modelfn handler.

The emulator binary ships inside the aws-sam-cli wheel. It starts ``python -m awslambdaric
<handler>`` exactly as the Lambda Python runtime does: the module import (init phase) verifies and
loads the model from the store named by ``MODELFN_*`` variables, and each invocation goes through
the handler. Both addresses are pinned to 127.0.0.1 (the default is 0.0.0.0:8080).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

HTTP_HANDLER = "modelfn.handlers.http.handler"


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
    """A running aws-lambda-rie process with one modelfn handler (the HTTP handler by default)."""

    def __init__(self, env: dict[str, str], log: Path, handler: str = HTTP_HANDLER) -> None:
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
                handler,
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
                self.stop()
                raise RuntimeError(f"aws-lambda-rie did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """One synchronous invocation; the handler's response."""
        request = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def stop(self) -> None:
        """Terminate the emulator (and the runtime it started) and close the log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
