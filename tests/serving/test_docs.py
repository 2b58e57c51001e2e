"""OpenAPI docs come from a lazily built FastAPI app that declares (and serves) the same routes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from modelfn.serving.asgi import create_app
from modelfn.serving.fastapi_app import build_fastapi_app
from modelfn.serving.state import ModelState
from tests.serving.asgi_client import SyncASGIClient


def test_docs_and_openapi_are_served_through_the_lean_app(client: SyncASGIClient) -> None:
    # WHEN the documentation paths are requested from the lean app
    docs = client.get("/docs")
    schema = client.get("/openapi.json")
    # THEN FastAPI's Swagger UI and an OpenAPI document listing every serving route come back
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/predict",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ]:
        assert path in paths, path
    infer = paths["/v2/models/{name}/infer"]["post"]
    assert "inputs" in infer["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "413" in infer["responses"] and "503" in infer["responses"]


def test_fastapi_routes_answer_like_the_lean_app(state: ModelState, client: SyncASGIClient) -> None:
    # GIVEN the FastAPI app on its own (as a container could mount it)
    fastapi_client = SyncASGIClient(build_fastapi_app(state, create_app(state)))
    try:
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/predict", {"json": {"instances": [[1, 2, 3, 4]]}}),
            ("POST", "/v2/models/linear/infer", {"json": {"inputs": [{"name": "x", "shape": [1, 4],
                                                                     "datatype": "FP32", "data": [1, 2, 3, 4]}]}}),
            ("POST", "/v2/models/linear/versions/9/infer", {"json": {}}),
            ("POST", "/predict", {"content": b"{"}),
            ("GET", "/v2/models/linear", {}),
            ("GET", "/v2/health/ready", {}),
        ]  # fmt: skip
        for method, path, kwargs in requests:
            # WHEN the same request goes to both apps
            lean = client.request(method, path, **kwargs)
            full = fastapi_client.request(method, path, **kwargs)
            # THEN status and body are identical
            assert (full.status_code, full.content) == (lean.status_code, lean.content), path
    finally:
        fastapi_client.close()


def test_serving_path_never_imports_fastapi() -> None:
    # WHEN the lean app module and its request path are imported in a fresh interpreter
    code = (
        "import sys, modelfn.serving.asgi, modelfn.serving.routes;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # THEN neither FastAPI nor Starlette was imported
    assert out.strip() == "[]"
