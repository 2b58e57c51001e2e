"""What this process serves: one verified model, or the reason there is none.

Loaded once per process. Lambda loads synchronously at import (``ModelState.load``); a failed
load stays not ready for good. Containers start ``pending`` and a background loader retries
(``modelfn.container``), recording each failure here until it succeeds or gives up. Either way,
while no model is loaded requests get 503 + Retry-After, and an older or unverified model is never
served in its place (SECURITY.md rules 20, 28).
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from modelfn.errors import ModelfnError, ModelNotFound, ModelNotReady
from modelfn.serving.metrics import METRICS, MODEL_LOAD_FAILED, Metrics

if TYPE_CHECKING:
    from modelfn.config import Settings
    from modelfn.loader import LoadedBundle
    from modelfn.serving.batching import Batcher

logger = logging.getLogger("modelfn.serving")


class ModelState:
    """Holds the loaded bundle or the load failure; every route asks it first."""

    def __init__(
        self,
        settings: Settings,
        bundle: LoadedBundle | None = None,
        failure: ModelfnError | None = None,
        *,
        batching: bool = False,
    ) -> None:
        self.settings = settings
        self.batching = batching
        """Container mode: merge concurrent requests per ``settings.max_batch_size`` once a model loads."""
        self.batcher: Batcher | None = None
        """The running batcher, when batching is on and the loaded model allows it."""
        self.bundle = bundle
        self.failure = failure
        self.attempts = 0
        """Load attempts made so far (container mode counts retries here)."""
        self.retry_at: float | None = None
        """``time.monotonic()`` of the next load attempt, while one is scheduled (sets Retry-After)."""

    @classmethod
    def load(cls, settings: Settings, *, metrics: Metrics = METRICS) -> ModelState:
        """Fetch, verify and load the configured model; on failure record not-ready instead of raising."""
        state = cls(settings)
        state.record(attempt_load(settings, metrics=metrics))
        return state

    @classmethod
    def pending(cls, settings: Settings, *, batching: bool = False) -> ModelState:
        """Not ready yet: a background loader will ``record`` each attempt (container mode)."""
        return cls(settings, batching=batching)

    def record(self, outcome: LoadedBundle | ModelfnError, *, retry_in_s: float | None = None) -> None:
        """Keep one attempt's outcome; a loaded model is never replaced by a later one."""
        if self.bundle is None:
            if isinstance(outcome, ModelfnError):
                self.failure = outcome
                self.retry_at = None if retry_in_s is None else time.monotonic() + retry_in_s
            else:
                if self.batching:
                    from modelfn.serving.batching import batched_bundle

                    outcome, self.batcher = batched_bundle(outcome, self.settings)
                self.bundle, self.failure, self.retry_at = outcome, None, None
        self.attempts += 1

    def close(self) -> None:
        """Stop the batcher's worker, if any (server shutdown)."""
        if self.batcher is not None:
            self.batcher.close()

    def retry_after_s(self) -> int:
        """Seconds a client should wait: until the next scheduled attempt, else the default."""
        if self.retry_at is None:
            return ModelNotReady.retry_after_s
        return max(1, math.ceil(self.retry_at - time.monotonic()))

    @property
    def ready(self) -> bool:
        """True once a verified model is loaded."""
        return self.bundle is not None

    @property
    def model_name(self) -> str | None:
        """The served (or configured, while not ready) model name."""
        return self.bundle.manifest.name if self.bundle is not None else self.settings.model_name

    def require(self) -> LoadedBundle:
        """The loaded bundle, or ``ModelNotReady`` naming why (by error code, no internals)."""
        if self.bundle is None:
            reason = self.failure.code if self.failure is not None else "loading"
            error = ModelNotReady(f"model {self.model_name or '(unset)'} is not ready ({reason})", field="model")
            error.retry_after_s = self.retry_after_s()
            raise error
        return self.bundle

    def require_model(self, name: str, version: str | None = None) -> LoadedBundle:
        """The bundle if it is the one named (404 otherwise), or ``ModelNotReady`` while none is loaded."""
        if self.bundle is None and self.settings.model_name is not None and name != self.settings.model_name:
            raise ModelNotFound(f"model {name!r} is not served here", field="model_name")
        bundle = self.require()
        if name != bundle.manifest.name:
            raise ModelNotFound(
                f"model {name!r} is not served here; this server serves {bundle.manifest.name!r}", field="model_name"
            )
        if version is not None and version != str(bundle.manifest.version):
            raise ModelNotFound(
                f"version {version!r} of {name!r} is not served; the served version is {bundle.manifest.version}",
                field="model_version",
            )
        return bundle

    def health(self) -> dict[str, Any]:
        """``{name, version, root_digest, verified_at}`` when ready; the not-ready reason otherwise."""
        if self.bundle is not None:
            return {"ready": True, **self.bundle.health()}
        reason = self.failure.code if self.failure is not None else "loading"
        return {"ready": False, "name": self.settings.model_name, "reason": reason}


def attempt_load(settings: Settings, *, metrics: Metrics = METRICS) -> LoadedBundle | ModelfnError:
    """One fetch → verify → load; a failure is logged, counted (``ModelLoadFailed``) and returned, never raised."""
    from modelfn.loader import load_bundle

    try:
        bundle = load_bundle(settings)
    except ModelfnError as exc:
        logger.error("model %s not loaded (%s): %s", settings.model_name, exc.code, exc.message)
        metrics.add(MODEL_LOAD_FAILED)
        return exc
    except Exception as exc:  # a bug in loading must still leave an honest, not-ready server
        logger.exception("model %s not loaded: unexpected error", settings.model_name)
        metrics.add(MODEL_LOAD_FAILED)
        failure = ModelfnError(f"unexpected {type(exc).__name__} while loading")
        failure.__cause__ = exc
        return failure
    logger.info("serving %s v%s (%s)", bundle.manifest.name, bundle.manifest.version, bundle.root_digest)
    return bundle
