"""``POST /predict``: the simple JSON protocol (TF-Serving style rows, or named columns).

Request: ``{"instances": [row, ...]}`` (single-input models; or rows as ``{input: value}``
objects for several inputs) or ``{"inputs": {name: value}}`` (a bare value for a single-input
model). Response: ``{"predictions": array}`` for one output, ``{"predictions": {name: array}}``
for several; with ``"return_labels": true`` a classifier with ``manifest.labels`` also returns
``"labels"`` (the label of the arg-max class per row).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, UnprocessableInput
from modelfn.serving import codecs
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
    require_content_type(headers, JSON_TYPES)
    request = codecs.loads(body)
    if not isinstance(request, dict):
        raise InvalidRequest('the body must be a JSON object: {"instances": [...]} or {"inputs": {...}}', field="body")
    unknown = sorted(set(request) - KNOWN_KEYS)
    if unknown:
        raise InvalidRequest(f"unknown key {unknown[0]!r}; expected one of {sorted(KNOWN_KEYS)}", field=unknown[0])
    manifest = bundle.manifest
    columns = _columns(request, manifest)
    dtypes = {spec.name: spec.dtype for spec in manifest.inputs}
    feeds = {name: codecs.as_input(value, dtypes.get(name, "float32"), field=name) for name, value in columns.items()}
    results = run_model(bundle.model, feeds)
    response: dict[str, Any] = {}
    if len(results) == 1:
        response["predictions"] = codecs.json_data(next(iter(results.values())), flat=False)
    else:
        response["predictions"] = {name: codecs.json_data(array, flat=False) for name, array in results.items()}
    return_labels = request.get("return_labels", False)
    if not isinstance(return_labels, bool):
        raise InvalidRequest("return_labels must be true or false", field="return_labels")
    if return_labels:
        response["labels"] = _labels(manifest, results)
    return json_response(response)


def _columns(request: Mapping[str, Any], manifest: Manifest) -> dict[str, Any]:
    """Named input values from either request form."""
    names = [spec.name for spec in manifest.inputs]
    if ("instances" in request) == ("inputs" in request):
        raise InvalidRequest('send exactly one of "instances" or "inputs"', field="instances")
    if "instances" in request:
        rows = request["instances"]
        if not isinstance(rows, list) or not rows:
            raise InvalidRequest('"instances" must be a non-empty list of rows', field="instances")
        if all(isinstance(row, dict) for row in rows):
            keys = set(rows[0])
            if any(set(row) != keys for row in rows):
                raise UnprocessableInput("every instance must name the same inputs", field="instances")
            return {key: [row[key] for row in rows] for key in rows[0]}
        if len(names) != 1:
            raise UnprocessableInput(
                f'this model takes {len(names)} inputs {names}: send rows as objects or use "inputs"',
                field="instances",
            )
        return {names[0]: rows}
    inputs = request["inputs"]
    if isinstance(inputs, dict):
        return dict(inputs)
    if len(names) != 1:
        raise UnprocessableInput(f'this model takes inputs {names}: "inputs" must be an object', field="inputs")
    return {names[0]: inputs}


def _labels(manifest: Manifest, results: Mapping[str, npt.NDArray[Any]]) -> list[Any]:
    """The label of the arg-max class per row, from the first float output with one column per label."""
    labels = manifest.labels
    if not labels:
        raise UnprocessableInput("this model declares no labels", field="return_labels")
    for array in results.values():
        if array.dtype.kind == "f" and array.ndim >= 1 and array.shape[-1] == len(labels):
            return [labels[int(i)] for i in array.argmax(axis=-1).reshape(-1)]
    raise UnprocessableInput(f"no output has one score per label ({len(labels)})", field="return_labels")
