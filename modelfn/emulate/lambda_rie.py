"""Run a modelfn handler under the real Lambda Runtime Interface Emulator, on 127.0.0.1.

``aws-lambda-rie`` (the binary inside the aws-sam-cli wheel) serves Lambda's invoke API and starts
``python -m awslambdaric <handler>`` the way the Lambda Python runtime does: the handler module's
import is the init phase (settings, then fetch → verify → load), and every invocation goes
through the Runtime API. No Docker and no cloud account; both the `emulate` extra's packages.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal

from modelfn.errors import ConfigError, InvalidRequest

if TYPE_CHECKING:
    from modelfn.config import Settings

HandlerName = Literal["http", "storage_event"]
HANDLERS: dict[str, str] = {
    "http": "modelfn.handlers.http.handler",
    "storage_event": "modelfn.handlers.storage_event.handler",
    "wsgi": "modelfn.handlers.wsgi.handler",
}
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
MISSING_EXTRA = "the Lambda emulator needs the emulate extra: pip install 'modelfn[emulate]'"
START_TIMEOUT_S = 20.0


def rie_binary() -> Path:
    """The ``aws-lambda-rie`` executable for this machine, from the installed aws-sam-cli."""
    spec = importlib.util.find_spec("samcli")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"aws-lambda-rie not found: {MISSING_EXTRA} (aws-sam-cli)", field="emulate")
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    binary = Path(next(iter(spec.submodule_search_locations))) / "local" / "rapid" / f"aws-lambda-rie-{arch}"
    if not binary.is_file():
        raise ConfigError(f"aws-lambda-rie not found at {binary}: {MISSING_EXTRA} (aws-sam-cli)", field="emulate")
    return binary


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``MODELFN_*`` variables that make a handler process load exactly ``settings``."""
    import dataclasses

    from modelfn.config import ENV_NAMES

    env: dict[str, str] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is None or value == ():
            continue
        if isinstance(value, tuple):
            joiner = "\n" if any("-----BEGIN" in str(v) for v in value) else ","
            value = joiner.join(str(v) for v in value)
        env[ENV_NAMES[field.name]] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LambdaEmulator:
    """A running ``aws-lambda-rie`` with one handler; a context manager that stops itself.

    ``handler`` is a name from ``HANDLERS`` or a dotted ``module.function`` path. ``python`` and
    ``cwd`` run the runtime from another interpreter or an unpacked zip; ``inherit_env=False``
    gives it only ``env`` (plus the Lambda variables), as a clean Lambda environment would.
    """

    def __init__(
        self,
        handler: str = "http",
        *,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log: IO[bytes] | None = None,
        timeout_s: int = 30,
        memory_mb: int = 1024,
        python: str | Path = sys.executable,
        cwd: Path | None = None,
        inherit_env: bool = True,
    ) -> None:
        target = HANDLERS.get(handler, handler)
        if "." not in target:
            raise InvalidRequest(
                f"unknown handler {handler!r}; choose one of {', '.join(HANDLERS)} or give module.function",
                field="handler",
            )
        if str(python) == sys.executable and importlib.util.find_spec("awslambdaric") is None:
            raise ConfigError(f"awslambdaric not installed: {MISSING_EXTRA}", field="emulate")
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}{INVOKE_PATH}"
        lambda_env = {
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout_s),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_FUNCTION_NAME": f"modelfn-{target.split('.')[-2].replace('_', '-')}",
        }
        command = [
            str(rie_binary()),
            "--runtime-interface-emulator-address", f"{host}:{self.port}",
            "--runtime-api-address", f"127.0.0.1:{free_port()}",
            str(python), "-m", "awslambdaric", target,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env={**(os.environ if inherit_env else {}), **lambda_env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with socket.socket() as sock:
                if sock.connect_ex((self.host, self.port)) == 0:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(
                    f"aws-lambda-rie did not start listening on {self.host}:{self.port} (is the port free?)",
                    field="port",
                )
            time.sleep(0.05)

    def invoke(self, event: Mapping[str, Any], *, timeout_s: float = 60.0) -> dict[str, Any]:
        """POST one event to the emulator's invoke API and return the handler's JSON response."""
        request = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def wait(self) -> int:
        """Block until the emulator exits (the foreground ``modelfn serve --lambda``)."""
        return self.proc.wait()

    def stop(self) -> None:
        """Terminate the emulator and the runtime it started."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> LambdaEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
