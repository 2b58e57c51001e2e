"""TorchServe / MXNet Model Server's inference API over the served model.

``POST /predictions/{name}[/{version}]`` takes a JSON body (a bare list of rows, ``{"data": ...}``
or ``{"body": ...}`` as the old handlers read it, or ``{"instances": ...}``), plain text for a
single-string-input model, or a multipart form whose ``data`` (or ``body``, ``file``) field holds one of
those. A bundle declaring image preprocessing also takes a raw image body or one or more image
files in the form (answered per image); one declaring records takes a ``text/csv`` body. Like
TorchServe's default handlers it answers top-k ``{label: probability}`` per row for a classifier
(labels in the manifest, or output processing declared; any image model), otherwise one JSON value
per row; a single text or file input gets its one answer unwrapped. ``GET /ping`` is
``{"status": "Healthy"}`` (503 ``"Unhealthy"`` while no model is loaded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, ModelNotReady, UnprocessableInput
from modelfn.serving import codecs, multipart
from modelfn.serving.compat import is_image, refuse_image, rows, run_columns, run_feeds, text_instances
from modelfn.serving.inference import media_type
from modelfn.serving.processed import body_feeds, image_feeds, image_spec
from modelfn.serving.responses import Response, dumps, error_response, json_response

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest
    from modelfn.serving.state import ModelState

FORM_FIELDS = ("data", "body", "file")
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
    manifest = bundle.manifest
    content_type = headers.get("content-type")
    field = "content-type"
    if multipart.is_form(headers):
        parts = _input_parts(multipart.parse(body, headers))
        if len(parts) > 1 or is_image(parts[0].data, parts[0].content_type):
            images = image_feeds([p.data for p in parts], manifest, field=parts[0].name)
            return _answer(manifest, run_feeds(bundle, images), single=len(parts) == 1, image=True, field=parts[0].name)
        body, content_type, field = parts[0].data, parts[0].content_type, parts[0].name
    where = "body" if field == "content-type" else field
    if is_image(body, content_type) and image_spec(manifest) is None:
        raise refuse_image(field)
    feeds = body_feeds(body, content_type, manifest, field=where)
    if feeds is not None:
        image = is_image(body, content_type)
        return _answer(manifest, run_feeds(bundle, feeds), single=image, image=image, field=where)
    request, single = _request(body, content_type, manifest, field=field)
    return _answer(manifest, run_columns(bundle, request), single=single, image=False, field=field)


def _answer(
    manifest: Manifest, results: Mapping[str, npt.NDArray[Any]], *, single: bool, image: bool, field: str
) -> Response:
    """Top-k ``{label: probability}`` per row for a classifier (any image model), else one value per row."""
    from modelfn.processing.outputs import TOP_K, class_scores, ranked

    scores = class_scores(results, manifest, field=field, need_labels=not image)
    answers: list[Any] = rows(results)
    if scores is not None:
        declared = manifest.processing.output if manifest.processing is not None else None
        k = declared.top_k if declared is not None else TOP_K
        answers = [{str(label): p for label, p in row} for row in ranked(scores, k)]
    return json_response(answers[0] if single and len(answers) == 1 else answers)


def _input_parts(parts: list[multipart.Part]) -> list[multipart.Part]:
    """The input field (several only when every one is an image file: a batch)."""
    found = [p for p in parts if p.name in FORM_FIELDS]
    if not found or (len(found) > 1 and not all(is_image(p.data, p.content_type) for p in found)):
        raise InvalidRequest(
            f"send one form field named {' or '.join(FORM_FIELDS)} (several only for image files)", field="data"
        )
    return found


def _request(body: bytes, content_type: str | None, manifest: Manifest, *, field: str) -> tuple[dict[str, Any], bool]:
    """The body as /predict columns, and whether it was one raw input (answered unwrapped)."""
    media = media_type(content_type)
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
