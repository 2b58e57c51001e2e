"""TensorFlow Serving's REST API (also KServe's v1 protocol) over the served model.

``POST /v1/models/{name}[/versions/{v}]:predict`` takes ``{"instances": ...}`` (rows) and answers
``{"predictions": [...]}`` (an object per row, keyed by output, when there are several outputs),
or ``{"inputs": ...}`` (columns) answered by ``{"outputs": ...}``. ``GET /v1/models/{name}``
answers TF Serving's ``model_version_status`` and KServe's ``name``/``ready`` in one object;
``.../metadata`` answers the ``serving_default`` signature built from the signed manifest.
Errors are ``{"error": ...}`` (plus modelfn's ``code`` and ``field``) with 400 for bad input, as
TF Serving never answers 422. The content type is not checked: ``curl -d`` labels JSON as a form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, ModelNotReady, UnprocessableInput
from modelfn.serving import codecs
from modelfn.serving.compat import rows, run_columns
from modelfn.serving.responses import Response, dumps, error_response, json_response

if TYPE_CHECKING:
    from modelfn.bundle.manifest import TensorSpec
    from modelfn.serving.state import ModelState

SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
TF_DTYPES = {
    "float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE", "bfloat16": "DT_BFLOAT16",
    "int8": "DT_INT8", "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64",
    "uint8": "DT_UINT8", "uint16": "DT_UINT16", "uint32": "DT_UINT32", "uint64": "DT_UINT64",
    "bool": "DT_BOOL", "string": "DT_STRING",
}  # fmt: skip
KNOWN_KEYS = ("signature_name", "instances", "inputs")


def predict(state: ModelState, name: str, version: str | None, body: bytes) -> Response:
    """``:predict`` in row or columnar format."""
    bundle = state.require_model(name, version)
    request = codecs.loads(body)
    if not isinstance(request, dict):
        raise InvalidRequest('the body must be a JSON object with "instances" or "inputs"', field="body")
    unknown = sorted(set(request) - set(KNOWN_KEYS))
    if unknown:
        raise InvalidRequest(f"unknown key {unknown[0]!r}; expected {list(KNOWN_KEYS)}", field=unknown[0])
    signature = request.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise InvalidRequest(
            f"serving signature name {signature!r} not found; this model serves {SIGNATURE!r}", field="signature_name"
        )
    try:
        results = run_columns(bundle, request)
    except UnprocessableInput as exc:  # TF Serving answers INVALID_ARGUMENT (400) for every bad input
        error = InvalidRequest(exc.message, field=exc.field)
        error.code = exc.code
        raise error from exc
    if "instances" in request:
        return json_response({"predictions": rows(results)})
    outputs = {key: codecs.json_data(array, flat=False) for key, array in results.items()}
    return json_response({"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs})


def model_status(state: ModelState, name: str, version: str | None) -> Response:
    """TF Serving's GetModelStatus plus KServe v1's readiness; 503 + Retry-After while not ready."""
    try:
        bundle = state.require_model(name, version)
    except ModelNotReady as exc:
        refused = error_response(exc)
        state_name = "LOADING" if state.failure is None else "END"
        configured = state.settings.model_version if state.settings.model_version.isdigit() else ""
        body = {
            **exc.to_dict(),
            "name": name,
            "ready": False,
            "model_version_status": [_status(version or configured, state_name, exc.message)],
        }
        return Response(status=refused.status, body=dumps(body), headers=refused.headers)
    served = str(bundle.manifest.version)
    return json_response({"name": name, "ready": True, "model_version_status": [_status(served, "AVAILABLE", "")]})


def model_metadata(state: ModelState, name: str, version: str | None) -> Response:
    """TF Serving's GetModelMetadata: the one ``serving_default`` signature, from the signed manifest."""
    manifest = state.require_model(name, version).manifest
    signature = {
        "inputs": {t.name: _tensor_info(t) for t in manifest.inputs},
        "outputs": {t.name: _tensor_info(t) for t in manifest.outputs},
        "method_name": PREDICT_METHOD,
    }
    return json_response(
        {
            "model_spec": {"name": manifest.name, "signature_name": "", "version": str(manifest.version)},
            "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
        }
    )


def list_models(state: ModelState) -> Response:
    """KServe v1's ``GET /v1/models``: the served model's name (none while not ready)."""
    return json_response({"models": [state.model_name] if state.ready and state.model_name else []})


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    dims = [{"size": str(d), "name": ""} for d in spec.shape]
    return {"dtype": TF_DTYPES[spec.dtype], "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": spec.name}


def _status(version: str, state_name: str, message: str) -> dict[str, Any]:
    code = "OK" if state_name == "AVAILABLE" else "UNAVAILABLE"
    return {"version": version, "state": state_name, "status": {"error_code": code, "error_message": message}}
