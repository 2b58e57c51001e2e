"""AWS Lambda handler for an existing WSGI app (a Flask "Keras REST API" app, say) via serverless-wsgi.

The app named by ``MODELFN_WSGI_APP`` (``module:attribute``) is imported once, at import: Lambda's
INIT phase, so a model the app loads with ``modelfn.load`` is verified and warmed before the first
request. When that import fails (a bundle that fails verification, an unreachable store) every
request gets 503 + Retry-After and the metric ``ModelLoadFailed`` is recorded: an unverified model
is never served. A ``MODELFN_WSGI_APP`` that names no importable app fails the init loudly instead.

Around the app: bodies over ``max_body_bytes`` get 413, a request with too little of the Lambda
deadline left gets 503 (never a gateway 504), and modelfn errors raised while handling a request (bad
input to ``Predictor.predict``) become modelfn's JSON error with their 4xx status, not the
framework's 500. serverless-wsgi translates API Gateway REST/HTTP API, Function URL and ALB events.
"""

from __future__ import annotations

import http
import importlib
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import serverless_wsgi  # type: ignore[import-untyped]

from modelfn.config import ENV_NAMES, Settings
from modelfn.errors import ConfigError, ModelfnError, ModelNotReady, PayloadTooLarge
from modelfn.serving.metrics import METRICS, MODEL_LOAD_FAILED, error_metric
from modelfn.serving.observability import LambdaObservability
from modelfn.serving.routes import DEFAULT_DEADLINE_MARGIN_MS, check_deadline

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("modelfn.handlers.wsgi")

DEFAULT_RETRY_AFTER_S = 5


def load_app(settings: Settings) -> WSGIApplication:
    """The configured app wrapped for serving, or a not-ready app when importing it failed."""
    if not settings.wsgi_app:
        raise ConfigError(
            f"no WSGI app configured: set {ENV_NAMES['wsgi_app']} to 'module:attribute' (e.g. app:app)",
            field="wsgi_app",
        )
    module_name, _, attr_path = settings.wsgi_app.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError(
                f"{ENV_NAMES['wsgi_app']}: no module named {exc.name!r} on the path", field="wsgi_app"
            ) from exc
        return not_ready_app(_load_failure(exc, settings.wsgi_app))
    except Exception as exc:  # the app's own import (and its model load) failed: serve 503, never a stale model
        return not_ready_app(_load_failure(exc, settings.wsgi_app))
    app: Any = module
    for part in attr_path.split("."):
        if not hasattr(app, part):
            raise ConfigError(f"{ENV_NAMES['wsgi_app']}: module {module_name!r} has no {attr_path!r}", field="wsgi_app")
        app = getattr(app, part)
    if not callable(app):
        raise ConfigError(f"{ENV_NAMES['wsgi_app']}: {settings.wsgi_app} is not a WSGI app", field="wsgi_app")
    _register_flask_error_handler(app)
    return guard(app, max_body_bytes=settings.max_body_bytes)


def _load_failure(exc: Exception, spec: str) -> ModelfnError:
    """Log and count a failed app import; the error whose code the 503 names."""
    METRICS.add(MODEL_LOAD_FAILED)
    if isinstance(exc, ModelfnError):
        logger.error("WSGI app %s not loaded (%s): %s", spec, exc.code, exc.message)
        return exc
    logger.error("WSGI app %s not loaded: unexpected error", spec, exc_info=exc)
    return ModelfnError(f"unexpected {type(exc).__name__} while loading")


def not_ready_app(failure: ModelfnError) -> WSGIApplication:
    """Answers every request 503 + Retry-After naming why (by error code only, no internals)."""
    error = ModelNotReady(f"the model is not ready ({failure.code})", field="model")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return _send_error(error, start_response)

    return app


def guard(app: WSGIApplication, *, max_body_bytes: int) -> WSGIApplication:
    """413 above ``max_body_bytes``, 503 when the Lambda deadline is too close; modelfn errors from ``app`` as JSON."""

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or "0"
        try:
            if length.isdigit() and int(length) > max_body_bytes:
                raise PayloadTooLarge(
                    f"the body is {length} bytes, over the {max_body_bytes} byte limit", field="max_body_bytes"
                )
            check_deadline(environ.get("serverless.context"), DEFAULT_DEADLINE_MARGIN_MS)
            return app(environ, start_response)
        except ModelfnError as exc:
            return _send_error(exc, start_response)

    return guarded


def error_body(exc: ModelfnError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, JSON body (modelfn's ``{error, code, field}`` plus ``success: false``) and headers."""
    headers = {"Content-Type": "application/json"}
    if exc.status_code == 503:
        headers["Retry-After"] = str(getattr(exc, "retry_after_s", DEFAULT_RETRY_AFTER_S))
    body: dict[str, Any] = {"success": False, **exc.to_dict()}
    return exc.status_code, body, headers


def _send_error(exc: ModelfnError, start_response: StartResponse) -> list[bytes]:
    METRICS.add(error_metric(exc.code))
    status, body, headers = error_body(exc)
    data = json.dumps(body).encode()
    phrase = http.HTTPStatus(status).phrase
    start_response(f"{status} {phrase}", [*headers.items(), ("Content-Length", str(len(data)))])
    return [data]


def _register_flask_error_handler(app: Any) -> None:
    """Flask turns exceptions from views into 500s: map modelfn errors first, unless the app already does."""
    register = getattr(app, "register_error_handler", None)
    spec = getattr(app, "error_handler_spec", None)
    if register is None or not isinstance(spec, dict):
        return
    if ModelfnError in spec.get(None, {}).get(None, {}):
        return
    register(ModelfnError, _flask_error)


def _flask_error(exc: ModelfnError) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A Flask error handler's ``(body, status, headers)``."""
    status, body, headers = error_body(exc)
    return body, status, headers


settings = Settings.load()
observability = LambdaObservability(settings)  # before the app's import: a failed load is a metric
app = load_app(settings)


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One request through serverless-wsgi."""
    response: dict[str, Any] = serverless_wsgi.handle_request(app, event, context)
    return response


handler = observability.wrap(handle)
"""Lambda entry point: ``modelfn.handlers.wsgi.handler``."""
