"""``POST /predict``: the simple JSON protocol (TF-Serving style rows, or named columns), images and CSV.

Request: ``{"instances": [row, ...]}`` (single-input models; or rows as ``{input: value}``
objects for several inputs) or ``{"inputs": {name: value}}`` (a bare value for a single-input
model). A bundle with declared processing also takes what people send: an image bundle a raw
``image/*`` body or ``{"b64": "..."}`` values, a records bundle objects keyed by feature name or a
``text/csv`` body with a header. Response: ``{"predictions": array}`` for one output,
``{"predictions": {name: array}}`` for several; with ``"return_labels": true`` a classifier with
``manifest.labels`` also returns ``"labels"`` (the chosen label per row); a bundle declaring
output processing always adds ``"labels"`` and ``"top_k"`` (``[{"label", "probability"}]`` per row).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest
from modelfn.serving import codecs, processed, typed_json
from modelfn.serving.inference import JSON_TYPES, require_content_type, run_model
from modelfn.serving.responses import Response, json_response

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest
    from modelfn.serving.state import ModelState

KNOWN_KEYS = frozenset({"instances", "inputs", "return_labels", "signature_name"})


def predict(state: ModelState, body: bytes, headers: Mapping[str, str]) -> Response:
    """Decode, run, encode."""
    bundle = state.require()
    manifest = bundle.manifest
    feeds = processed.body_feeds(body, headers.get("content-type"), manifest, field="body")
    request: dict[str, Any] = {}
    if feeds is None:
        require_content_type(headers, JSON_TYPES)
        loaded = typed_json.predict_request(body, manifest) or codecs.loads(body)
        if not isinstance(loaded, dict):
            raise InvalidRequest(
                'the body must be a JSON object: {"instances": [...]} or {"inputs": {...}}', field="body"
            )
        request = loaded
        unknown = sorted(set(request) - KNOWN_KEYS)
        if unknown:
            raise InvalidRequest(f"unknown key {unknown[0]!r}; expected one of {sorted(KNOWN_KEYS)}", field=unknown[0])
        feeds = processed.request_feeds(request, manifest, numbers_only=processed.numbers_only(body, request))
    return_labels = request.get("return_labels", False)
    if not isinstance(return_labels, bool):
        raise InvalidRequest("return_labels must be true or false", field="return_labels")
    results = run_model(bundle.model, feeds)
    return json_response(answer(manifest, results, return_labels=return_labels))


def answer(manifest: Manifest, results: Mapping[str, npt.NDArray[Any]], *, return_labels: bool) -> dict[str, Any]:
    """``predictions``, plus ``labels`` (asked, or output processing declared) and ``top_k`` (declared)."""
    response: dict[str, Any] = {}
    if len(results) == 1:
        response["predictions"] = codecs.json_data(next(iter(results.values())), flat=False)
    else:
        response["predictions"] = {name: codecs.json_data(array, flat=False) for name, array in results.items()}
    declared = manifest.processing.output if manifest.processing is not None else None
    if declared is not None:  # the class scores once, for both the labels and the top-k
        from modelfn.processing.outputs import class_scores, ranked

        scores = class_scores(results, manifest, field="return_labels")
        assert scores is not None  # a declared output always yields scores or raises
        response["labels"] = scores.chosen_labels()
        top = ranked(scores, declared.top_k)
        response["top_k"] = [[{"label": label, "probability": p} for label, p in row] for row in top]
    elif return_labels:
        from modelfn.processing.outputs import labels_of

        response["labels"] = labels_of(results, manifest, field="return_labels")
    return response
