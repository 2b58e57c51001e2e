"""/openapi.json: valid OpenAPI 3.1, one operation per served route, and every example works against the model.

The examples are sent, as the document gives them (``value`` or a ``data:`` URI in
``externalValue``, header parameters that name the example), through the lean app that Lambda
and containers serve; the answer must be the documented one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from openapi_spec_validator import validate

from modelfn.errors import MethodNotAllowed
from modelfn.loader import LoadedBundle
from modelfn.serving import routes
from modelfn.serving.asgi import create_app
from modelfn.serving.compat_routes import CompatRouteName
from modelfn.serving.openapi_document import BASE_URL
from modelfn.serving.state import ModelState
from tests.fixtures.bundles import Published
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import served

SERVED_PATHS = {
    ("POST", "/predict"): "/predict",
    ("GET", "/metrics"): "/metrics",
    ("GET", "/v2"): "/v2",
    ("GET", "/v2/health/live"): "/v2/health/live",
    ("GET", "/v2/health/ready"): "/v2/health/ready",
    ("GET", "/v2/models/{name}"): "/v2/models/m",
    ("GET", "/v2/models/{name}/versions/{version}"): "/v2/models/m/versions/1",
    ("GET", "/v2/models/{name}/ready"): "/v2/models/m/ready",
    ("GET", "/v2/models/{name}/versions/{version}/ready"): "/v2/models/m/versions/1/ready",
    ("POST", "/v2/models/{name}/infer"): "/v2/models/m/infer",
    ("POST", "/v2/models/{name}/versions/{version}/infer"): "/v2/models/m/versions/1/infer",
    ("GET", "/ping"): "/ping",
    ("POST", "/predictions/{name}"): "/predictions/m",
    ("POST", "/predictions/{name}/{version}"): "/predictions/m/1",
    ("GET", "/v1/models"): "/v1/models",
    ("GET", "/v1/models/{name}"): "/v1/models/m",
    ("GET", "/v1/models/{name}/versions/{version}"): "/v1/models/m/versions/1",
    ("GET", "/v1/models/{name}/metadata"): "/v1/models/m/metadata",
    ("GET", "/v1/models/{name}/versions/{version}/metadata"): "/v1/models/m/versions/1/metadata",
    ("POST", "/v1/models/{name}:predict"): "/v1/models/m:predict",
    ("POST", "/v1/models/{name}/versions/{version}:predict"): "/v1/models/m/versions/1:predict",
}
"""A representative concrete path for every (method, path template) the router serves."""


def _document(state: ModelState) -> dict[str, Any]:
    client = SyncASGIClient(create_app(state))
    try:
        response = client.get("/openapi.json")
    finally:
        client.close()
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _data_uri(uri: str) -> tuple[str, bytes]:
    head, _, data = uri.partition(",")
    assert head.startswith("data:") and head.endswith(";base64"), head
    return head[len("data:") : -len(";base64")].replace(";boundary=", "; boundary="), base64.b64decode(data)


Request = tuple[str, str, str, dict[str, str], bytes, Any, set[int]]


def example_requests(document: dict[str, Any]) -> Iterator[Request]:
    """``(name, method, path, headers, body, documented answer, documented statuses)`` for every example."""
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            path = template
            headers_of: dict[str, dict[str, str]] = {}
            for param in operation["parameters"]:
                if param["in"] == "path":
                    path = path.replace("{" + param["name"] + "}", param["example"])
                for name, example in param.get("examples", {}).items():
                    headers_of.setdefault(name, {})[param["name"]] = example["value"]
            answers = {
                name: (media, example)
                for media, content in operation["responses"]["200"]["content"].items()
                for name, example in content.get("examples", {}).items()
            }
            statuses = {int(status) for status in operation["responses"]}
            if "requestBody" not in operation:
                yield "served", method.upper(), path, {}, b"", answers.get("served"), statuses
                continue
            for media, content in operation["requestBody"]["content"].items():
                for name, example in content.get("examples", {}).items():
                    if "value" in example:
                        value = example["value"]
                        body = json.dumps(value).encode() if media == "application/json" else value.encode()
                        content_type = media
                    else:
                        content_type, body = _data_uri(example["externalValue"])
                    headers = {"content-type": content_type, **headers_of.get(name, {})}
                    yield name, method.upper(), path, headers, body, answers.get(name), statuses


def _check_examples(state: ModelState, *, loaded: bool = True) -> list[str]:
    """Send every example: with a model, each answers 200 and the documented body; without, a documented status."""
    document = _document(state)
    client = SyncASGIClient(create_app(state))
    sent: list[str] = []
    try:
        for name, method, path, headers, body, answer, statuses in example_requests(document):
            # WHEN the example is sent to the served app
            response = client.request(method, path, headers=headers, content=body)
            # THEN it answers as documented
            if not loaded:
                assert response.status_code in statuses & {200, 503}, (name, method, path, response.text)
                assert response.status_code == 503 or method == "GET", (name, method, path)
            else:
                assert response.status_code == 200, (name, method, path, response.text)
                assert answer is not None, (name, path)
                media, shown = answer
                assert response.headers["content-type"].split(";")[0] == media, (name, path)
                if "value" in shown and media == "application/json":
                    assert response.json() == shown["value"], (name, path)
                elif "value" in shown:
                    assert isinstance(shown["value"], str) and response.text, (name, path)
                else:
                    assert response.content == _data_uri(shown["externalValue"])[1], (name, path)
            sent.append(f"{method} {path} {name}")
    finally:
        client.close()
    return sent


def test_the_document_is_valid_openapi_3_1_served_or_not(linear: LoadedBundle, echo: LoadedBundle) -> None:
    # GIVEN a served linear classifier, a served string model, and a server with no model yet
    for state in (served(linear), served(echo), served(None)):
        # WHEN its document is fetched
        document = _document(state)
        # THEN it validates as OpenAPI 3.1 and every operation is tagged, summarized and has a curl line
        validate(document)
        assert document["openapi"] == "3.1.0"
        for operations in document["paths"].values():
            for operation in operations.values():
                assert operation["tags"] and operation["summary"]
                assert "curl -s" in operation["description"]


def test_every_served_route_has_an_operation_and_every_operation_is_served(linear: LoadedBundle) -> None:
    # GIVEN the document of a served model
    document = _document(served(linear))
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    # THEN the representative paths cover every route the router knows
    kinds = {routes.match(path)[0] for path in SERVED_PATHS.values()}  # type: ignore[index]
    assert kinds == set(get_args(routes.RouteName)) | set(get_args(CompatRouteName))
    # AND every documented operation is one the router serves with that method, and the reverse
    assert documented == set(SERVED_PATHS)
    for (method, _), path in SERVED_PATHS.items():
        route = routes.match(path)
        assert route is not None, path
        routes.check_method(route[0], method)
        other = "GET" if method == "POST" else "POST"
        with pytest.raises(MethodNotAllowed):
            routes.check_method(route[0], other)


def test_every_operation_documents_its_errors_with_the_error_shape(linear: LoadedBundle) -> None:
    document = _document(served(linear))
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            # THEN every route documents 405 (with Allow) and the statuses its inputs can cause
            assert "405" in responses and "Allow" in responses["405"]["headers"], (method, path)
            if method == "post":
                assert {"400", "413", "415", "503"} <= set(responses), (method, path)
                assert "Retry-After" in responses["503"]["headers"]
            for status, response in responses.items():
                if status == "200":
                    continue
                body = response["content"]["application/json"]
                name = body["schema"]["$ref"].rsplit("/", 1)[1]
                # AND each error example has the documented shape: TF Serving's {"error"}, else {error, code, field}
                required = schemas[name]["required"]
                assert set(required) <= set(body["example"]), (path, status)
                if path.startswith("/v1/"):
                    assert name in ("TFServingError", "TFModelStatus") and "error" in body["example"]
                elif name == "Error":
                    assert {"error", "code", "field"} <= set(body["example"]), (path, status)


def test_examples_come_from_the_served_manifest_and_each_answers_as_documented(linear: LoadedBundle) -> None:
    # GIVEN the linear classifier (x float32 [-1, 4], labels) being served
    state = served(linear)
    # WHEN every example request in its document is sent to the app
    sent = _check_examples(state)
    # THEN each answered 200 with the documented body, and every protocol and form has examples
    names = {line.split()[0] + " " + line.split()[-1] for line in sent}
    for expected in ["POST instances", "POST inputs", "POST return_labels", "POST keras_json", "POST json",
                     "POST json_outputs", "POST binary", "POST row", "POST columnar", "POST signature", "POST list",
                     "POST data", "POST form_json", "GET served"]:  # fmt: skip
        assert expected in names, expected
    document = _document(state)
    predict = document["paths"]["/predict"]["post"]
    example = predict["requestBody"]["content"]["application/json"]["examples"]["instances"]
    assert example["value"] == {"instances": [[0.5, 1.0, 1.5, 2.0]]}
    labelled = predict["responses"]["200"]["content"]["application/json"]["examples"]["return_labels"]["value"]
    assert labelled["labels"] == ["virginica"]
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["parameters"][0]["example"] == "linear"
    binary = infer["responses"]["200"]["content"]["application/octet-stream"]["examples"]["binary"]
    assert "inference-header-content-length" in binary["description"]


def test_a_string_model_gets_text_examples(echo: LoadedBundle) -> None:
    # GIVEN a string-input model: WHEN its examples are sent, THEN each answers as documented, text included
    sent = _check_examples(served(echo))
    assert any(line.endswith(" text") and "/predictions/echo" in line for line in sent)
    assert not any(line.endswith(" octet_stream") for line in sent)  # strings have no raw byte form


def test_without_a_model_the_examples_are_static_and_answer_503() -> None:
    # GIVEN a server whose model is not loaded yet
    state = served(None)
    document = _document(state)
    predict = document["paths"]["/predict"]["post"]["requestBody"]["content"]
    # THEN static examples show every form /predict takes
    assert {"instances", "inputs", "records", "image_b64"} <= set(predict["application/json"]["examples"])
    assert "csv" in predict["text/csv"]["examples"] and "keras_image" in predict["multipart/form-data"]["examples"]
    assert "image_body" in predict["image/png"]["examples"]
    assert "Retry-After" in document["paths"]["/ping"]["get"]["responses"]["503"]["headers"]
    # AND each of them is answered 503 (documented) while no model is loaded (GET /v2, live and metrics 200)
    assert len(_check_examples(state, loaded=False)) > 20


def test_the_document_is_rebuilt_once_the_model_loads(linear: LoadedBundle) -> None:
    # GIVEN a container still loading its model, whose docs were already read
    state = ModelState.pending(served(linear).settings)
    app = create_app(state)
    client = SyncASGIClient(app)
    try:
        before = client.get("/openapi.json").json()
        # WHEN the model loads
        state.record(linear)
        after = client.get("/openapi.json").json()
    finally:
        client.close()
    # THEN the examples switch from static to the served model's
    assert "No model is loaded" in before["info"]["description"]
    assert "Serving **linear** version 3" in after["info"]["description"]
    assert after["paths"]["/v2/models/{name}"]["get"]["parameters"][0]["example"] == "linear"


def test_curl_lines_send_the_examples(linear: LoadedBundle) -> None:
    # GIVEN the document of a served model
    document = _document(served(linear))
    operation = document["paths"]["/v1/models/{name}:predict"]["post"]
    for example in operation["requestBody"]["content"]["application/json"]["examples"].values():
        # WHEN the example's curl line is parsed as a shell would
        args = shlex.split(example["description"].strip("`"))
        # THEN it posts the example body as JSON to the served model's path
        assert args[:4] == ["curl", "-s", "-X", "POST"]
        assert args[4] == "http://127.0.0.1:8080/v1/models/linear:predict"
        assert json.loads(args[args.index("-d") + 1]) == example["value"]
        assert "content-type: application/json" in args


def test_the_document_builder_needs_no_web_framework_nor_pillow() -> None:
    # WHEN the document modules are imported in a fresh interpreter
    code = (
        "import sys, modelfn.serving.openapi_document;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'pydantic', 'PIL')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # THEN neither FastAPI, pydantic nor Pillow came with them (the example picture is written with zlib)
    assert out.strip() == "[]"


@pytest.fixture
def served_url(local_published: Published, tmp_path: Path) -> Iterator[str]:
    """A real ``modelfn serve`` (uvicorn) of the tiny model on a free 127.0.0.1 port, until it is ready."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = (tmp_path / "serve.log").open("wb")
    command = [sys.executable, "-m", "modelfn.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env={**os.environ, **local_published.env}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(base + "/ping"):
            assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.mark.slow
def test_every_documented_curl_line_works_against_modelfn_serve(served_url: str, tmp_path: Path) -> None:
    # GIVEN the document a real `modelfn serve` publishes
    with urllib.request.urlopen(served_url + "/openapi.json", timeout=30) as response:
        document = json.loads(response.read())
    lines: list[tuple[str, bytes]] = []
    for operations in document["paths"].values():
        for operation in operations.values():
            examples = [
                (example["description"].strip("`"), _body_of(media, example))
                for media, content in operation.get("requestBody", {}).get("content", {}).items()
                for example in content.get("examples", {}).values()
            ]
            lines += examples or [(operation["description"].split("```\n")[1].split("\n")[0], b"")]
    assert len(lines) > 40
    for index, (line, body) in enumerate(lines):
        # WHEN each curl line is run by the real curl, with the file it uploads (if any) beside it
        cwd = tmp_path / str(index)
        cwd.mkdir()
        for token in shlex.split(line):
            if "@" in token:
                (cwd / token.split("@", 1)[1].split(";", 1)[0]).write_bytes(body)
        command = line.replace(BASE_URL, served_url) + " -o answer -w '%{http_code}'"
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=cwd, timeout=60, check=True)
        # THEN the served model answers 200
        assert out.stdout == "200", (line, (cwd / "answer").read_bytes()[:300])


def _body_of(media: str, example: dict[str, Any]) -> bytes:
    """What a curl line's ``@file`` holds: the body, or for a form the one part's content."""
    if "value" in example:
        value = example["value"]
        return json.dumps(value).encode() if media == "application/json" else str(value).encode()
    body = _data_uri(example["externalValue"])[1]
    if media == "multipart/form-data":
        return body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
    return body


def test_behind_a_path_prefix_the_document_names_it(linear: LoadedBundle) -> None:
    # GIVEN the app behind a path prefix (an API Gateway stage sets the ASGI root_path)
    app = create_app(served(linear))

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, root_path="/prod")
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get("/openapi.json")

    # WHEN the document is fetched
    response = asyncio.run(fetch())
    # THEN it names the prefix as its server, so Swagger UI's requests reach the routes
    assert response.status_code == 200 and response.json()["servers"] == [{"url": "/prod"}]
    assert "Serving **linear**" in response.json()["info"]["description"]
