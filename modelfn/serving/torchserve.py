"""TorchServe / MXNet Model Server's inference API over the served model.

``POST /predictions/{name}[/{version}]`` takes a JSON body (a bare list of rows, ``{"data": ...}``
or ``{"body": ...}`` as the old handlers read it, or ``{"instances": ...}``), plain text for a
single-string-input model, or a multipart form whose ``data`` (or ``body``) field holds one of
those. Like TorchServe's default handlers it answers top-k ``{label: probability}`` per row for a
classifier (labels in the manifest), otherwise one JSON value per row; a single text or file
input gets its one answer unwrapped. ``GET /ping`` is ``{"status": "Healthy"}`` (503
``"Unhealthy"`` while no model is loaded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, ModelNotReady, UnprocessableInput
from modelfn.serving import codecs, multipart
from modelfn.serving.compat import class_probabilities, is_image, refuse_image, rows, run_columns, text_instances, top_k
from modelfn.serving.compat_routes import is_form
from modelfn.serving.responses import Response, dumps, error_response, json_response

if TYPE_CHECKING:
    from modelfn.bundle.manifest import Manifest
    from modelfn.serving.state import ModelState

FORM_FIELDS = ("data", "body")
"""The form fields TorchServe's handlers read the input from, in order."""
JSON_KEYS = ("data", "body", "instances", "inputs")


def ping(state: ModelState) -> Response:
    """``GET /ping``."""
    try:
        state.require()
    except ModelNotReady as exc:
        refused = error_response(exc)
        return Response(refused.status, dumps({"status": "Unhealthy", **exc.to_dict()}), headers=refused.headers)
    return json_response({"status": "Healthy"})


def predictions(state: ModelState, name: str, version: str | None, body: bytes, headers: Mapping[str, str]) -> Response:
    """``POST /predictions/{name}[/{version}]``."""
    bundle = state.require_model(name, version)
    content_type = headers.get("content-type")
    field = "content-type"
    if is_form(headers):
        part = _input_part(multipart.parse(body, headers))
        body, content_type, field = part.data, part.content_type, part.name
    request, single = _request(body, content_type, bundle.manifest, field=field)
    results = run_columns(bundle, request)
    found = class_probabilities(bundle.manifest, results, field=field)
    answers: list[Any] = rows(results)
    if found is not None:
        answers = [{str(label): p for label, p in row} for row in top_k(*found)]
    return json_response(answers[0] if single and len(answers) == 1 else answers)


def _input_part(parts: list[multipart.Part]) -> multipart.Part:
    found = [p for p in parts if p.name in FORM_FIELDS]
    if len(found) != 1:
        raise InvalidRequest(f"send exactly one form field named {' or '.join(FORM_FIELDS)}", field="data")
    return found[0]


def _request(body: bytes, content_type: str | None, manifest: Manifest, *, field: str) -> tuple[dict[str, Any], bool]:
    """The body as /predict columns, and whether it was one raw input (answered unwrapped)."""
    if is_image(body, content_type):
        raise refuse_image(field)
    media = (content_type or "").split(";", 1)[0].strip().lower()
    looks_json = body.lstrip()[:1] in (b"[", b"{")
    if media == "text/plain" or (not looks_json and media not in ("application/json",) and not media.endswith("+json")):
        return text_instances(body, manifest, field=field), True
    where = "body" if field == "content-type" else field  # a raw body's JSON errors name the body
    value = codecs.loads(body, field=where)
    if isinstance(value, list):
        return {"instances": value}, False
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be a JSON list of rows or an object", field=where)
    keys = [k for k in JSON_KEYS if k in value]
    unknown = sorted(set(value) - set(JSON_KEYS))
    if unknown or len(keys) != 1:
        bad = unknown[0] if unknown else (keys[1] if keys else "data")
        raise InvalidRequest(f"send exactly one of {list(JSON_KEYS)}", field=bad)
    key = keys[0]
    if key in ("instances", "inputs"):
        return {key: value[key]}, False
    inner = value[key]
    if isinstance(inner, str):  # {"data": "some text"}: one row for a text model, answered unwrapped
        if [s.dtype for s in manifest.inputs] != ["string"]:
            raise UnprocessableInput(f"{key} is text but this model takes {manifest.inputs[0].dtype} rows", field=key)
        return {"instances": [inner]}, True
    if isinstance(inner, dict):
        return {"inputs": inner}, False
    return {"instances": inner}, False
