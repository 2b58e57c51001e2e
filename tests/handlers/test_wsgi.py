"""The WSGI handler running the unchanged Flask example (examples/flask-rest-api/app.py) on real events.

Each test publishes a signed model to a store, points ``MODELFN_*`` at it, and imports
``modelfn.handlers.wsgi`` afresh, as Lambda's init does: the handler imports the app, the app calls
``modelfn.load``, and requests arrive as the stored API Gateway REST/HTTP API, Function URL and ALB
events. Models are tiny ONNX graphs built with ``onnx.helper``: a 4-feature softmax classifier and
an 8x8 RGB "colour" classifier whose answer is the image's dominant channel.
"""

from __future__ import annotations

import importlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelfn.bundle.manifest import Manifest
from modelfn.errors import ConfigError
from modelfn.serving.metrics import METRICS, MODEL_LOAD_FAILED
from tests.fixtures.bundles import Published, publish
from tests.fixtures.keys import SigningKey
from tests.handlers.events import HTTP_SOURCES, LambdaContext, http_event, response_body, response_headers
from tests.handlers.rie import Emulator

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "flask-rest-api"
W = np.array([[2.0, -1.0, 0.0], [0.5, 1.0, -1.0], [-2.0, 1.0, 2.5], [-1.0, 0.0, 2.0]], dtype=np.float32)
B = np.array([0.5, 0.2, -0.5], dtype=np.float32)
SPECIES = ["setosa", "versicolor", "virginica"]
COLOURS = ["red", "green", "blue"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5], [5.9, 3.0, 4.2, 1.5]]

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def softmax(z: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float32)


def _classifier_bundle(out: Path, *, name: str, image: bool, labels: list[str]) -> Path:
    """Package a tiny softmax classifier (ONNX pass-through) and add class labels to its manifest."""
    from onnx import TensorProto, helper, numpy_helper

    from modelfn.packaging import package

    if image:  # mean colour per channel, sharpened: the dominant channel wins
        nodes = [
            helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("Mul", ["mean", "k"], ["logits"]),
        ]
        inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 3])]
        weights = [numpy_helper.from_array(np.array(10.0, dtype=np.float32), "k")]
    else:
        nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["logits"])]
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]
        weights = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")]
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    graph = helper.make_graph(
        nodes, name, inputs, [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])], weights
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (out / "src").mkdir(parents=True)
    (out / "src" / f"{name}.onnx").write_bytes(model.SerializeToString())
    bundle = out / name
    package(out / "src" / f"{name}.onnx", None, bundle, name=name, version=1)
    manifest = Manifest.from_json((bundle / "manifest.json").read_bytes()).replace(labels=labels)
    (bundle / "manifest.json").write_bytes(manifest.to_json())
    return bundle


@pytest.fixture
def tabular(tmp_path: Path, signing_key: SigningKey) -> Published:
    """The 4-feature classifier with species labels, signed and pushed to a local store."""
    bundle = _classifier_bundle(tmp_path / "tabular", name="iris-like", image=False, labels=SPECIES)
    return publish(bundle, str(tmp_path / "store"), signing_key)


@pytest.fixture
def colours(tmp_path: Path, signing_key: SigningKey) -> Published:
    """The 8x8 RGB colour classifier, signed and pushed to a local store."""
    bundle = _classifier_bundle(tmp_path / "image", name="colours", image=True, labels=COLOURS)
    return publish(bundle, str(tmp_path / "store"), signing_key)


def _wsgi_env(published: Published, **extra: str) -> dict[str, str]:
    return {**published.env, "MODELFN_WSGI_APP": "app:app", **extra}


@pytest.fixture
def import_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], Handler]]:
    """Import ``modelfn.handlers.wsgi`` afresh (a Lambda init) with ``env``; return its ``handler``."""
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))

    def fresh(env: dict[str, str]) -> Handler:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for module in ("app", "modelfn.handlers.wsgi"):
            sys.modules.pop(module, None)
        handler: Handler = importlib.import_module("modelfn.handlers.wsgi").handler
        return handler

    yield fresh
    for module in ("app", "modelfn.handlers.wsgi"):
        sys.modules.pop(module, None)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (20, 12)) -> bytes:
    """A solid-colour PNG; the app resizes it to the model's 8x8 input."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field, as curl -F or requests' files= send it."""
    from urllib3 import encode_multipart_formdata

    body, header = encode_multipart_formdata({field: (filename, data, content_type)})
    return body, header


def _json(response: dict[str, Any]) -> Any:
    return json.loads(response_body(response))


@pytest.mark.parametrize("source", HTTP_SOURCES)
@pytest.mark.parametrize("as_base64", [False, True])
def test_json_rows_get_the_labels_of_the_verified_model(
    import_handler: Callable[[dict[str, str]], Handler], tabular: Published, source: str, as_base64: bool
) -> None:
    # GIVEN the Flask app behind the WSGI handler, its model verified and loaded at import
    handler = import_handler(_wsgi_env(tabular))
    # WHEN JSON rows arrive through this front door (plain or base64 body)
    body = json.dumps({"rows": ROWS}).encode()
    event = http_event(
        source, "POST", "/predict", body, as_base64=as_base64, headers={"content-type": "application/json"}
    )
    response = handler(event, LambdaContext())
    # THEN each row gets its most likely label and that label's probability
    assert response["statusCode"] == 200, response
    assert response_headers(response)["content-type"] == "application/json"
    answer = _json(response)
    expected = softmax(np.asarray(ROWS, dtype=np.float32) @ W + B)
    assert answer["success"] is True
    assert [p["label"] for p in answer["predictions"]] == [SPECIES[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose([p["probability"] for p in answer["predictions"]], expected.max(axis=1), rtol=1e-5)
    assert len({p["label"] for p in answer["predictions"]}) > 1  # the rows really are told apart


@pytest.mark.parametrize("source", HTTP_SOURCES)
def test_image_upload_as_base64_multipart(
    import_handler: Callable[[dict[str, str]], Handler], colours: Published, source: str
) -> None:
    # GIVEN the app serving the colour classifier
    handler = import_handler(_wsgi_env(colours))
    for colour, expected in (((250, 10, 10), "red"), ((5, 40, 220), "blue")):
        # WHEN a PNG is uploaded as the "image" field of a multipart form (base64 in the event, as API Gateway sends it)
        body, content_type = multipart("image", "photo.png", png(colour), "image/png")
        event = http_event(source, "POST", "/predict", body, as_base64=True, headers={"content-type": content_type})
        response = handler(event, LambdaContext())
        # THEN the top predictions are ranked label/probability pairs, the dominant colour first
        assert response["statusCode"] == 200, response
        answer = _json(response)
        assert answer["success"] is True
        assert [p["label"] for p in answer["predictions"]][0] == expected
        probabilities = [p["probability"] for p in answer["predictions"]]
        assert probabilities == sorted(probabilities, reverse=True) and len(probabilities) == 3
        assert probabilities[0] > 0.9


def test_input_that_does_not_fit_the_schema_is_a_422_naming_the_input(
    import_handler: Callable[[dict[str, str]], Handler], tabular: Published
) -> None:
    # GIVEN the app, which passes the rows straight to Predictor.predict
    handler = import_handler(_wsgi_env(tabular))
    # WHEN rows have two features instead of four
    body = json.dumps({"rows": [[1.0, 2.0]]}).encode()
    response = handler(http_event("http_api_v2", "POST", "/predict", body), LambdaContext())
    # THEN modelfn's typed error reaches the client as a 422 (not Flask's 500), naming the input
    assert response["statusCode"] == 422, response
    answer = _json(response)
    assert answer["success"] is False
    assert answer["code"] == "unprocessable_input" and answer["field"] == "x"


def test_a_request_without_input_is_the_apps_own_400(
    import_handler: Callable[[dict[str, str]], Handler], tabular: Published
) -> None:
    handler = import_handler(_wsgi_env(tabular))
    # WHEN the body is not JSON the app understands
    response = handler(http_event("alb", "POST", "/predict", b"{not json"), LambdaContext())
    # THEN the app answers as it always did
    assert response["statusCode"] == 400
    assert _json(response)["success"] is False


def test_a_body_over_the_limit_is_413_before_the_app_runs(
    import_handler: Callable[[dict[str, str]], Handler], tabular: Published
) -> None:
    # GIVEN a 1 KiB front-door limit
    handler = import_handler(_wsgi_env(tabular, MODELFN_MAX_BODY_BYTES="1024"))
    # WHEN a 2 KiB body arrives
    body = json.dumps({"rows": [[1.0, 2.0, 3.0, 4.0]] * 80}).encode()
    assert len(body) > 1024
    response = handler(http_event("apigw_rest_v1", "POST", "/predict", body), LambdaContext())
    # THEN it is refused with 413 naming the limit
    assert response["statusCode"] == 413
    answer = _json(response)
    assert answer["code"] == "payload_too_large" and "1024" in answer["error"]


def test_too_little_of_the_lambda_deadline_left_is_503_not_a_gateway_timeout(
    import_handler: Callable[[dict[str, str]], Handler], tabular: Published
) -> None:
    handler = import_handler(_wsgi_env(tabular))
    # WHEN an invocation arrives with 50 ms left
    event = http_event("function_url", "POST", "/predict", json.dumps({"rows": ROWS}).encode())
    response = handler(event, LambdaContext(remaining_ms=50))
    # THEN it is answered 503 + Retry-After at once instead of running past the deadline
    assert response["statusCode"] == 503
    assert _json(response)["code"] == "deadline_exceeded"
    assert response_headers(response)["retry-after"] == "1"
    # AND with time left the same request is served
    assert handler(event, LambdaContext())["statusCode"] == 200


@pytest.mark.parametrize("attack", ["tampered", "untrusted"])
def test_a_bundle_that_fails_verification_is_never_served(
    import_handler: Callable[[dict[str, str]], Handler],
    tabular: Published,
    other_signing_key: SigningKey,
    attack: str,
) -> None:
    # GIVEN a model modified after signing, or trusted keys that do not include its signer
    env = _wsgi_env(tabular)
    if attack == "tampered":
        path = Path(tabular.settings.store_url) / tabular.name / "1" / "model.onnx"
        path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    else:
        env["MODELFN_TRUSTED_KEYS"] = str(other_signing_key.public_path)
    failures = METRICS.count(MODEL_LOAD_FAILED)
    # WHEN the function initialises and a prediction is requested
    handler = import_handler(env)
    response = handler(http_event("http_api_v2", "POST", "/predict", json.dumps({"rows": ROWS}).encode()), None)
    # THEN it answers 503 + Retry-After naming the refusal, and counts a failed load
    assert response["statusCode"] == 503
    assert int(response_headers(response)["retry-after"]) > 0
    answer = _json(response)
    assert answer["code"] == "model_not_ready" and "predictions" not in answer
    assert ("integrity" if attack == "tampered" else "untrusted_key") in answer["error"]
    assert METRICS.count(MODEL_LOAD_FAILED) == failures + 1


@pytest.mark.parametrize(
    ("wsgi_app", "message"),
    [
        (None, "MODELFN_WSGI_APP"),
        ("app", "module:attribute"),
        ("no_such_module_here:app", "no module named 'no_such_module_here'"),
        ("app:no_such_app", "has no 'no_such_app'"),
        ("app:STORE_URL", "is not a WSGI app"),
    ],
)
def test_a_wrong_app_setting_fails_the_init_loudly(
    import_handler: Callable[[dict[str, str]], Handler],
    tabular: Published,
    monkeypatch: pytest.MonkeyPatch,
    wsgi_app: str | None,
    message: str,
) -> None:
    # GIVEN a MODELFN_WSGI_APP that names no WSGI app (or none at all)
    env = _wsgi_env(tabular)
    if wsgi_app is None:
        del env["MODELFN_WSGI_APP"]
        monkeypatch.delenv("MODELFN_WSGI_APP", raising=False)
    else:
        env["MODELFN_WSGI_APP"] = wsgi_app
    # WHEN the handler module is imported (Lambda init) THEN a ConfigError names the setting
    with pytest.raises(ConfigError, match=message) as caught:
        import_handler(env)
    assert caught.value.field == "wsgi_app"


@pytest.mark.slow
def test_the_flask_app_inside_the_lambda_emulator(colours: Published, tmp_path: Path) -> None:
    # GIVEN the real Lambda runtime emulator running modelfn.handlers.wsgi.handler with the example app
    env = {**_wsgi_env(colours), "PYTHONPATH": str(EXAMPLE_DIR)}
    rie = Emulator(env, tmp_path / "rie.log", handler="modelfn.handlers.wsgi.handler")
    try:
        # WHEN a base64 multipart image upload arrives as an HTTP API event
        body, content_type = multipart("image", "green.png", png((20, 230, 30)), "image/png")
        event = http_event(
            "http_api_v2", "POST", "/predict", body, as_base64=True, headers={"content-type": content_type}
        )
        response = rie.invoke(event)
        # THEN the app answers with the verified model's prediction
        assert response["statusCode"] == 200, (response, (tmp_path / "rie.log").read_text()[-2000:])
        answer = _json(response)
        assert answer["success"] is True and answer["predictions"][0]["label"] == "green"
    finally:
        rie.stop()
