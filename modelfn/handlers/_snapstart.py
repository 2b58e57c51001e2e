"""Lambda SnapStart runtime hooks: snapshot a verified, warmed model; give every restore its own randomness and clients.

SnapStart (Python 3.12+ managed runtimes) runs the init phase once when a version is published,
snapshots the memory, and resumes every new execution environment from that snapshot. The hooks
come from AWS's ``snapshot_restore_py``, which the runtime (awslambdaric) calls with
``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``: before-snapshot hooks last-registered first,
after-restore hooks in registration order
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html).

- Before the snapshot: the model must be loaded and verified (one more attempt if the import-time
  load failed), else the hook raises and the runtime fails the publish: a snapshot that could only
  ever answer 503 is never taken. Then one warm-up run, so lazily built buffers are in the snapshot.
- After each restore: re-seed ``random`` and numpy's global generator from the OS (every restored
  environment would otherwise draw the same numbers), then drop cached clients (the boto3 default
  session; callbacks added with ``on_restore``) since connections made during init may be dead.

Outside SnapStart the hooks are registered and never run. Without ``snapshot_restore_py``
installed, ``register`` does nothing.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelfn.serving.state import ModelState

logger = logging.getLogger("modelfn.snapstart")

_restore_callbacks: list[Callable[[], None]] = []


def on_restore(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` after every restore, after the built-in reset (use it to drop a cached client)."""
    _restore_callbacks.append(callback)
    return callback


def register(state: ModelState) -> bool:
    """Register the hooks for ``state``; False where ``snapshot_restore_py`` is not installed."""
    try:
        from snapshot_restore_py import (  # type: ignore[import-untyped]  # untyped 4 KB module
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return False
    register_before_snapshot(before_snapshot, state)
    register_after_restore(after_restore)
    return True


def before_snapshot(state: ModelState) -> None:
    """Make sure the snapshot holds a verified, warmed model; raise ``ModelNotReady`` (publish fails) if not."""
    if not state.ready:
        from modelfn.serving.state import attempt_load

        state.record(attempt_load(state.settings))
    bundle = state.require()
    bundle.model.warm_up()
    logger.info("snapshot: %s v%s verified and warmed (%s)", bundle.manifest.name, bundle.manifest.version,
                bundle.root_digest)  # fmt: skip


def after_restore() -> None:
    """Fresh random state, then fresh clients, then the registered callbacks (in registration order)."""
    reseed()
    reopen_clients()
    for callback in list(_restore_callbacks):
        callback()
    logger.info("restore: random state re-seeded, %d client reset(s) run", len(_restore_callbacks))


def reseed() -> None:
    """Re-seed ``random`` and numpy's legacy global generator from ``os.urandom``."""
    random.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def reopen_clients() -> None:
    """Forget the boto3 default session, so the next client resolves credentials and connects afresh."""
    if "boto3" in sys.modules:  # never import boto3 just to reset it
        import boto3

        boto3.DEFAULT_SESSION = None
