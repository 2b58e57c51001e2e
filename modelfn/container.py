"""The container entry point: the same ASGI app as Lambda, served by uvicorn, with failed-node removal.

Used by ``modelfn serve`` and by the CPU/CUDA container images (Knative, Cloud Run, K8s). The
socket opens at once and the model loads in the background, so a slow or stalled store leaves the
process up and answering: liveness 200, readiness 503 + Retry-After. Failed loads are retried with
bounded, jittered exponential backoff (``load_retries``, ``load_backoff_s``; each attempt bounded
by ``load_timeout_s``); when the retries run out the server shuts down and the process exits
non-zero, so the platform replaces the node instead of keeping one that can never serve
(SECURITY.md rules 20, 28). A verified model, once loaded, is never replaced.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelfn.errors import ModelfnError, ModelNotReady, StoreError
from modelfn.gc_pause import collections_paused
from modelfn.serving.metrics import METRICS, MODEL_LOAD_FAILED, Metrics

if TYPE_CHECKING:
    import uvicorn

    from modelfn.config import Settings
    from modelfn.loader import LoadedBundle
    from modelfn.serving.state import ModelState

logger = logging.getLogger("modelfn.container")

MAX_BACKOFF_S = 60.0
"""No single wait between attempts is longer than this, whatever ``load_backoff_s`` doubles to."""


def backoff_delays(settings: Settings, rng: random.Random | None = None) -> list[float]:
    """The wait before each retry: ``load_backoff_s * 2**k`` capped at ``MAX_BACKOFF_S``, times 50-100 % jitter.

    Jitter keeps a fleet of replicas that failed together from hammering the store together; the
    lower bound keeps the total budget predictable (at least half the nominal sum).
    """
    rng = rng or random.Random()
    return [
        min(MAX_BACKOFF_S, settings.load_backoff_s * 2**k) * rng.uniform(0.5, 1.0) for k in range(settings.load_retries)
    ]


class LoadSupervisor:
    """Loads the configured model into ``state`` in a background thread, retrying until it loads or gives up."""

    def __init__(
        self,
        state: ModelState,
        *,
        on_give_up: Callable[[ModelfnError], None],
        metrics: Metrics = METRICS,
        rng: random.Random | None = None,
    ) -> None:
        self.state = state
        self.on_give_up = on_give_up
        self.metrics = metrics
        self.delays = backoff_delays(state.settings, rng)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="modelfn-load-supervisor", daemon=True)

    def start(self) -> None:
        """Begin loading in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Cut a pending backoff short (the process is shutting down); no further attempt starts."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the supervisor to finish (tests and orderly shutdown)."""
        self._thread.join(timeout)

    def run(self) -> None:
        """Attempt, wait, attempt …; ``on_give_up`` with the last failure once every attempt failed."""
        settings = self.state.settings
        total = len(self.delays) + 1
        for attempt in range(1, total + 1):
            outcome = self._attempt()
            delay = self.delays[attempt - 1] if attempt < total else None
            self.state.record(outcome, retry_in_s=delay)
            if not isinstance(outcome, ModelfnError):
                return
            if delay is None:
                break
            logger.warning(
                "load attempt %d/%d of model %s failed (%s); retrying in %.1f s",
                attempt, total, settings.model_name, outcome.code, delay,
            )  # fmt: skip
            if self._stop.wait(delay):
                return
        failure = self.state.failure or ModelNotReady("model did not load")
        logger.error(
            "model %s did not load after %d attempts (last: %s); giving up so the platform replaces this node",
            settings.model_name, total, failure.code,
        )  # fmt: skip
        if not self._stop.is_set():
            self.on_give_up(failure)

    def _attempt(self) -> LoadedBundle | ModelfnError:
        """One load in its own daemon thread, abandoned (and counted failed) after ``load_timeout_s``."""
        from modelfn.serving.state import attempt_load

        settings = self.state.settings
        box: list[LoadedBundle | ModelfnError] = []
        worker = threading.Thread(
            target=lambda: box.append(attempt_load(settings, metrics=self.metrics)), name="modelfn-load", daemon=True
        )
        worker.start()
        worker.join(settings.load_timeout_s)
        if box:
            return box[0]
        self.metrics.add(MODEL_LOAD_FAILED)
        logger.error("loading model %s took over %.1f s (load_timeout_s)", settings.model_name, settings.load_timeout_s)
        return StoreError(
            f"loading did not finish within {settings.load_timeout_s:g} s (load_timeout_s)", field="load_timeout_s"
        )


def run_server(settings: Settings) -> None:
    """Serve at once, load (verify first) in the background; raise ``ModelNotReady`` if the load gave up.

    The load starts before uvicorn and the app are imported, so the store round trips, the signature
    check and the runtime's session overlap the server's own start (the first 200 waits on both).
    """
    from modelfn.serving.state import ModelState

    servers: list[uvicorn.Server] = []
    gave_up: list[ModelfnError] = []

    def give_up(failure: ModelfnError) -> None:
        gave_up.append(failure)
        for server in servers:
            server.should_exit = True

    # The imports' objects live as long as the process: frozen, later collections never rescan them
    # (200k request-sized allocations after the start: 80 -> 45 ms of CPU; re-enabling alone cost
    # +30 ms on the first requests). The price: the few hundred unreachable objects they left.
    with collections_paused(keep_frozen=True):
        _quiet_blas_spin()
        state = ModelState.pending(settings, batching=True)  # adaptive batching when max_batch_size > 1
        _defer_prometheus()  # before the load, so its phase timings and failures are counted
        supervisor = LoadSupervisor(state, on_give_up=give_up)
        supervisor.start()
        _join_runtime_import()
        import uvicorn

        from modelfn.serving import batching  # noqa: F401  (ModelState.record imports it once the session is built)
        from modelfn.serving.asgi import create_app

        loop, http = server_stack()
        # Per-request access lines only at DEBUG: platforms (Knative, Cloud Run, ALB) log requests themselves,
        # and writing one line per call costs more than the inference of a small model.
        config = uvicorn.Config(
            create_app(state),
            host=settings.host,
            port=settings.port,
            loop=loop,
            http=http,
            log_level=settings.log_level.lower(),
            access_log=settings.log_level.upper() == "DEBUG",
        )
        config.load()  # the protocol and loop imports uvicorn would make on start
        server = uvicorn.Server(config)
    servers.append(server)
    if gave_up:  # the load gave up before the server existed
        server.should_exit = True
    try:
        server.run()
    finally:
        supervisor.stop()
        state.close()
    if gave_up:
        raise ModelNotReady(
            f"model {settings.model_name or '(unset)'} did not load after {state.attempts} attempt(s)"
            f" (last: {gave_up[0].code}: {gave_up[0].message}); exiting so the platform replaces this node",
            field="model",
        )


BLAS_SPIN_ENV = "OPENBLAS_THREAD_TIMEOUT"
"""OpenBLAS: how long (2**N cycles, 4..30, default 28) an idle BLAS thread busy-waits before it sleeps."""


def _quiet_blas_spin() -> None:
    """Stop numpy's OpenBLAS threads spinning while the model loads, unless the operator set it already.

    They start when numpy is imported (under onnxruntime) and busy-wait ~2**28 cycles for work that
    never comes: measured, numpy + onnxruntime import in 141 ms of CPU instead of 72, the rest burned
    on the second core the load and the server need. With the shortest wait, BLAS keeps its threads
    (a custom-code model's matmuls still run in parallel); they sleep between calls instead of spinning.
    The ONNX serving path makes no BLAS call. Only effective before numpy is first imported.
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault(BLAS_SPIN_ENV, "4")


def _join_runtime_import() -> None:
    """Let the load's onnxruntime import (~120 ms of CPU, local) finish before the server's own imports start.

    Both hold the GIL: interleaved, they delay the runtime's session, which then runs alone. In this
    order the server's imports (uvicorn, the app) overlap the session build, which releases the GIL.
    The wait is bounded by the import (no store call), so a stalled store still leaves the server up.
    The ONNX session wrapper the load imports after its fetch is imported here too, off its path.
    """
    try:
        import onnxruntime  # noqa: F401  (joins the loader's background import; the loader reports failures)

        from modelfn.runtime import onnx_session  # noqa: F401
    except Exception:
        logger.debug("onnxruntime did not import here; the load reports why", exc_info=True)


def server_stack() -> tuple[str, str]:
    """uvicorn's event loop and HTTP parser: uvloop + httptools when installed (the ``cli`` extra), else asyncio + h11.

    Measured on the RF (8 alternating fresh servers): warm p50 1.03 -> 0.87 ms with uvloop + httptools.
    """
    from importlib.util import find_spec

    return ("uvloop" if find_spec("uvloop") else "asyncio"), ("httptools" if find_spec("httptools") else "h11")


def _defer_prometheus() -> None:
    """Record metrics for ``/metrics`` from the start, building the registry later (its import is ~27 ms).

    Without prometheus-client the route is a JSON 404.
    """
    from modelfn.serving.observability_prometheus import defer

    if not defer():
        logger.info("prometheus-client is not installed: /metrics answers 404")
