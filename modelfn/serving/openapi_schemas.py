"""JSON Schemas of every request and response body, and the error responses, for the OpenAPI document.

Plain JSON Schema (OpenAPI 3.1), no pydantic: nothing here validates on the request path; the
routes check bodies themselves and answer 4xx naming the field. Response schemas say what the
routes always send, so schemathesis can hold every answer to them (tests/serving/test_fuzz_openapi.py).
"""

from __future__ import annotations

from typing import Any

from modelfn.errors import (
    InvalidRequest,
    MethodNotAllowed,
    ModelfnError,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    UnprocessableInput,
    UnsupportedMediaType,
)

V2_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                "FP16", "FP32", "FP64", "BF16", "BYTES"]  # fmt: skip
BINARY = {"type": "string", "format": "binary"}
BINARY_FLAG = "true: send this output (every output, for binary_data_output) binary; any other value: JSON"
OBJECT = {"type": "object"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_TENSOR_OUT = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "data": {"description": "flat, row-major values (absent when the output is sent binary)"},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
    },
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "code"],
        "properties": {
            "error": {"type": "string", "description": "what was wrong, naming the field or key"},
            "code": {"type": "string", "description": "stable machine-readable reason, e.g. unprocessable_input"},
            "field": {"type": "string", "description": "the request part at fault (key, header, input name)"},
        },
    },
    "TFServingError": {
        "type": "object",
        "required": ["error"],
        "description": "TF Serving's error body; modelfn adds its code and field beside it.",
        "properties": {"error": {"type": "string"}, "code": {"type": "string"}, "field": {"type": "string"}},
    },
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": V2_DATATYPES},
            "data": {"description": "flat (row-major) or nested values; omit when sent as binary"},
            "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": ref("Tensor")},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "parameters": {"type": "object", "properties": {"binary_data": {"description": BINARY_FLAG}}},
                    },
                },
            },
            "parameters": {"type": "object", "properties": {"binary_data_output": {"description": BINARY_FLAG}}},
        },
    },
    "InferResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _TENSOR_OUT},
        },
    },
    "PredictRequest": {
        "type": "object",
        "description": 'Send exactly one of "instances" or "inputs".',
        "properties": {
            "instances": {
                "type": "array",
                "description": "one row per instance; objects name the inputs (or, for a records bundle, the"
                ' features); an image bundle takes {"b64": "..."} values',
            },
            "inputs": {"description": "{input name: value} (columns), or a bare value for a single-input model"},
            "return_labels": {"type": "boolean", "description": "also return the arg-max label per row"},
            "signature_name": {"description": "accepted for TF Serving clients and ignored"},
        },
    },
    "PredictResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {
            "predictions": {"description": "an array for one output, {output name: array} for several"},
            "labels": {"type": "array", "description": "the chosen label per row (declared labels)"},
            "top_k": {"type": "array", "description": "per row, the k most probable labels (output processing)"},
        },
    },
    "KerasResponse": {
        "type": "object",
        "required": ["success", "predictions"],
        "properties": {
            "success": {"type": "boolean"},
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["label", "probability"],
                    "properties": {"label": {}, "probability": {"type": "number"}},
                },
            },
        },
    },
    "KerasForm": {
        "type": "object",
        "required": ["image"],
        "properties": {"image": {**BINARY, "description": "an image file, or one instance as JSON"}},
    },
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    "Ready": {
        "type": "object",
        "required": ["ready"],
        "description": "the served model's identity: name, version, root digest of the signed bundle, when verified",
        "properties": {
            "ready": {"type": "boolean"},
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "root_digest": {"type": "string"},
            "verified_at": {"type": "string", "format": "date-time"},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_OUT},
            "outputs": {"type": "array", "items": _TENSOR_OUT},
        },
    },
    "TFPredictRequest": {
        "type": "object",
        "description": 'Row format ("instances") or columnar format ("inputs"), as TF Serving\'s REST API.',
        "properties": {
            "signature_name": {"type": "string", "default": "serving_default"},
            "instances": {"type": "array"},
            "inputs": {},
        },
    },
    "TFPredictResponse": {
        "type": "object",
        "description": '"predictions" for the row format, "outputs" for the columnar format',
        "properties": {"predictions": {"type": "array"}, "outputs": {}},
    },
    "TFModelStatus": {
        "type": "object",
        "required": ["name", "ready", "model_version_status"],
        "properties": {
            "name": {"type": "string"},
            "ready": {"type": "boolean"},
            "model_version_status": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["version", "state", "status"],
                    "properties": {
                        "version": {"type": "string"},
                        "state": {"type": "string", "enum": ["AVAILABLE", "LOADING", "END"]},
                        "status": {"type": "object"},
                    },
                },
            },
            "error": {"type": "string"},
            "code": {"type": "string"},
            "field": {"type": "string"},
        },
    },
    "TFModelMetadata": {
        "type": "object",
        "required": ["model_spec", "metadata"],
        "properties": {"model_spec": OBJECT, "metadata": OBJECT},
    },
    "TFModels": {
        "type": "object",
        "required": ["models"],
        "properties": {"models": {"type": "array", "items": {"type": "string"}}},
    },
    "TorchServeRequest": {
        "description": 'A bare list of rows, {"data": rows}, {"body": rows} or {"instances": rows}',
        "anyOf": [{"type": "array"}, {"type": "object"}],
    },
    "TorchServeForm": {
        "type": "object",
        "properties": {
            "data": {**BINARY, "description": "an image file (several for a batch), or the rows as JSON"},
            "body": {**BINARY, "description": "read like data, as older handlers named it"},
            "file": {**BINARY, "description": "read like data"},
        },
    },
    "Ping": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["Healthy", "Unhealthy"]},
            "error": {"type": "string"},
            "code": {"type": "string"},
            "field": {"type": "string"},
        },
    },
}

ERROR_TEXT = {
    400: "malformed request (the field names the key or header)",
    404: "unknown model or version",
    405: "the route takes another method (Allow lists it)",
    406: "Accept names only reply forms this model cannot give",
    413: "body over max_body_bytes, or an image over its byte or pixel limit",
    415: "unsupported content type (or an image to a bundle without image preprocessing)",
    422: "input does not fit the model schema (the field names the input, feature or row)",
    503: "model not ready, or too little of the invocation deadline left (Retry-After)",
}
_EXAMPLE_ERRORS: dict[int, ModelfnError] = {
    400: InvalidRequest('send exactly one of "instances" or "inputs"', field="instances"),
    404: ModelNotFound("model 'other' is not served here; this server serves 'iris'", field="model_name"),
    405: MethodNotAllowed("GET is not allowed here; use POST", allow=("POST",), field="method"),
    413: PayloadTooLarge("request body is over the 6291456-byte limit (max_body_bytes)", field="body"),
    415: UnsupportedMediaType(
        "content-type 'text/xml' is not accepted here; send application/json", field="content-type"
    ),
    422: UnprocessableInput("input 'x' expects shape [-1, 4], got [1, 3]", field="x"),
    503: ModelNotReady("model iris is not ready (loading)", field="model"),
}
HEADERS = {
    405: {"Allow": {"description": "the methods this route takes", "required": True, "schema": {"type": "string"}}},
    503: {
        "Retry-After": {
            "description": "seconds to wait before retrying",
            "required": True,
            "schema": {"type": "string"},
        }
    },
}


def error_example(status: int) -> dict[str, Any]:
    """A real error body for ``status``, as the route would send it."""
    error = _EXAMPLE_ERRORS.get(status)
    if error is None:
        return {"error": ERROR_TEXT[status], "code": "not_acceptable", "field": "accept"}
    return error.to_dict()


def error_responses(statuses: tuple[int, ...], schema: str = "Error", **bodies: str) -> dict[str, Any]:
    """The documented error answers; ``bodies`` maps ``"s503"`` to a schema other than ``schema`` for that status."""
    out: dict[str, Any] = {}
    for status in statuses:
        body_schema = bodies.get(f"s{status}", schema)
        response: dict[str, Any] = {
            "description": ERROR_TEXT[status],
            "content": {"application/json": {"schema": ref(body_schema), "example": error_example(status)}},
        }
        if status in HEADERS:
            response["headers"] = HEADERS[status]
        out[str(status)] = response
    return out
