"""`modelfn serve` with plain options is called without typer's parse, with exactly typer's values.

The direct call exists for cold start (typer 0.29 imports pydantic and builds an adapter per
parameter, ~110 ms of CPU); it must never change what a command receives, and anything it does not
handle plainly goes to typer, which gives the usual errors and help.
"""

from __future__ import annotations

import inspect
import socket
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import typer

from modelfn.cli import serve
from modelfn.commands._direct import direct_kwargs

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
