"""The FastAPI app behind ``/docs``, ``/redoc`` and ``/openapi.json``, built on first use only.

It declares every serving route, calling the very same core functions as the lean app, so the
OpenAPI document describes exactly what is served. Request bodies are documented with plain
JSON Schema (``openapi_extra``), not pydantic models: nothing here validates on the hot path.
This module imports FastAPI at the top on purpose (FastAPI resolves route annotations from module
globals); only ``LeanApp.docs_app`` imports it, on the first documentation request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response as StarletteResponse

from modelfn._version import __version__
from modelfn.errors import ModelfnError
from modelfn.serving import predict, v2
from modelfn.serving.request import read_body, request_headers
from modelfn.serving.responses import Response, error_response, unexpected_error_response
from modelfn.serving.routes import DEFAULT_DEADLINE_MARGIN_MS, check_deadline

if TYPE_CHECKING:
    from modelfn.serving.state import ModelState

_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {
            "type": "string",
            "enum": [
                "BOOL",
                "UINT8",
                "UINT16",
                "UINT32",
                "UINT64",
                "INT8",
                "INT16",
                "INT32",
                "INT64",
                "FP16",
                "FP32",
                "FP64",
                "BYTES",
            ],
        },
        "data": {"description": "flat (row-major) or nested values; omit when sent as binary"},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
    },
}
INFER_BODY = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "items": _TENSOR},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
                },
            },
        },
        "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
    },
    "example": {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
}
PREDICT_BODY = {
    "type": "object",
    "properties": {
        "instances": {"type": "array", "description": "one row per instance (or one {input: value} object per row)"},
        "inputs": {"description": "{input name: value}, or a bare value for a single-input model"},
        "return_labels": {"type": "boolean", "description": "also return the arg-max label per row"},
    },
    "example": {"instances": [[1.0, 2.0, 3.0, 4.0]]},
}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}, "field": {"type": "string"}},
}
ERRORS: dict[int | str, dict[str, Any]] = {
    str(status): {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, text in [
        (400, "malformed request"),
        (404, "unknown model or version"),
        (413, "body over max_body_bytes"),
        (415, "unsupported content-type"),
        (422, "input does not fit the model schema (field names it)"),
        (503, "model not ready or deadline too close (Retry-After)"),
    ]
}


def build_fastapi_app(state: ModelState) -> FastAPI:
    """A FastAPI app serving (and documenting) the same routes as ``LeanApp``."""
    app = FastAPI(
        title="modelfn",
        version=__version__,
        description="Signed-model inference: Open Inference Protocol V2 and a simple /predict.",
    )
    limit = state.settings.max_body_bytes

    async def body_of(request: Request) -> bytes:
        check_deadline(request.scope.get("aws.context"), DEFAULT_DEADLINE_MARGIN_MS)
        return await read_body(request.receive, request_headers(request.scope), limit)

    @app.exception_handler(ModelfnError)
    async def _modelfn_error(request: Request, exc: ModelfnError) -> StarletteResponse:
        return _to_starlette(error_response(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> StarletteResponse:
        return _to_starlette(unexpected_error_response(exc))

    @app.get("/v2", tags=["v2"], summary="Server metadata")
    async def server_metadata() -> StarletteResponse:
        return _to_starlette(v2.server_metadata(state))

    @app.get("/v2/health/live", tags=["v2"], summary="Liveness")
    async def server_live() -> StarletteResponse:
        return _to_starlette(v2.server_live(state))

    @app.get("/v2/health/ready", tags=["v2"], summary="Readiness: the verified model's identity", responses=ERRORS)
    async def server_ready() -> StarletteResponse:
        return _to_starlette(v2.server_ready(state))

    @app.get("/v2/models/{name}", tags=["v2"], summary="Model metadata", responses=ERRORS)
    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"], summary="Model metadata", responses=ERRORS)
    async def model_metadata(name: str, version: str | None = None) -> StarletteResponse:
        return _to_starlette(v2.model_metadata(state, name, version))

    @app.get("/v2/models/{name}/ready", tags=["v2"], summary="Model readiness", responses=ERRORS)
    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"], summary="Model readiness", responses=ERRORS)
    async def model_ready(name: str, version: str | None = None) -> StarletteResponse:
        return _to_starlette(v2.model_ready(state, name, version))

    infer_doc: dict[str, Any] = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": INFER_BODY}}}
    }

    @app.post("/v2/models/{name}/infer", tags=["v2"], summary="Inference", responses=ERRORS, openapi_extra=infer_doc)
    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        tags=["v2"],
        summary="Inference",
        responses=ERRORS,
        openapi_extra=infer_doc,
    )
    async def infer(name: str, request: Request, version: str | None = None) -> StarletteResponse:
        body = await body_of(request)
        headers = request_headers(request.scope)
        return _to_starlette(await run_in_threadpool(v2.infer, state, name, version, body, headers))

    @app.post(
        "/predict",
        tags=["simple"],
        summary="Predict from {instances} or {inputs}",
        responses=ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": PREDICT_BODY}}}},
    )
    async def predict_route(request: Request) -> StarletteResponse:
        body = await body_of(request)
        headers = request_headers(request.scope)
        return _to_starlette(await run_in_threadpool(predict.predict, state, body, headers))

    return app


def _to_starlette(response: Response) -> StarletteResponse:
    return StarletteResponse(
        content=response.body,
        status_code=response.status,
        media_type=response.content_type,
        headers=dict(response.headers),
    )
