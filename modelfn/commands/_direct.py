"""Call a command function straight from plain ``--option value`` arguments, without typer's parse.

typer (0.29) coerces every parameter through a pydantic ``TypeAdapter``: importing pydantic and
building the adapters costs ~110 ms of CPU before ``modelfn serve`` starts loading its model, a
quarter of its cold start (bench/seed_systems). A container starts ``modelfn serve --port 8080``
and the like, so for those plain argument lists the function is called directly with the same
values typer would pass. Anything else (``--help``, a positional, a short or unknown flag, a value
that does not convert, an option read from an environment variable) returns ``None`` and typer
parses as usual, with its own messages. tests/test_cli_direct.py checks the values match typer's.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.models import OptionInfo

_SCALARS: dict[Any, Callable[[str], Any]] = {str: str, int: int, float: float, Path: Path}
_NUMBER = {int: re.compile(r"\d+"), float: re.compile(r"\d+(\.\d*)?([eE][-+]?\d+)?")}
"""Numbers as plainly written; anything looser ("1_000", "inf") is left to typer's own rules."""


def _option_table(func: Callable[..., Any]) -> dict[str, tuple[str, Any]] | None:
    """``--flag`` -> (parameter, type or a bool constant), or None when a parameter is not a plain option."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except (NameError, TypeError):
        return None
    table: dict[str, tuple[str, Any]] = {}
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
    table = _option_table(func)
    if table is None:
        return None
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


def call_direct(commands: dict[str, Callable[..., Any]], argv: list[str]) -> bool:
    """Run ``argv[0]``'s command directly when its arguments are plain options; False when typer should parse."""
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
