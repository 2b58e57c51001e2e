"""Console-script entry: ``modelfn serve`` with plain options starts at once; the rest goes to the typer CLI.

A container starts ``modelfn serve --port 8080`` and the like, and every millisecond before the
model starts loading is cold start: those argument lists are read by ``modelfn.commands._direct``
and the server starts without importing typer, click, rich or ``modelfn.cli`` (~35 ms of CPU).
Anything else (other commands, ``--help``, short flags, ``--lambda``) runs the typer CLI.

The base install is the slim run-time set a function needs; the CLI's own libraries (typer, rich,
uvicorn) come with ``modelfn[cli]`` and with every framework extra: a missing one is named, not
thrown as an ImportError.
"""

from __future__ import annotations

import sys

CLI_LIBRARIES = ("typer", "rich", "click", "uvicorn")
"""What ``modelfn[cli]`` brings; a missing one gets the install hint."""


def main() -> None:
    """Serve directly, or run the CLI, or say which extra to install."""
    args = sys.argv[1:]
    try:
        if args[:1] == ["serve"]:
            from modelfn.commands._direct import serve_direct

            if serve_direct(args[1:]):
                return
        from modelfn.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if exc.name in CLI_LIBRARIES:
            sys.stderr.write(f"modelfn: the command line needs {exc.name}: pip install 'modelfn[cli]'\n")
            raise SystemExit(2) from exc
        raise
    cli_main()
