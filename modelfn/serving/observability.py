"""Lambda observability: Powertools Logger (JSON), Metrics (CloudWatch EMF) and Tracer (X-Ray), quiet off Lambda.

Serving code only calls ``METRICS.add``/``METRICS.timed``; this module decides, once per process,
where that goes on Lambda. EMF lines go to stdout under namespace ``POWERTOOLS_METRICS_NAMESPACE``
(default ``modelfn``) with dimension ``service`` = ``POWERTOOLS_SERVICE_NAME`` (the SAM template
sets the stack name: its canary alarms watch ``UnexpectedErrors`` and ``ModelLoadFailed`` there).
Outside Lambda (no ``AWS_LAMBDA_FUNCTION_NAME``) nothing is printed unless ``MODELFN_EMF_METRICS=on``.
Tracing is optional: X-Ray subsegments (fetch, verify, session, infer) only when ``aws_xray_sdk``
is importable, the process runs on Lambda and ``POWERTOOLS_TRACE_DISABLED`` is not true. It is no
dependency of modelfn: importing it costs ~300 ms of cold start (bench/bench_imports.py).
The platform's variables are read here, as Powertools itself reads them; modelfn's own live in config.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modelfn.errors import ModelfnError
from modelfn.serving.metrics import COLD_START, METRICS, Metrics, error_metric

if TYPE_CHECKING:
    from modelfn.config import Settings
    from modelfn.serving.state import ModelState

LAMBDA_MARKER = "AWS_LAMBDA_FUNCTION_NAME"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"
TRACE_DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"
DEFAULT_NAMESPACE = "modelfn"
Handler = Callable[[Any, Any], Any]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class LambdaObservability:
    """Built at INIT before the model loads (so load timings and failures count); wraps the handler."""

    def __init__(
        self, settings: Settings, *, environ: Mapping[str, str] | None = None, metrics: Metrics = METRICS
    ) -> None:
        env = os.environ if environ is None else environ
        in_lambda = LAMBDA_MARKER in env
        self.metrics = metrics
        self.cold_start = True
        self.model: dict[str, Any] = {}
        self.emf: Any = None
        self.logger: Any = None
        self.tracing = False
        if settings.emf_metrics == "on" or (settings.emf_metrics == "auto" and in_lambda):
            from aws_lambda_powertools.metrics import Metrics as EmfMetrics

            self.emf = EmfMetrics(namespace=env.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE, service=env.get(SERVICE_ENV))
            metrics.add_sink(self._to_emf)
        if in_lambda:
            self.logger = _structured_logger(settings, env.get(SERVICE_ENV))
            self.tracing = _enable_tracing(env, metrics)

    def _to_emf(self, name: str, value: float, unit: str) -> None:
        self.emf.add_metric(name=name, unit=unit, value=value)

    def serve(self, state: ModelState) -> None:
        """Note the served model's identity (name, version, root digest) for every log line and EMF blob."""
        if state.bundle is not None:
            health = state.bundle.health()
            self.model = {
                "model_name": health["name"],
                "model_version": health["version"],
                "root_digest": health["root_digest"],
            }
        else:
            self.model = {"model_name": state.settings.model_name, "model_ready": False}
        if self.logger is not None:
            self.logger.append_keys(**self.model)

    def wrap(self, handler: Handler) -> InstrumentedHandler:
        """The handler with cold-start, request-id, error counts and one EMF flush per invocation."""
        return InstrumentedHandler(self, handler)

    def begin(self, context: Any) -> None:
        """Start of one invocation: cold-start flag and request id."""
        cold, self.cold_start = self.cold_start, False
        if cold:
            self.metrics.add(COLD_START)
        if self.logger is not None:
            self.logger.append_keys(request_id=getattr(context, "aws_request_id", None), cold_start=cold)

    def flush(self) -> None:
        """Print the invocation's metrics as one EMF line (nothing when EMF is off or nothing was recorded)."""
        if self.emf is None or not self.emf.metric_set:
            return
        for key, value in self.model.items():
            self.emf.add_metadata(key=key, value=value)
        self.emf.flush_metrics()


class InstrumentedHandler:
    """Calls the wrapped handler inside ``begin``/``flush``; other attributes (read or set) are the wrapped one's."""

    _OWN = frozenset({"observability", "wrapped"})

    def __init__(self, observability: LambdaObservability, handler: Handler) -> None:
        self.observability = observability
        self.wrapped = handler

    def __call__(self, event: Any, context: Any) -> Any:
        self.observability.begin(context)
        try:
            return self.wrapped(event, context)
        except ModelfnError as exc:
            self.observability.metrics.add(error_metric(exc.code))
            raise
        finally:
            self.observability.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.wrapped, name, value)


def _structured_logger(settings: Settings, service: str | None) -> Any:
    """A Powertools JSON logger that modelfn's own loggers (``modelfn.*``) write through."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    logger = Logger(service=service, level=settings.log_level.upper())
    logging.getLogger("modelfn")
    copy_config_to_registered_loggers(source_logger=logger, include={"modelfn"})
    return logger


def _enable_tracing(env: Mapping[str, str], metrics: Metrics) -> bool:
    """X-Ray subsegments around the timed phases, only when the SDK is there and tracing is not disabled."""
    if _truthy(env.get(TRACE_DISABLED_ENV)) or importlib.util.find_spec("aws_xray_sdk") is None:
        return False
    from aws_lambda_powertools import Tracer

    tracer = Tracer(auto_patch=False)  # our own phases only: patching botocore & co. would trace every S3 call
    metrics.span_factory = tracer.provider.in_subsegment
    return True
