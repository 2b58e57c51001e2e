"""Run a command straight from plain ``--option value`` arguments, without typer's parse.

typer (0.29) coerces every parameter through a pydantic ``TypeAdapter``: importing pydantic and
building the adapters costs ~110 ms of CPU before ``modelfn serve`` starts loading its model, and
importing typer, click, rich and ``modelfn.cli`` at all costs ~35 ms more. A container starts
``modelfn serve --port 8080`` and the like, so the console script (``modelfn._entry``) reads those
plain argument lists with ``SERVE_OPTIONS`` and starts the server without importing any of them;
``modelfn.cli.main`` does the same for any command through ``call_direct``. Anything else
(``--help``, a positional, a short or unknown flag, a value that does not convert, ``--lambda``)
goes to typer, with its own messages. tests/test_cli_direct.py checks that the table matches
``modelfn.cli.serve``'s options and that both paths build the same settings.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelfn.config import Settings

OptionTable = dict[str, tuple[str, Any]]
"""``--flag`` -> (parameter, kind): a type from ``_SCALARS``, ``list`` (repeatable str) or a bool constant."""

_SCALARS: dict[Any, Callable[[str], Any]] = {str: str, int: int, float: float, Path: Path}
_NUMBER = {int: re.compile(r"\d+"), float: re.compile(r"\d+(\.\d*)?([eE][-+]?\d+)?")}
"""Numbers as plainly written; anything looser ("1_000", "inf") is left to typer's own rules."""

SERVE_OPTIONS: OptionTable = {
    "--model": ("model", str),
    "--store": ("store", str),
    "--version": ("version", str),
    "--trust": ("trust", list),
    "--host": ("host", str),
    "--port": ("port", int),
    "--threads": ("threads", int),
    "--max-batch-size": ("max_batch_size", int),
    "--max-batch-delay-ms": ("max_batch_delay_ms", float),
    "--allow-custom-code": ("allow_custom_code", True),
    "--no-custom-code": ("allow_custom_code", False),
    "--lambda": ("lambda_rie", True),
    "--handler": ("handler", str),
    "--output": ("output", str),
    "--config": ("config", Path),
}
"""``modelfn serve``'s long options, written out so the console script need not import typer to read them."""

_SERVE_SETTINGS = {
    "model": "model_name",
    "store": "store_url",
    "version": "model_version",
    "host": "host",
    "port": "port",
    "threads": "threads",
    "allow_custom_code": "allow_custom_code",
    "output": "output_url",
    "max_batch_size": "max_batch_size",
    "max_batch_delay_ms": "max_batch_delay_ms",
}
"""serve parameter -> Settings field, as ``modelfn.cli.serve`` passes them to ``load_settings``."""


def parse_options(table: OptionTable, args: list[str]) -> dict[str, Any] | None:
    """The keyword arguments typer would pass for ``args``, or None when they are not plain long options."""
    kwargs: dict[str, Any] = {}
    rest = list(args)
    while rest:
        token = rest.pop(0)
        flag, eq, value = token.partition("=")
        if not flag.startswith("--") or flag not in table:
            return None
        name, kind = table[flag]
        if isinstance(kind, bool):
            if eq:
                return None
            kwargs[name] = kind
            continue
        if not eq:
            if not rest or rest[0].startswith("-"):
                return None
            value = rest.pop(0)
        if kind is list:
            kwargs.setdefault(name, []).append(value)
            continue
        if kind in _NUMBER and not _NUMBER[kind].fullmatch(value):
            return None
        kwargs[name] = _SCALARS[kind](value)
    return kwargs


def option_table(func: Callable[..., Any]) -> OptionTable | None:
    """``func``'s typer options as a table, or None when a parameter is not a plain option (imports typer)."""
    from typer.models import OptionInfo

    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except (NameError, TypeError):
        return None
    table: OptionTable = {}
    for name, hint in hints.items():
        if name == "return":
            continue
        info = next((m for m in typing.get_args(hint)[1:] if isinstance(m, OptionInfo)), None)
        if typing.get_origin(hint) is not typing.Annotated or info is None or info.envvar:
            return None
        base = _plain_type(typing.get_args(hint)[0])
        # in an Annotated option the first declaration sits in ``default`` (typer.Option("--model", "-m"))
        first = [info.default] if isinstance(info.default, str) else []
        decls = [d for d in [*first, *(info.param_decls or ())] if d.startswith("-")] or [f"--{name.replace('_', '-')}"]
        for decl in decls:
            on, _, off = decl.partition("/")
            if base is bool:
                table[on] = (name, True)
                if off:
                    table[off] = (name, False)
            elif typing.get_origin(base) is list and typing.get_args(base)[0] is str:
                table[on] = (name, list)
            elif base in _SCALARS:
                table[on] = (name, base)
            else:
                return None
    return table


def _plain_type(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged (a union of two real types stays a union: not handled)."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        kinds = [t for t in typing.get_args(annotation) if t is not type(None)]
        return kinds[0] if len(kinds) == 1 else annotation
    return annotation


def direct_kwargs(func: Callable[..., Any], args: list[str]) -> dict[str, Any] | None:
    """The keyword arguments typer would pass ``func`` for ``args``, or None to leave the parse to typer."""
    table = option_table(func)
    return None if table is None else parse_options(table, args)


def call_direct(commands: dict[str, Callable[..., Any]], argv: list[str]) -> bool:
    """Run ``argv[0]``'s command directly when its arguments are plain options; False when typer should parse."""
    import typer

    if not argv or argv[0] not in commands:
        return False
    kwargs = direct_kwargs(commands[argv[0]], argv[1:])
    if kwargs is None:
        return False
    try:
        commands[argv[0]](**kwargs)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    return True


def serve_settings(kwargs: Mapping[str, Any]) -> Settings:
    """The settings ``modelfn.cli.serve`` builds from these parameters (flags, then MODELFN_*, then the file)."""
    from modelfn.config import Settings

    explicit: dict[str, Any] = {field: kwargs.get(param) for param, field in _SERVE_SETTINGS.items()}
    if kwargs.get("trust"):
        explicit["trusted_keys"] = tuple(kwargs["trust"])
    config = kwargs.get("config")
    return Settings.load(config_file=str(config) if config else None, **explicit)


def serve_direct(args: list[str]) -> bool:
    """``modelfn serve ARGS`` in the container without typer; False (nothing done) when typer should parse.

    A load that gives up, or bad settings, print ``error: …`` on stderr and exit 2, as the typer path does.
    """
    kwargs = parse_options(SERVE_OPTIONS, args)
    if kwargs is None or kwargs.get("lambda_rie"):
        return False
    from modelfn.errors import ModelfnError

    try:
        settings = serve_settings(kwargs)
        from modelfn.container import run_server

        run_server(settings)
    except ModelfnError as exc:
        _print_error(f"error: {exc.message}")
        raise SystemExit(2) from None
    return True


def _print_error(text: str) -> None:
    """As ``typer.secho(text, err=True, fg="red")``: red on a terminal, plain text otherwise."""
    stream = sys.stderr
    stream.write(f"\x1b[31m{text}\x1b[0m\n" if stream.isatty() else f"{text}\n")
    stream.flush()
