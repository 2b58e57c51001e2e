"""The real Lambda Runtime Interface Emulator (aws-lambda-rie + awslambdaric) around one modelfn handler.

A thin test-facing shape over ``modelfn.emulate.lambda_rie.LambdaEmulator`` (what ``modelfn serve
--lambda`` runs): it starts ``python -m awslambdaric <handler>`` exactly as the Lambda Python runtime
does, the module import (init phase) verifies and loads the model from the store named by
``MODELFN_*`` variables, and each invocation goes through the handler. Both addresses are 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

from modelfn.emulate.lambda_rie import HANDLERS, LambdaEmulator

HTTP_HANDLER = HANDLERS["http"]


class Emulator(LambdaEmulator):
    """A running aws-lambda-rie process with one modelfn handler (the HTTP handler by default), logging to ``log``."""

    def __init__(self, env: dict[str, str], log: Path, handler: str = HTTP_HANDLER) -> None:
        self._log = log.open("wb")
        try:
            super().__init__(handler, env=env, log=self._log)
        except Exception:
            self._log.close()
            raise

    def stop(self) -> None:
        """Terminate the emulator (and the runtime it started) and close the log."""
        super().stop()
        self._log.close()
