"""Declared processing on every HTTP front door: images in, named records and CSV in, labels out.

Real onnxruntime sessions over tiny models (tests.serving.processing_models), real PNG/JPEG bytes
made by Pillow, the lean ASGI app in process, and the same app under Mangum for Lambda events.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from mangum import Mangum

from modelfn.loader import LoadedBundle
from modelfn.serving.asgi import create_app
from tests.handlers.events import HTTP_SOURCES, LambdaContext, http_event
from tests.processing.images_util import png_header_only
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.processing_models import FEATURES, image_bundle, iris_bundle, solid
from tests.serving.tiny_models import LABELS, expected_linear, served

RED_PNG, BLUE_JPEG, GREEN_PNG = solid("red"), solid("blue", "JPEG"), solid("green")
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
RECORDS = [dict(zip(FEATURES, row, strict=True)) for row in ROWS]
CSV_BODY = b"petal_width,petal_length,sepal_width,sepal_length\n0.2,1.4,3.5,5.1\n2.3,5.2,3.0,6.7\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def images() -> LoadedBundle:
    return image_bundle()


@pytest.fixture(scope="module")
def iris() -> LoadedBundle:
    return iris_bundle()


@pytest.fixture
def image_client(images: LoadedBundle) -> Iterator[SyncASGIClient]:
    client = SyncASGIClient(create_app(served(images, max_body_bytes=1 << 20)))
    yield client
    client.close()


@pytest.fixture
def iris_client(iris: LoadedBundle) -> Iterator[SyncASGIClient]:
    client = SyncASGIClient(create_app(served(iris)))
    yield client
    client.close()


def _top(answer: dict[str, Any]) -> str:
    return next(iter(answer))


@pytest.mark.parametrize(
    ("body", "headers", "colour"),
    [(RED_PNG, {"content-type": "image/png"}, "red"), (BLUE_JPEG, {}, "blue"),
     (GREEN_PNG, {"content-type": "application/x-www-form-urlencoded"}, "green")],  # curl --data-binary's type
)  # fmt: skip
def test_predict_raw_image_body(
    image_client: SyncASGIClient, body: bytes, headers: dict[str, str], colour: str
) -> None:
    # WHEN a PNG or JPEG file is the whole body of POST /predict
    response = image_client.post("/predict", content=body, headers=headers)
    # THEN the logits, the chosen label and the declared top-2 come back
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["labels"] == [colour] and np.asarray(answer["predictions"]).shape == (1, 3)
    top = answer["top_k"][0]
    assert len(top) == 2 and top[0]["label"] == colour and top[0]["probability"] > 0.99


def test_predict_b64_json_batch_and_named_forms(image_client: SyncASGIClient) -> None:
    # GIVEN TF Serving's binary convention: bare {"b64"} rows, rows named by the input, and inputs columns
    plain = {"instances": [{"b64": b64(RED_PNG)}, {"b64": b64(BLUE_JPEG)}]}
    named = {"instances": [{"image": {"b64": b64(GREEN_PNG)}}], "return_labels": True}
    columns = {"inputs": {"image_bytes": [{"b64": b64(BLUE_JPEG)}, {"b64": b64(GREEN_PNG)}]}}
    # WHEN posted as JSON THEN each image gets its label, in order
    assert image_client.post("/predict", json=plain).json()["labels"] == ["red", "blue"]
    assert image_client.post("/predict", json=named).json()["labels"] == ["green"]
    assert image_client.post("/predict", json=columns).json()["labels"] == ["blue", "green"]
    # AND old clients sending the tensor itself still work
    tensor = np.zeros((1, 3, 8, 8), dtype=np.float32).tolist()
    assert image_client.post("/predict", json={"instances": tensor}).status_code == 200


def test_keras_rest_multipart_image(image_client: SyncASGIClient) -> None:
    # WHEN the Keras REST API client uploads `image`
    response = image_client.post("/predict", files={"image": ("cat.jpg", BLUE_JPEG, "image/jpeg")})
    # THEN its answer format, top-k most probable first
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and [p["label"] for p in body["predictions"]][0] == "blue"
    assert len(body["predictions"]) == 2 and body["predictions"][0]["probability"] > 0.99


def test_torchserve_raw_form_and_batch(image_client: SyncASGIClient) -> None:
    # WHEN TorchServe clients send a raw body (curl -T), a `data` form field, and two `file` fields
    raw = image_client.post("/predictions/colour", content=RED_PNG)
    form = image_client.post("/predictions/colour", files={"data": ("x.jpg", BLUE_JPEG, "image/jpeg")})
    batch = image_client.post(
        "/predictions/colour/3",
        files=[("file", ("a.png", GREEN_PNG, "image/png")), ("file", ("b.png", RED_PNG, "application/octet-stream"))],
    )
    # THEN one {label: probability} per image (unwrapped for one), most probable first
    assert raw.status_code == 200, raw.text
    assert _top(raw.json()) == "red" and len(raw.json()) == 2 and raw.json()["red"] > 0.99
    assert _top(form.json()) == "blue"
    assert [_top(row) for row in batch.json()] == ["green", "red"]


def test_tf_serving_and_kserve_v1_b64(image_client: SyncASGIClient) -> None:
    # WHEN TF Serving / KServe v1 clients send b64 rows (bare, and named image_bytes)
    rows = {"instances": [{"b64": b64(RED_PNG)}, {"image_bytes": {"b64": b64(BLUE_JPEG)}}]}
    response = image_client.post("/v1/models/colour:predict", json=rows)
    # THEN the model's outputs per row, as TF Serving answers
    assert response.status_code == 200, response.text
    assert np.argmax(response.json()["predictions"], axis=1).tolist() == [0, 2]
    # AND a truncated image is TF Serving's 400 naming the row
    bad = image_client.post("/v1/models/colour:predict", json={"instances": [{"b64": b64(BLUE_JPEG[:200])}]})
    assert bad.status_code == 400 and bad.json()["field"] == "instances"


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "field"),
    [
        ("/predict", {"content": png_header_only(20000, 20000)}, 413, "body"),  # a 20000x20000 PNG of ~60 bytes
        ("/predictions/colour", {"content": png_header_only(20000, 20000)}, 413, "body"),
        ("/predict", {"files": {"image": ("bomb.png", png_header_only(20000, 20000), "image/png")}}, 413, "image"),
        ("/predict", {"content": BLUE_JPEG[:300], "headers": {"content-type": "image/jpeg"}}, 422, "body"),
        ("/predictions/colour", {"files": {"data": ("x.jpg", BLUE_JPEG[:300], "image/jpeg")}}, 422, "data"),
        ("/predict", {"content": b"GIF89a" + b"\0" * 20}, 415, "body"),
        ("/predict", {"content": b"not a picture", "headers": {"content-type": "image/png"}}, 415, "body"),
        ("/predict", {"json": {"instances": [{"b64": "%%%"}]}}, 400, "instances[0].b64"),
        ("/predict", {"json": {"instances": [{"b64": b64(RED_PNG)}, [1, 2]]}}, 422, "instances[1]"),
        ("/predict", {"json": {"instances": [{"b64": b64(RED_PNG)}, {"b64": b64(RED_PNG[:60])}]}}, 422, "instances[1]"),
        ("/v1/models/colour:predict", {"json": {"instances": [{"b64": b64(png_header_only(9000, 9000))}]}}, 413,
         "instances"),
    ],
)  # fmt: skip
def test_image_errors_are_4xx_naming_the_field(
    image_client: SyncASGIClient, path: str, kwargs: dict[str, Any], status: int, field: str
) -> None:
    response = image_client.post(path, **kwargs)
    assert (response.status_code, response.json().get("field")) == (status, field), response.text


def test_records_by_feature_name_json_and_csv(iris_client: SyncASGIClient) -> None:
    y, _ = expected_linear(ROWS)
    want = [LABELS[i] for i in y.argmax(axis=1)]
    # WHEN /predict gets objects by feature name (keys in any order), CSV with a header, or columns by feature
    by_name = iris_client.post("/predict", json={"instances": [dict(reversed(r.items())) for r in RECORDS]})
    csv = iris_client.post("/predict", content=CSV_BODY, headers={"content-type": "text/csv"})
    columns = iris_client.post("/predict", json={"inputs": {f: [r[f] for r in RECORDS] for f in FEATURES}})
    # THEN the model ran on the features in its own order, with labels and top-k added
    for response in (by_name, csv, columns):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"]["y"], y, rtol=1e-6)
        assert response.json()["labels"] == want and response.json()["top_k"][0][0]["label"] == want[0]
        assert len(response.json()["top_k"][0]) == 3
    # AND old clients sending the tensor rows still get their keys, plus the labels
    old = iris_client.post("/predict", json={"instances": ROWS, "return_labels": True}).json()
    assert set(old) == {"predictions", "labels", "top_k"} and old["labels"] == want


def test_records_at_tf_serving_and_torchserve(iris_client: SyncASGIClient) -> None:
    y, _ = expected_linear(ROWS)
    tf = iris_client.post("/v1/models/iris:predict", json={"instances": RECORDS})
    ts = iris_client.post("/predictions/iris", content=CSV_BODY, headers={"content-type": "text/csv"})
    ts_json = iris_client.post("/predictions/iris", json={"instances": RECORDS})
    assert tf.status_code == 200, tf.text
    np.testing.assert_allclose([row["y"] for row in tf.json()["predictions"]], y, rtol=1e-6)
    assert (
        [_top(row) for row in ts.json()] == [LABELS[i] for i in y.argmax(axis=1)] == [_top(r) for r in ts_json.json()]
    )


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "field", "message"),
    [
        ("/predict", {"json": {"instances": [RECORDS[0], {**RECORDS[1], "petal_width": None}]}}, 422,
         "instances[1].petal_width", "must be a number"),
        ("/predict", {"json": {"instances": [RECORDS[0], RECORDS[0], {k: 1 for k in FEATURES[:3]}]}}, 422,
         "instances[2].petal_width", "instances[2] is missing feature 'petal_width'"),
        ("/predict", {"json": {"instances": [{**RECORDS[0], "colour": 1}]}}, 422, "instances[0].colour", "unknown"),
        ("/v1/models/iris:predict", {"json": {"instances": [{k: 1 for k in FEATURES[1:]}]}}, 400,
         "instances[0].sepal_length", "missing feature 'sepal_length'"),
        ("/predict", {"content": b"sepal_length,petal_width\n1,2\n", "headers": {"content-type": "text/csv"}}, 422,
         "body[0].sepal_width", "missing feature"),
        ("/predictions/iris", {"content": CSV_BODY.replace(b"3.0", b"abc"), "headers": {"content-type": "text/csv"}},
         422, "body[1].sepal_width", "not a number"),
    ],
)  # fmt: skip
def test_record_errors_name_row_and_feature(
    iris_client: SyncASGIClient, path: str, kwargs: dict[str, Any], status: int, field: str, message: str
) -> None:
    response = iris_client.post(path, **kwargs)
    assert (response.status_code, response.json()["field"]) == (status, field), response.text
    assert message in response.json()["error"]


def test_bundles_without_processing_keep_today_s_refusals(client: SyncASGIClient) -> None:
    # GIVEN the plain linear bundle (no declared processing)
    image = client.post("/predict", content=RED_PNG, headers={"content-type": "image/png"})
    csv = client.post("/predict", content=CSV_BODY, headers={"content-type": "text/csv"})
    # THEN an image is the 415 "declares no image preprocessing", and CSV a 415 too
    assert image.status_code == 415 and "no image preprocessing" in image.json()["error"]
    assert csv.status_code == 415 and "no records preprocessing" in csv.json()["error"]


@pytest.mark.parametrize("source", HTTP_SOURCES)
def test_lambda_events_with_base64_image_bodies(images: LoadedBundle, source: str) -> None:
    # GIVEN the same app under Mangum, and binary bodies base64-encoded as API Gateway / Function URLs / ALB pass them
    handler = Mangum(create_app(served(images)), lifespan="off")
    form = httpx.Request("POST", "http://x/", files={"image": ("c.png", GREEN_PNG, "image/png")})
    events = {
        "raw": http_event(
            source, "POST", "/predict", BLUE_JPEG, as_base64=True, headers={"content-type": "image/jpeg"}
        ),
        "torchserve": http_event(source, "POST", "/predictions/colour", RED_PNG, as_base64=True),
        "keras": http_event(source, "POST", "/predict", form.read(), as_base64=True, headers=dict(form.headers)),
        "bomb": http_event(source, "POST", "/predict", png_header_only(20000, 20000), as_base64=True),
    }
    # WHEN each is invoked
    answers = {name: handler(event, LambdaContext()) for name, event in events.items()}
    # THEN the image is decoded and classified on every event source; the bomb is a 413
    assert answers["raw"]["statusCode"] == 200, answers["raw"]
    assert json.loads(answers["raw"]["body"])["labels"] == ["blue"]
    assert _top(json.loads(answers["torchserve"]["body"])) == "red"
    assert json.loads(answers["keras"]["body"])["predictions"][0]["label"] == "green"
    assert answers["bomb"]["statusCode"] == 413


def test_a_raw_tensor_body_gets_the_declared_labels_too(image_client: SyncASGIClient) -> None:
    # GIVEN the colour bundle (output processing declared) and a preprocessed tensor of a blue picture, as .npy
    import io

    tensor = np.zeros((1, 3, 8, 8), dtype=np.float32)
    tensor[0, 2] = 1.0
    npy = io.BytesIO()
    np.save(npy, tensor)
    # WHEN sent as a raw tensor instead of an image
    answer = image_client.post("/predict", content=npy.getvalue(), headers={"content-type": "application/x-npy"})
    # THEN the answer carries the labels and top-k, as JSON and image requests do
    assert answer.status_code == 200, answer.text
    assert answer.json()["labels"] == ["blue"]
    assert answer.json()["top_k"][0][0]["label"] == "blue"


def test_v2_infer_takes_images_as_a_bytes_tensor(image_client: SyncASGIClient) -> None:
    # GIVEN two pictures as a V2 BYTES tensor: base64 strings in JSON (KServe's V2 image examples), and raw
    # elements in the binary tensor extension (what tritonclient sends for np.object_ bytes)
    import struct

    as_json = {"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": [b64(RED_PNG), b64(BLUE_JPEG)]}]}
    elements = b"".join(struct.pack("<I", len(blob)) + blob for blob in (GREEN_PNG, RED_PNG))
    header = json.dumps(
        {
            "inputs": [
                {"name": "image", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(elements)}}
            ]
        }
    ).encode()
    # WHEN each is sent to /v2/models/colour/infer
    json_answer = image_client.post("/v2/models/colour/infer", json=as_json)
    binary_answer = image_client.post(
        "/v2/models/colour/infer",
        content=header + elements,
        headers={"content-type": "application/octet-stream", "inference-header-content-length": str(len(header))},
    )
    # THEN the pictures are decoded through the declared pipeline and scored: red, blue / green, red
    for answer, colours in ((json_answer, ["red", "blue"]), (binary_answer, ["green", "red"])):
        assert answer.status_code == 200, answer.text
        logits = np.asarray(answer.json()["outputs"][0]["data"]).reshape(2, 3)
        assert [["red", "green", "blue"][i] for i in logits.argmax(axis=1)] == colours
    # AND a string that is not base64 is a 400 naming the tensor
    bad = image_client.post(
        "/v2/models/colour/infer",
        json={"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["%%"]}]},
    )
    assert bad.status_code == 400 and bad.json()["field"] == "image"


def test_a_picture_sent_as_octet_stream_is_decoded_not_read_as_a_tensor(image_client: SyncASGIClient) -> None:
    # GIVEN a JPEG sent the way many HTTP clients label arbitrary bytes
    answer = image_client.post("/predict", content=BLUE_JPEG, headers={"content-type": "application/octet-stream"})
    # THEN the image bundle decodes it through its pipeline
    assert answer.status_code == 200, answer.text
    assert answer.json()["labels"] == ["blue"]
