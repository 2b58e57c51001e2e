"""`modelfn serve` with plain options is called without typer's parse, with exactly typer's values.

The direct call exists for cold start (typer 0.29 imports pydantic and builds an adapter per
parameter, ~110 ms of CPU; the console script skips typer, click, rich and ``modelfn.cli``
altogether); it must never change what a command receives or what the server answers, and anything
it does not handle plainly goes to typer, which gives the usual errors and help.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import typer

import modelfn.container
from modelfn.cli import app, serve
from modelfn.commands._direct import SERVE_OPTIONS, direct_kwargs, option_table, parse_options, serve_direct
from modelfn.config import Settings
from modelfn.serving.asgi import create_app
from modelfn.serving.state import ModelState
from tests.fixtures.bundles import Published
from tests.serving.asgi_client import SyncASGIClient

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY = [sys.executable, "-c", "from modelfn._entry import main; main()"]
"""The ``modelfn`` console script (pyproject's ``modelfn._entry:main``) without relying on its install."""

PLAIN = [
    [],
    ["--port", "0"],
    ["--store", "s3://b/models", "--model", "iris", "--trust", "a.pub", "--trust", "b.pub", "--port", "8099"],
    ["--model=iris", "--version", "latest", "--host", "0.0.0.0", "--threads", "2", "--config", "conf.toml"],
    ["--max-batch-size", "16", "--max-batch-delay-ms", "2.5", "--allow-custom-code", "--output", "s3://b/out"],
    ["--no-custom-code", "--lambda", "--handler", "storage_event", "--port", "9000", "--port", "9001"],
]
"""Argument lists a container or a user passes; the last repeats --port (the last one wins, as in click)."""

LEFT_TO_TYPER = [
    ["--help"],
    ["-m", "iris"],
    ["--port", "eighty"],
    ["--port", "1_000"],
    ["--max-batch-delay-ms", "inf"],
    ["--port"],
    ["--store", "--model"],
    ["--unknown", "1"],
    ["positional"],
    ["--lambda=yes"],
]


def _typer_params(args: list[str]) -> dict[str, Any]:
    """What typer's own parse calls ``serve`` with for ``args`` (a recorder with serve's exact signature)."""
    seen: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> None:
        seen.append(kwargs)

    record.__signature__ = inspect.signature(serve, eval_str=True)  # type: ignore[attr-defined]
    record.__annotations__ = typing.get_type_hints(serve, include_extras=True)
    recorder = typer.Typer()
    recorder.command("serve")(record)
    recorder.command("other")(lambda: None)  # a group, as in modelfn's CLI
    recorder(["serve", *args], standalone_mode=False)
    assert len(seen) == 1
    return seen[0]


def _direct_params(args: list[str]) -> dict[str, Any] | None:
    kwargs = direct_kwargs(serve, args)
    if kwargs is None:
        return None
    defaults = {name: p.default for name, p in inspect.signature(serve).parameters.items()}
    return {**defaults, **kwargs}


@pytest.mark.parametrize("args", PLAIN, ids=lambda a: " ".join(a) or "no-args")
def test_direct_call_passes_what_typer_passes(args: list[str]) -> None:
    # GIVEN plain long options for `modelfn serve`
    # WHEN they are read by the direct path and by typer
    direct, parsed = _direct_params(args), _typer_params(args)
    # THEN the command receives the same values, converted the same way
    assert direct is not None
    assert direct == parsed


@pytest.mark.parametrize("args", LEFT_TO_TYPER, ids=" ".join)
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    # GIVEN help, a short flag, a bad or missing value, an unknown flag or a positional
    # WHEN the direct path reads them
    # THEN it declines, so typer parses and reports as usual
    assert direct_kwargs(serve, args) is None


def test_typer_still_reports_bad_values() -> None:
    # GIVEN a value typer rejects
    # WHEN `modelfn serve` runs with it
    done = subprocess.run(
        [sys.executable, "-m", "modelfn.cli", "serve", "--port", "eighty"], capture_output=True, text=True, timeout=60
    )
    # THEN typer's usage error names the option (exit 2), as before
    assert done.returncode == 2
    assert "Invalid value for '--port'" in done.stderr


@pytest.mark.slow
def test_serve_failure_exits_2_with_its_message_on_the_direct_path(tmp_path: Path) -> None:
    # GIVEN a store without the model and no load retries
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    env_args = ["--store", str(tmp_path / "store"), "--model", "absent", "--port", port, "--host", "127.0.0.1"]
    # WHEN `modelfn serve` starts with plain options (the direct path)
    done = subprocess.run(
        [sys.executable, "-m", "modelfn.cli", "serve", *env_args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "MODELFN_LOAD_RETRIES": "0", "HOME": str(tmp_path)},
    )
    # THEN it exits 2 with the error line typer's path prints, not a traceback
    assert done.returncode == 2, done.stderr
    assert "error: " in done.stderr and "absent" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_console_scripts_serve_table_is_serves_own_options() -> None:
    # GIVEN the table the console script reads `modelfn serve` with (no typer import)
    # WHEN it is set beside the options typer reads from modelfn.cli.serve's signature
    from_typer = option_table(serve)
    # THEN they hold the same long flags, parameters and kinds (a new serve option must be added to both)
    assert from_typer is not None
    assert SERVE_OPTIONS == {flag: kind for flag, kind in from_typer.items() if flag.startswith("--")}


@pytest.mark.parametrize("args", PLAIN, ids=lambda a: " ".join(a) or "no-args")
def test_the_console_scripts_parse_is_typers(args: list[str]) -> None:
    # GIVEN plain long options
    # WHEN the console script's table reads them
    # THEN it gives what typer's parse gives
    assert parse_options(SERVE_OPTIONS, args) == direct_kwargs(serve, args)


@pytest.mark.parametrize("args", LEFT_TO_TYPER, ids=" ".join)
def test_the_console_script_leaves_the_rest_to_typer(args: list[str]) -> None:
    # GIVEN help, a short flag, a bad or missing value, an unknown flag or a positional
    # WHEN the console script reads them, or `--lambda` (the emulator is started by the typer path)
    # THEN it declines and starts nothing
    assert serve_direct(args) is False
    assert serve_direct(["--lambda", "--port", "9000"]) is False


def test_both_paths_serve_with_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a settings file, an environment variable and flags that override both
    config = tmp_path / "conf.toml"
    config.write_text('store_url = "file:///from/file"\nthreads = 3\nmax_batch_size = 8\nhost = "10.0.0.1"\n')
    monkeypatch.setenv("MODELFN_MAX_BATCH_DELAY_MS", "7.5")
    monkeypatch.setenv("MODELFN_MODEL_NAME", "from-env")
    argument_lists = [
        ["--config", str(config)],
        ["--config", str(config), "--model", "iris", "--trust", "a.pub", "--trust", "b.pub", "--port", "8099"],
        [f"--config={config}", "--threads", "2", "--max-batch-delay-ms", "2.5", "--no-custom-code", "--host", "::1"],
        ["--store", "s3://b/models", "--version", "latest", "--allow-custom-code", "--output", "s3://b/out"],
    ]
    served: list[Settings] = []
    # (the server itself is replaced by a recorder: this test is about what it is started with)
    monkeypatch.setattr(modelfn.container, "run_server", served.append)
    direct: list[Settings] = []
    for args in argument_lists:
        # WHEN `modelfn serve ARGS` starts through the console script's direct path and through typer
        assert serve_direct(args) is True
        app(["serve", *args], standalone_mode=False)
        # THEN the server gets equal settings both ways
        assert served[-2] == served[-1]
        direct.append(served[-2])
    assert direct[1].trusted_keys == ("a.pub", "b.pub") and direct[1].threads == 3 and direct[1].port == 8099
    assert direct[2].max_batch_delay_ms == 2.5 and direct[0].max_batch_delay_ms == 7.5
    assert direct[0].model_name == "from-env" and direct[3].store_url == "s3://b/models"


def test_the_console_script_exits_2_with_the_error_line(tmp_path: Path) -> None:
    # GIVEN a store without the model and no load retries
    args = ["serve", "--store", str(tmp_path / "store"), "--model", "absent", "--host", "127.0.0.1"]
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stdout.write(repr(sorted(m for m in sys.modules"
        " if m.partition('.')[0] in ('typer', 'rich', 'pydantic') or m == 'modelfn.cli'))))\n"
        "from modelfn._entry import main\n"
        "main()\n"
    )
    # WHEN the console script serves it
    done = subprocess.run(
        [sys.executable, "-c", code, *args, "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "MODELFN_LOAD_RETRIES": "0", "HOME": str(tmp_path)},
    )
    # THEN it exits 2 with the error line the typer path prints, not a traceback
    assert done.returncode == 2, done.stderr
    assert "error: " in done.stderr and "absent" in done.stderr
    assert "Traceback" not in done.stderr
    # AND it never imported typer, rich, pydantic or modelfn.cli
    assert done.stdout == "[]"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(url: str, body: bytes | None = None) -> tuple[int, bytes] | None:
    """(status, body), or None while nothing answers."""
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.mark.slow
def test_the_console_script_serves_what_the_app_serves(local_published: Published, tmp_path: Path) -> None:
    # GIVEN a signed model, and the answer the ASGI app gives for a request in-process
    body = b'{"instances": [[1, 2, 3, 4], [0.5, 0, -1, 2]]}'
    client = SyncASGIClient(create_app(ModelState.load(local_published.settings)))
    try:
        expected = client.post("/predict", content=body, headers={"content-type": "application/json"})
    finally:
        client.close()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = local_published.settings
    args = ["serve", "--store", settings.store_url, "--model", local_published.name, "--threads", "1"]
    args += ["--trust", settings.trusted_keys[0], "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "serve.log").open("wb")
    # WHEN the console script serves it with plain options (the direct path)
    proc = subprocess.Popen([*ENTRY, *args], stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        answer = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            answer = _http(base + "/predict", body)
            if answer is not None and answer[0] == 200:
                break
            time.sleep(0.05)
        # THEN it answers exactly what the app answers
        assert answer is not None and answer[0] == 200, (tmp_path / "serve.log").read_text()
        assert json.loads(answer[1]) == expected.json()
        # AND /metrics counts what happened before the Prometheus registry existed: the load, the request
        metrics = _http(base + "/metrics")
        assert metrics is not None and metrics[0] == 200
        text = metrics[1].decode()
        assert "LoadSessionTime_count 1.0" in text
        assert "InferenceLatency_count" in text and "InferenceLatency_count 0.0" not in text
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
