"""Paths of the client compatibility routes (TF Serving / KServe v1, TorchServe) and their dispatch.

Kept out of ``routes`` so that table stays about modelfn's own protocols; ``routes.match`` asks
here first, with the same split-on-``/`` matching and no regex. The protocol modules are imported
on first use, so a deployment that never serves them does not pay for them at cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from modelfn.serving.responses import Response
    from modelfn.serving.state import ModelState

CompatRouteName = Literal["tf_predict", "tf_status", "tf_metadata", "tf_models", "ts_predictions", "ts_ping"]
ROUTES: frozenset[str] = frozenset({"tf_predict", "tf_status", "tf_metadata", "tf_models", "ts_predictions", "ts_ping"})
POST_ROUTES: frozenset[str] = frozenset({"tf_predict", "ts_predictions"})
PREDICT_VERB = ":predict"


def match(parts: list[str]) -> tuple[CompatRouteName, str | None, str | None] | None:
    """``(route, model name, version)`` for a compatibility path (already split on ``/``), or None."""
    head = parts[0]
    if head == "ping" and len(parts) == 1:
        return "ts_ping", None, None
    if head == "predictions" and len(parts) in (2, 3) and all(parts[1:]):
        return "ts_predictions", parts[1], parts[2] if len(parts) == 3 else None
    if head != "v1" or len(parts) < 2 or parts[1] != "models":
        return None
    if len(parts) == 2:
        return "tf_models", None, None
    last = parts[-1]
    verb = last.endswith(PREDICT_VERB)
    if verb:
        parts = [*parts[:-1], last[: -len(PREDICT_VERB)]]
    metadata = not verb and len(parts) in (4, 6) and last == "metadata"
    if metadata:
        parts = parts[:-1]
    if len(parts) == 3:
        name, version = parts[2], None
    elif len(parts) == 5 and parts[3] == "versions" and parts[4]:
        name, version = parts[2], parts[4]
    else:
        return None
    if not name or ":" in name or (version is not None and ":" in version):
        return None
    return ("tf_predict" if verb else "tf_metadata" if metadata else "tf_status"), name, version


def run(
    state: ModelState, kind: str, name: str | None, version: str | None, headers: Mapping[str, str], body: bytes
) -> Response:
    """Run one matched compatibility route."""
    from modelfn.serving import tfserving, torchserve

    if kind == "ts_ping":
        return torchserve.ping(state)
    if kind == "tf_models":
        return tfserving.list_models(state)
    assert name is not None
    if kind == "tf_predict":
        return tfserving.predict(state, name, version, body)
    if kind == "tf_status":
        return tfserving.model_status(state, name, version)
    if kind == "tf_metadata":
        return tfserving.model_metadata(state, name, version)
    return torchserve.predictions(state, name, version, body, headers)


def form_predict(state: ModelState, body: bytes, headers: Mapping[str, str]) -> Response:
    """``POST /predict`` with a multipart ``image`` field (Keras REST API)."""
    from modelfn.serving import keras_rest

    return keras_rest.predict(state, body, headers)
