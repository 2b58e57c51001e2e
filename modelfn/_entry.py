"""Console-script entry: explain a missing ``cli`` extra instead of failing with an ImportError.

The base install is the slim run-time set a function needs; the CLI's own libraries (typer, rich,
uvicorn) come with ``modelfn[cli]`` and with every framework extra.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the CLI, or say which extra to install."""
    try:
        from modelfn.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if exc.name in ("typer", "rich", "click"):
            sys.stderr.write(f"modelfn: the command line needs {exc.name}: pip install 'modelfn[cli]'\n")
            raise SystemExit(2) from exc
        raise
    cli_main()
