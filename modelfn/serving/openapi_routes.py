"""The served routes as the OpenAPI document lists them: one entry per path and method, tagged by protocol.

``tests/serving/test_openapi.py`` checks this table against ``routes.match``: every path the lean
router serves is here, and every entry here is served.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modelfn.serving import openapi_requests as requests
from modelfn.serving.multipart import MULTIPART
from modelfn.serving.openapi_examples import (
    CSV,
    JSON,
    NPY,
    OCTET_STREAM,
    SHAPE_HEADER,
    TEXT,
    V2_HEADER_LENGTH,
)
from modelfn.serving.openapi_schemas import BINARY, SCHEMAS, ref

if TYPE_CHECKING:
    from modelfn.bundle.manifest import Manifest
    from modelfn.serving.openapi_examples import Example

V2 = "V2 (Open Inference Protocol)"
SIMPLE = "predict"
TFSERVING = "TF Serving / KServe v1"
TORCHSERVE = "TorchServe / MMS"
OPS = "operations"
TAGS = [
    {"name": SIMPLE, "description": "modelfn's simple JSON protocol, and everything a bundle's preprocessing takes"},
    {"name": V2, "description": "KServe / Triton V2: tritonclient and KServe clients work unchanged"},
    {"name": TFSERVING, "description": "TensorFlow Serving's REST API (also KServe's v1 protocol)"},
    {"name": TORCHSERVE, "description": "TorchServe / MXNet Model Server's inference API"},
    {"name": OPS, "description": "Prometheus metrics (containers)"},
]
TENSOR_REPLIES = {
    NPY: {"schema": {**BINARY, "description": "with Accept: application/x-npy (single-output models)"}},
    OCTET_STREAM: {"schema": {**BINARY, "description": "raw little-endian output (X-Tensor-Shape, X-Tensor-Dtype)"}},
}
HEADER_DOCS = {
    V2_HEADER_LENGTH: "Binary tensor extension: the byte length of the JSON header that starts the body.",
    SHAPE_HEADER: "Raw octet-stream tensors: the shape, e.g. 1,3,224,224 (default: the manifest's, batch inferred).",
}


@dataclasses.dataclass(frozen=True)
class Route:
    """One documented operation."""

    method: str
    path: str
    tag: str
    summary: str
    description: str
    ok: Mapping[str, Any]
    """The 200 answer: media type → schema."""
    errors: tuple[int, ...]
    requests: Mapping[str, Any] | None = None
    """Request media type → schema (POST routes)."""
    examples: Callable[[Manifest], list[Example]] | None = None
    error_schema: str = "Error"
    special: Mapping[int, str] = dataclasses.field(default_factory=dict)
    """Statuses whose body has a schema of its own (``/ping``'s 503 is ``{"status": "Unhealthy", ...}``)."""
    headers: tuple[str, ...] = ()
    static_ok: Any = None
    """The 200 example shown while no model is loaded."""


def _json(name: str) -> dict[str, Any]:
    return {JSON: {"schema": ref(name)}}


def _both(path: str, versioned: str, **kwargs: Any) -> list[Route]:
    """A route with and without the version segment."""
    return [Route(path=path, **kwargs), Route(path=versioned, **kwargs)]


PREDICT_REQUESTS = {
    JSON: {"schema": SCHEMAS["PredictRequest"]},
    MULTIPART: {"schema": SCHEMAS["KerasForm"], "encoding": {"image": {"contentType": "image/*, application/json"}}},
    CSV: {"schema": {"type": "string", "description": "a header row of feature names (records bundles)"}},
    "image/png": {"schema": {**BINARY, "description": "image bundles (PNG, JPEG, WebP as declared)"}},
    "image/jpeg": {"schema": BINARY},
    OCTET_STREAM: {"schema": {**BINARY, "description": "one numeric input's raw little-endian bytes"}},
    NPY: {"schema": BINARY},
}
PREDICTED = [[0.5, 2.0, 4.0]]
ROUTES: list[Route] = [
    Route("POST", "/predict", SIMPLE, "Predict: rows, columns, named features, images, CSV or raw tensors",
          "JSON `instances` (rows) or `inputs` (columns); objects by feature name and `text/csv` for records "
          'bundles; `{"b64": ...}` values, raw `image/*` bodies and a multipart `image` field (Keras REST API, '
          'answered `{"success", "predictions": [{"label", "probability"}]}`) for image bundles; '
          "`application/octet-stream` / `application/x-npy` raw tensors. `return_labels` adds the arg-max "
          "label per row; a bundle with output processing also answers `labels` and `top_k`.",
          {JSON: {"schema": {"anyOf": [ref("PredictResponse"), ref("KerasResponse")]}}, **TENSOR_REPLIES},
          (400, 405, 406, 413, 415, 422, 503), PREDICT_REQUESTS, requests.predict_examples, headers=(SHAPE_HEADER,),
          static_ok={"predictions": PREDICTED, "labels": ["virginica"]}),
    *_both("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer",
           method="POST", tag=V2, summary="Inference",
           description="JSON tensors, or the binary tensor extension: a JSON header of "
           "`Inference-Header-Content-Length` bytes followed by the raw tensors (`binary_data_size`); outputs "
           "come back binary when asked (`binary_data_output`, per-output `binary_data`). A single-input model "
           "also takes a raw `application/octet-stream` (`X-Tensor-Shape`) or `application/x-npy` body.",
           ok={**_json("InferResponse"), **TENSOR_REPLIES}, errors=(400, 404, 405, 406, 413, 415, 422, 503),
           requests={JSON: {"schema": SCHEMAS["InferRequest"]}, OCTET_STREAM: {"schema": BINARY},
                     NPY: {"schema": BINARY}},
           examples=requests.infer_examples, headers=(V2_HEADER_LENGTH, SHAPE_HEADER),
           static_ok={"model_name": "iris", "model_version": "1",
                      "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 3], "data": PREDICTED[0]}]}),
    Route("GET", "/v2", V2, "Server metadata", "Name, version and protocol extensions.", _json("ServerMetadata"),
          (405,), static_ok={"name": "modelfn", "version": "0.1.0", "extensions": ["binary_tensor_data"]}),
    Route("GET", "/v2/health/live", V2, "Liveness", "The process answers.", _json("Live"), (405,),
          static_ok={"live": True}),
    Route("GET", "/v2/health/ready", V2, "Readiness: the verified model's identity",
          "200 once the signed bundle is verified and loaded; 503 with Retry-After before.", _json("Ready"),
          (405, 503), static_ok={"ready": True, "name": "iris", "version": 1, "root_digest": "ab" * 32,
                                 "verified_at": "2024-04-09T18:03:49+00:00"}),
    *_both("/v2/models/{name}", "/v2/models/{name}/versions/{version}", method="GET", tag=V2,
           summary="Model metadata", description="Input and output names, V2 datatypes and shapes (-1 = dynamic).",
           ok=_json("ModelMetadata"), errors=(404, 405, 503),
           static_ok={"name": "iris", "versions": ["1"], "platform": "onnxruntime",
                      "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                      "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]}),
    *_both("/v2/models/{name}/ready", "/v2/models/{name}/versions/{version}/ready", method="GET", tag=V2,
           summary="Model readiness", description="The named model's readiness and identity.", ok=_json("Ready"),
           errors=(404, 405, 503), static_ok={"name": "iris", "ready": True, "version": 1}),
    *_both("/v1/models/{name}:predict", "/v1/models/{name}/versions/{version}:predict", method="POST",
           tag=TFSERVING, summary="Predict (TF Serving row or columnar format)",
           description='`{"instances": rows}` is answered `{"predictions": ...}`, `{"inputs": columns}` '
           '`{"outputs": ...}`; rows may name features (records bundles) or hold `{"b64": ...}` images. Errors '
           'are `{"error": ...}` with 400 for any bad input, as TF Serving answers.',
           ok=_json("TFPredictResponse"), errors=(400, 404, 405, 413, 415, 503), error_schema="TFServingError",
           requests={JSON: {"schema": SCHEMAS["TFPredictRequest"]}}, examples=requests.tfserving_examples,
           static_ok={"predictions": PREDICTED}),
    Route("GET", "/v1/models", TFSERVING, "Served models (KServe v1)", "The served model's name.", _json("TFModels"),
          (405,), error_schema="TFServingError", static_ok={"models": ["iris"]}),
    *_both("/v1/models/{name}", "/v1/models/{name}/versions/{version}", method="GET", tag=TFSERVING,
           summary="Model status (TF Serving GetModelStatus, KServe v1 readiness)",
           description="`model_version_status` as TF Serving answers, with KServe's `name` and `ready`.",
           ok=_json("TFModelStatus"), errors=(404, 405, 503), error_schema="TFServingError",
           special={503: "TFModelStatus"},
           static_ok={"name": "iris", "ready": True, "model_version_status": [
               {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}),
    *_both("/v1/models/{name}/metadata", "/v1/models/{name}/versions/{version}/metadata", method="GET",
           tag=TFSERVING, summary="Model metadata (serving_default signature)",
           description="The `serving_default` signature, built from the signed manifest.",
           ok=_json("TFModelMetadata"), errors=(404, 405, 503), error_schema="TFServingError"),
    *_both("/predictions/{name}", "/predictions/{name}/{version}", method="POST", tag=TORCHSERVE,
           summary="Predictions (TorchServe / MMS)",
           description="A JSON list of rows, `{\"data\": rows}` or `{\"instances\": rows}`; an image body or a "
           "multipart `data` field (image bundles); CSV (records bundles); plain text (text models). A "
           "classifier answers top-k `{label: probability}` per row, otherwise one value per row.",
           ok={JSON: {"schema": {}}}, errors=(400, 404, 405, 413, 415, 422, 503),
           requests={JSON: {"schema": SCHEMAS["TorchServeRequest"]},
                     MULTIPART: {"schema": SCHEMAS["TorchServeForm"]},
                     "image/png": {"schema": BINARY}, "image/jpeg": {"schema": BINARY},
                     CSV: {"schema": {"type": "string"}}, TEXT: {"schema": {"type": "string"}}},
           examples=requests.torchserve_examples, static_ok=[{"virginica": 0.93, "versicolor": 0.05}]),
    Route("GET", "/ping", TORCHSERVE, "Health (TorchServe)", '`{"status": "Healthy"}`; 503 "Unhealthy" before.',
          _json("Ping"), (405, 503), special={503: "Ping"}, static_ok={"status": "Healthy"}),
    Route("GET", "/metrics", OPS, "Prometheus metrics",
          "Prometheus text (OpenMetrics with that Accept): latency, errors by type, load phases, process CPU/RSS. "
          "A JSON 404 where prometheus-client is not installed.",
          {TEXT: {"schema": {"type": "string"}}, "application/openmetrics-text": {"schema": {"type": "string"}}},
          (404, 405), static_ok="# TYPE InferenceLatency histogram\n..."),
]  # fmt: skip
