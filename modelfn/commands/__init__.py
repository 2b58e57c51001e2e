"""One module per `modelfn` subcommand that outgrew ``modelfn.cli``; ``cli`` registers each one.

Modules here import only typer and the shared options at module level, so ``modelfn --help``
stays instant; everything else is imported inside the command.
"""
