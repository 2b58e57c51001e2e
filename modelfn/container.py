"""The container entry point: the same ASGI app as Lambda, served by uvicorn.

Used by ``modelfn serve`` and by the CPU/CUDA container images (Knative, Cloud Run, K8s). The
model is verified and loaded before the socket opens; a failed load still starts the server so
readiness probes see 503 and the platform replaces the node (SECURITY.md rule 20).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelfn.config import Settings


def run_server(settings: Settings) -> None:
    """Load (verify first), then serve until interrupted."""
    import uvicorn

    from modelfn.serving.asgi import create_app
    from modelfn.serving.state import ModelState

    state = ModelState.load(settings)
    # Per-request access lines only at DEBUG: platforms (Knative, Cloud Run, ALB) log requests themselves,
    # and writing one line per call costs more than the inference of a small model.
    uvicorn.run(
        create_app(state),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=settings.log_level.upper() == "DEBUG",
    )
