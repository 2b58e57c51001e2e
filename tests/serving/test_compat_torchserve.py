"""TorchServe / MMS inference API: /predictions in every body form, /ping, images refused without preprocessing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelfn.errors import ModelNotReady
from modelfn.serving.asgi import create_app
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import LABELS, _bundle, expected_linear, linear_onnx, manifest, served

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 0.5, 0.0]]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def softmax(y: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    e = np.exp(y.astype(np.float64) - y.max(axis=1, keepdims=True))
    out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


def expected_top(rows: list[list[float]]) -> list[dict[str, float]]:
    probabilities = softmax(expected_linear(rows)[0])
    return [{LABELS[i]: float(p[i]) for i in np.argsort(-p)} for p in probabilities]


@pytest.fixture
def plain_client() -> Iterator[SyncASGIClient]:
    """The linear model without labels: not a classifier, so answers come back per row."""
    from modelfn.bundle.manifest import TensorSpec

    spec = manifest(
        "plain",
        [TensorSpec(name="x", dtype="float32", shape=[-1, 4])],
        [TensorSpec(name="y", dtype="float32", shape=[-1, 3]), TensorSpec(name="label", dtype="int64", shape=[-1])],
    )
    client = SyncASGIClient(create_app(served(_bundle(linear_onnx(), spec))))
    yield client
    client.close()


def assert_top(answer: list[dict[str, float]], rows: list[list[float]]) -> None:
    want = expected_top(rows)
    assert [list(a) for a in answer] == [list(w) for w in want]  # labels, most probable first
    for got, expected in zip(answer, want, strict=True):
        np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=1e-5)


@pytest.mark.parametrize(
    "body",
    [ROWS, {"data": ROWS}, {"body": ROWS}, {"instances": ROWS}, {"data": {"x": ROWS}}],
    ids=["bare-list", "data", "body", "instances", "data-columns"],
)
def test_classifier_answers_top_k_label_probabilities_per_row(client: SyncASGIClient, body: object) -> None:
    # GIVEN a classifier (labels in the manifest) and each JSON form TorchServe's handlers took
    # WHEN posted to /predictions/{name} and /predictions/{name}/{version}
    response = client.post("/predictions/linear", json=body)
    versioned = client.post("/predictions/linear/3", json=body)
    # THEN one {label: probability} per row, softmax of the logits, most probable first
    assert response.status_code == 200, response.text
    assert response.json() == versioned.json()
    assert_top(response.json(), ROWS)


def test_multipart_data_field_holding_json(client: SyncASGIClient) -> None:
    # GIVEN `curl -F data=@rows.json` (a multipart form, the file typed as JSON)
    files = {"data": ("rows.json", b"[[1, 2, 3, 4]]", "application/json")}
    # WHEN posted
    response = client.post("/predictions/linear", files=files)
    # THEN it is served as the JSON body would be
    assert response.status_code == 200, response.text
    assert_top(response.json(), ROWS[:1])


def test_not_a_classifier_answers_one_value_per_row(plain_client: SyncASGIClient) -> None:
    # WHEN a model without labels is asked
    response = plain_client.post("/predictions/plain", json={"data": ROWS})
    # THEN one object per row, keyed by output
    assert response.status_code == 200, response.text
    y, label = expected_linear(ROWS)
    np.testing.assert_allclose([r["y"] for r in response.json()], y, rtol=1e-6)
    assert [r["label"] for r in response.json()] == label.tolist()


def test_plain_text_body_is_one_row_for_a_text_model(echo_client: SyncASGIClient) -> None:
    # GIVEN `curl -T sample_text.txt` (no content type) and a text/plain multipart file
    raw = echo_client.post("/predictions/echo", content="bonjour é".encode())
    typed = echo_client.post("/predictions/echo", content=b"hi", headers={"content-type": "text/plain"})
    form = echo_client.post("/predictions/echo", files={"data": ("t.txt", b"salut", "text/plain")})
    wrapped = echo_client.post("/predictions/echo", json={"data": "hallo"})
    # THEN each is one row, answered unwrapped as TorchServe does for one input
    assert (raw.json(), typed.json(), form.json(), wrapped.json()) == ("bonjour é", "hi", "salut", "hallo")
    # AND a list of texts is one answer per row
    assert echo_client.post("/predictions/echo", json={"data": ["a", "b"]}).json() == ["a", "b"]


@pytest.mark.parametrize("content_type", [None, "image/png", "application/octet-stream"])
def test_raw_image_body_is_415_without_image_preprocessing(client: SyncASGIClient, content_type: str | None) -> None:
    # GIVEN `curl -T kitten.png` (whatever the content type says)
    headers = {"content-type": content_type} if content_type else {}
    # WHEN posted to a bundle that declares no image preprocessing
    response = client.post("/predictions/linear", content=PNG, headers=headers)
    # THEN a clear 415 naming the content type
    assert response.status_code == 415
    assert "no image preprocessing" in response.json()["error"] and response.json()["field"] == "content-type"


def test_multipart_image_is_415_naming_the_field(client: SyncASGIClient) -> None:
    response = client.post("/predictions/linear", files={"data": ("kitten.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 16)})
    assert response.status_code == 415 and response.json()["field"] == "data"


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"content": b"hello"}, 415, "content-type"),  # text for a float model
        ({"json": {"data": ROWS, "extra": 1}}, 400, "extra"),
        ({"json": {"data": ROWS, "body": ROWS}}, 400, "body"),
        ({"json": {"data": [[1, 2]]}}, 422, "x"),
        ({"json": {"data": "text for a float model"}}, 422, "data"),
        ({"json": 3}, 400, "body"),
        ({"content": b"[[1, 2", "headers": {"content-type": "application/json"}}, 400, "body"),
        ({"files": {"other": ("a.json", b"[[1,2,3,4]]", "application/json")}}, 400, "data"),
        ({"content": b"no boundary", "headers": {"content-type": "multipart/form-data"}}, 400, "content-type"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(
    client: SyncASGIClient, kwargs: dict[str, Any], status: int, field: str
) -> None:
    response = client.post("/predictions/linear", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


def test_unknown_model_or_version_is_404(client: SyncASGIClient) -> None:
    assert client.post("/predictions/resnet", json=ROWS).json()["field"] == "model_name"
    assert client.post("/predictions/linear/2", json=ROWS).status_code == 404
    assert client.get("/predictions/linear").status_code == 405


def test_ping_healthy_then_unhealthy_when_not_ready(client: SyncASGIClient) -> None:
    # GIVEN a ready process and one whose model failed to load
    down = SyncASGIClient(create_app(served(None, failure=ModelNotReady("store down"))))
    try:
        unhealthy = down.get("/ping")
    finally:
        down.close()
    # THEN Healthy (200) and Unhealthy (503 + Retry-After)
    assert client.get("/ping").json() == {"status": "Healthy"}
    assert unhealthy.status_code == 503 and unhealthy.json()["status"] == "Unhealthy"
    assert "retry-after" in unhealthy.headers
