"""The OpenAPI 3.1 document of every served route, with examples that work against the served model.

Where a model is loaded, each candidate example (``openapi_requests``, built from its manifest)
is run once through the same route code that serves requests; the ones the model answers stay,
with that very answer as the response example, and each carries a curl line. While no model is
loaded, stand-in manifests give static examples. Built on the first ``/openapi.json`` request and
again only when the served model changes; pure data, no FastAPI import.
"""

from __future__ import annotations

import datetime as dt
import logging
import shlex
from typing import TYPE_CHECKING, Any

from modelfn._version import __version__
from modelfn.errors import ModelfnError
from modelfn.serving.inference import media_type
from modelfn.serving.multipart import MULTIPART
from modelfn.serving.openapi_examples import JSON, Example, data_uri
from modelfn.serving.openapi_routes import HEADER_DOCS, ROUTES, TAGS, Route
from modelfn.serving.openapi_schemas import SCHEMAS, error_example, error_responses, ref

if TYPE_CHECKING:
    from modelfn.bundle.manifest import Manifest
    from modelfn.serving.responses import Response
    from modelfn.serving.state import ModelState

logger = logging.getLogger("modelfn.serving")

BASE_URL = "http://127.0.0.1:8080"
"""Where ``modelfn serve`` listens by default; the curl lines use it."""
MAX_INLINE_CURL = 400
"""Longer JSON bodies are shown in the curl line as ``-d @request.json``."""
MAX_TEXT_LINES = 30
Answers = dict[tuple[Any, str], "Response | None"]
FILES = {
    "image/png": "image.png",
    "image/jpeg": "image.jpg",
    "text/csv": "rows.csv",
    "application/x-npy": "tensor.npy",
    "application/octet-stream": "request.bin",
    "text/plain": "input.txt",
}


def openapi_document(state: ModelState) -> dict[str, Any]:
    """The whole document for what ``state`` serves now."""
    bundle = state.bundle
    manifests = [bundle.manifest] if bundle is not None else stand_ins()
    name, version = manifests[0].name, str(manifests[0].version)
    if bundle is None and state.model_name:  # the configured model: its paths answer 503 until it loads
        name = state.model_name
    paths: dict[str, dict[str, Any]] = {}
    answers: Answers = {}  # a route with and without its version segment answers alike: run each example once
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, state if bundle is not None else None, manifests, name, version, answers
        )
    served = (
        f"Serving **{name}** version {version} (root digest `{bundle.root_digest}`): the examples below are"
        " requests this model answers, with its answers."
        if bundle is not None
        else "No model is loaded yet: the examples are static (an iris classifier and an image classifier)."
    )
    description = (
        f"{served}\n\nSigned-model inference. The same routes answer on Lambda (Mangum) and in containers"
        ' (`modelfn serve`). Errors are JSON `{"error", "code", "field"}`: 4xx for bad input, naming the'
        " field; 503 with Retry-After while no verified model is loaded."
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelfn", "version": __version__, "description": description},
        "tags": TAGS,
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


def _operation(
    route: Route, state: ModelState | None, manifests: list[Manifest], name: str, version: str, answers: Answers
) -> Any:
    path = route.path.replace("{name}", name).replace("{version}", version)
    operation: dict[str, Any] = {
        "tags": [route.tag],
        "summary": route.summary,
        "operationId": _operation_id(route),
        "parameters": [
            _path_param(p, name if p == "name" else version) for p in ("name", "version") if f"{{{p}}}" in route.path
        ],  # fmt: skip
    }
    kept: list[tuple[Example, Response | None]] = []
    seen: set[str] = set()
    for manifest in manifests:
        for example in route.examples(manifest) if route.examples is not None else []:
            if example.name in seen:
                continue
            seen.add(example.name)
            key = (route.examples, example.name)
            if key not in answers:
                answers[key] = _answer(state, route, path, example) if state is not None else None
            answer = answers[key]
            if state is None or answer is not None:
                kept.append((example, answer))
    curls = [_curl(route.method, path, example) for example, _ in kept] or [_curl(route.method, path, None)]
    operation["description"] = f"{route.description}\n\n```\n{curls[0]}\n```"
    operation["parameters"] += [_header_param(h, kept) for h in route.headers]
    if route.requests is not None:
        content = {media: dict(doc) for media, doc in route.requests.items()}
        for (example, _), curl in zip(kept, curls, strict=False):
            entry = content.setdefault(example.media_type, {"schema": {}})
            entry.setdefault("examples", {})[example.name] = {**example.document(), "description": f"`{curl}`"}
        operation["requestBody"] = {"required": True, "content": content}
    ok: dict[str, dict[str, Any]] = {media: dict(doc) for media, doc in route.ok.items()}
    if route.method == "GET" and state is not None:
        answer = _answer(state, route, path, None)
        if answer is not None:
            _add_answer(ok, "served", answer)
    elif state is not None:
        for example, answer in kept:
            if answer is not None:
                _add_answer(ok, example.name, answer)
    if state is None and route.static_ok is not None:
        media = next(iter(ok))
        ok[media]["example"] = route.static_ok
    responses: dict[str, Any] = {"200": {"description": "OK", "content": ok}}
    responses.update(error_responses(route.errors, route.error_schema))
    for status, schema in route.special.items():
        responses[str(status)]["content"][JSON] = {"schema": ref(schema), "example": _special(schema, status, name)}
    operation["responses"] = responses
    return operation


def _answer(state: ModelState | None, route: Route, path: str, example: Example | None) -> Response | None:
    """The served model's answer to an example, or None (the example is left out) when it is refused."""
    from modelfn.serving.routes import dispatch

    if state is None:
        return None
    headers = {} if example is None else {"content-type": example.request_content_type, **dict(example.headers)}
    headers = {k.lower(): v for k, v in headers.items()}
    try:
        answer = dispatch(state, route.method, path, headers, b"" if example is None else example.body)
    except ModelfnError as exc:
        logger.debug("OpenAPI example %s for %s %s left out: %s", example and example.name, route.method, path, exc)
        return None
    except Exception:  # an example must never break the docs page
        logger.warning("OpenAPI example for %s %s failed", route.method, path, exc_info=True)
        return None
    return answer if 200 <= answer.status < 300 else None


def _add_answer(ok: dict[str, Any], name: str, answer: Response) -> None:
    import orjson

    media = media_type(answer.content_type)
    if media == JSON:
        shown: dict[str, Any] = {"value": orjson.loads(answer.body)}
    elif media.startswith("text/"):  # /metrics: the first lines are enough to show the format
        lines = answer.body.decode("utf-8", errors="replace").splitlines()
        shown = {"value": "\n".join(lines[:MAX_TEXT_LINES] + (["..."] if len(lines) > MAX_TEXT_LINES else []))}
    else:
        shown = {"externalValue": data_uri(answer.content_type, answer.body)}
    headers = {k: v for k, v in answer.headers if k.startswith(("inference-", "x-tensor-"))}
    if headers:
        shown["description"] = "Response headers: " + ", ".join(f"`{k}: {v}`" for k, v in headers.items())
    ok.setdefault(media, {"schema": {}}).setdefault("examples", {})[name] = shown


def _curl(method: str, path: str, example: Example | None) -> str:
    """A curl line that sends ``example`` to ``modelfn serve`` on its default port."""
    parts = ["curl", "-s"] + (["-X", method] if method != "GET" else []) + [shlex.quote(BASE_URL + path)]
    if example is None:
        return " ".join(parts)
    for header, value in example.headers:
        parts += ["-H", shlex.quote(f"{header}: {value}")]
    if example.media_type == MULTIPART:
        field = example.form_field or "data"
        media = example.body.split(b"Content-Type: ", 1)[1].split(b"\r\n", 1)[0].decode()
        return " ".join([*parts, "-F", shlex.quote(f"{field}=@{FILES.get(media, 'rows.json')};type={media}")])
    parts += ["-H", shlex.quote(f"content-type: {example.media_type}")]
    if example.media_type == JSON and len(example.body) <= MAX_INLINE_CURL:
        return " ".join([*parts, "-d", shlex.quote(example.body.decode())])
    return " ".join([*parts, "--data-binary", "@" + FILES.get(example.media_type, "request.json")])


def _operation_id(route: Route) -> str:
    words = route.path.replace("{", "").replace("}", "").replace(":", "/").strip("/").replace("/", "_")
    return f"{route.method.lower()}_{words or 'root'}"


def _path_param(param: str, example: str) -> dict[str, Any]:
    text = "the served model's name" if param == "name" else "the served model's version (an integer)"
    return {"name": param, "in": "path", "required": True, "schema": {"type": "string"}, "description": text,
            "example": example}  # fmt: skip


def _header_param(header: str, kept: list[tuple[Example, Response | None]]) -> dict[str, Any]:
    examples = {e.name: {"value": v} for e, _ in kept for h, v in e.headers if h == header}
    param: dict[str, Any] = {"name": header, "in": "header", "required": False, "schema": {"type": "string"}}
    param["description"] = HEADER_DOCS[header]
    if examples:
        param["examples"] = examples
    return param


def _special(schema: str, status: int, name: str) -> dict[str, Any]:
    error = error_example(status)
    if schema == "Ping":
        return {"status": "Unhealthy", **error}
    unavailable = {"error_code": "UNAVAILABLE", "error_message": error["error"]}
    versions = [{"version": "", "state": "LOADING", "status": unavailable}]
    return {**error, "name": name, "ready": False, "model_version_status": versions}


def stand_ins() -> list[Manifest]:
    """Manifests for the static examples: an iris classifier with named features, and an image classifier."""
    from modelfn.bundle.manifest import FrameworkInfo, Manifest, TensorSpec
    from modelfn.bundle.processing import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        ImageProcessing,
        OutputProcessing,
        Processing,
        RecordProcessing,
    )

    when = dt.datetime(2024, 4, 9, tzinfo=dt.UTC)
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    iris = Manifest(
        name="iris",
        version=1,
        framework=FrameworkInfo(name="sklearn"),
        inputs=[TensorSpec(name="x", dtype="float32", shape=[-1, 4])],
        outputs=[TensorSpec(name="y", dtype="float32", shape=[-1, 3])],
        labels=["setosa", "versicolor", "virginica"],
        processing=Processing(
            records=RecordProcessing(features=features, input="x"), output=OutputProcessing(output="y")
        ),  # fmt: skip
        created_at=when,
        modelfn_version=__version__,
    )
    image = ImageProcessing(
        input="image", size=[224, 224], resize=256, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)
    )
    classifier = Manifest(
        name="classifier",
        version=1,
        framework=FrameworkInfo(name="torch"),
        inputs=[TensorSpec(name="image", dtype="float32", shape=[-1, 3, 224, 224])],
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[-1, 3])],
        labels=["cat", "dog", "bird"],
        processing=Processing(image=image, output=OutputProcessing(output="logits", activation="softmax")),
        created_at=when,
        modelfn_version=__version__,
    )
    return [iris, classifier]
