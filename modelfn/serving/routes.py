"""The route table: a path and method to one core function, with no web framework involved.

Matching is a split on ``/`` (no regex, no framework import), so routing costs microseconds and
the lean ASGI app starts in milliseconds. ``DOCS_PATHS`` are the only paths handed to the
lazily built FastAPI app; anything else unknown is a JSON 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from modelfn.errors import DeadlineExceeded, MethodNotAllowed, RouteNotFound
from modelfn.serving import compat_routes, multipart, predict, processed, tensor_body, v2
from modelfn.serving.compat_routes import CompatRouteName
from modelfn.serving.responses import Response
from modelfn.serving.state import ModelState

RouteName = Literal[
    "predict", "server_metadata", "server_live", "server_ready", "model_metadata", "model_ready", "infer", "metrics"
]
Route = tuple[RouteName | CompatRouteName, str | None, str | None]
"""(route, model name, version)"""
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
POST_ROUTES: frozenset[str] = frozenset({"predict", "infer"}) | compat_routes.POST_ROUTES
DEFAULT_DEADLINE_MARGIN_MS = 200
"""Below this much remaining Lambda time a request is answered 503 instead of run (never a gateway 504)."""


def match(path: str) -> Route | None:
    """``(route, model name, version)`` for a served path, or None."""
    parts = path.strip("/").split("/")
    compat = compat_routes.match(parts)
    if compat is not None:
        return compat
    if parts == ["predict"]:
        return "predict", None, None
    if parts == ["metrics"]:
        return "metrics", None, None
    if parts[0] != "v2":
        return None
    if len(parts) == 1:
        return "server_metadata", None, None
    if len(parts) == 3 and parts[1] == "health" and parts[2] in ("live", "ready"):
        return ("server_live" if parts[2] == "live" else "server_ready"), None, None
    if len(parts) < 3 or parts[1] != "models" or not parts[2]:
        return None
    name, rest, version = parts[2], parts[3:], None
    if len(rest) >= 2 and rest[0] == "versions" and rest[1]:
        version, rest = rest[1], rest[2:]
    if not rest:
        return "model_metadata", name, version
    if rest == ["ready"]:
        return "model_ready", name, version
    if rest == ["infer"]:
        return "infer", name, version
    return None


def check_method(route: RouteName | CompatRouteName, method: str) -> None:
    """405 naming the method the route takes."""
    wanted = "POST" if route in POST_ROUTES else "GET"
    if method != wanted and not (wanted == "GET" and method == "HEAD"):
        allow = (wanted,) if wanted == "POST" else ("GET", "HEAD")
        raise MethodNotAllowed(f"{method} is not allowed here; use {wanted}", allow=allow, field="method")


def check_deadline(context: Any, margin_ms: int) -> None:
    """503 (DeadlineExceeded) when the Lambda context says less than ``margin_ms`` is left."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return
    left = remaining()
    if isinstance(left, int | float) and left < margin_ms:
        raise DeadlineExceeded(f"only {int(left)} ms of the invocation deadline left; retry", field="deadline")


def resolve(method: str, path: str) -> Route:
    """The route for a request, or 404/405."""
    found = match(path)
    if found is None:
        raise RouteNotFound(f"no route {path!r}; see /docs", field="path")
    check_method(found[0], method)
    return found


def metrics_response(headers: Mapping[str, str]) -> Response:
    """``/metrics`` in Prometheus text format; a JSON 404 where prometheus-client is not installed."""
    from modelfn.serving.observability_prometheus import exposition

    body, content_type = exposition(headers.get("accept", ""))
    return Response(status=200, body=body, content_type=content_type)


def _image_for_image_bundle(state: ModelState, body: bytes) -> bool:
    """An encoded picture sent as ``application/octet-stream`` to a bundle that decodes pictures."""
    bundle = state.bundle
    return bundle is not None and processed.image_spec(bundle.manifest) is not None and processed.is_image(body, None)


def run_route(state: ModelState, route: Route, headers: Mapping[str, str], body: bytes) -> Response:
    """Run one resolved route; errors propagate as ModelfnError for the caller to render."""
    kind, name, version = route
    if kind == "metrics":
        return metrics_response(headers)
    if kind == "predict":
        if multipart.is_form(headers):
            return compat_routes.form_predict(state, body, headers)
        if tensor_body.is_tensor_body(headers) and not _image_for_image_bundle(state, body):
            return tensor_body.predict(state, body, headers)  # application/octet-stream or application/x-npy
        return predict.predict(state, body, headers)
    if kind == "server_metadata":
        return v2.server_metadata(state)
    if kind == "server_live":
        return v2.server_live(state)
    if kind == "server_ready":
        return v2.server_ready(state)
    if kind in compat_routes.ROUTES:
        return compat_routes.run(state, kind, name, version, headers, body)
    assert name is not None
    if kind == "infer":
        return v2.infer(state, name, version, body, headers)
    if kind == "model_metadata":
        return v2.model_metadata(state, name, version)
    return v2.model_ready(state, name, version)


def dispatch(state: ModelState, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
    """Resolve and run in one step (for callers that already hold the whole body)."""
    return run_route(state, resolve(method, path), headers, body)
