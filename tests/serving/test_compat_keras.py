"""Keras REST API style ``POST /predict`` with a multipart ``image`` field; JSON /predict unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import LABELS, expected_linear

ROW = [1.0, 2.0, 3.0, 4.0]


def test_multipart_image_field_answers_top_k_success(client: SyncASGIClient) -> None:
    # GIVEN the model's input for one instance in the `image` field (curl -F "image=@row.json;type=application/json")
    files = {"image": ("row.json", b"[1, 2, 3, 4]", "application/json")}
    # WHEN posted to /predict as a multipart form
    response = client.post("/predict", files=files)
    # THEN the Keras REST API answer: success and label/probability pairs, most probable first
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    y = expected_linear([ROW])[0][0].astype(np.float64)
    probabilities = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    assert [p["label"] for p in body["predictions"]] == [LABELS[i] for i in np.argsort(-probabilities)]
    np.testing.assert_allclose([p["probability"] for p in body["predictions"]], np.sort(probabilities)[::-1], rtol=1e-5)


def test_json_predict_is_unchanged(client: SyncASGIClient) -> None:
    # WHEN /predict gets JSON
    response = client.post("/predict", json={"instances": [ROW]})
    # THEN today's simple protocol answers
    assert response.status_code == 200 and set(response.json()["predictions"]) == {"y", "label"}


@pytest.mark.parametrize(
    ("files", "status"),
    [
        ({"image": ("cat.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 16, "image/jpeg")}, 415),
        ({"image": ("cat.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 16, "application/octet-stream")}, 415),
        ({"picture": ("row.json", b"[1, 2, 3, 4]", "application/json")}, 400),
        ({"image": ("row.json", b"[1, 2, 3]", "application/json")}, 422),
        ({"image": ("row.json", b"[1, 2", "application/json")}, 400),
    ],
    ids=["jpeg", "png-sniffed", "no-image-field", "wrong-shape", "bad-json"],
)
def test_bad_uploads_are_4xx_naming_the_field(
    client: SyncASGIClient, files: dict[str, tuple[str, bytes, str]], status: int
) -> None:
    response = client.post("/predict", files=files)
    assert response.status_code == status, response.text
    assert response.json()["field"] in ("image", "x")
    if status == 415:
        assert "no image preprocessing" in response.json()["error"]


def test_model_without_class_scores_is_422(echo_client: SyncASGIClient) -> None:
    # GIVEN a text model (no float output): there is no class to rank
    response = echo_client.post("/predict", files={"image": ("t.txt", b"hello", "text/plain")})
    assert response.status_code == 422 and response.json()["field"] == "image"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda a, b: b"--b\r\n" + a + b"\r\n--b--\r\n" + b, st.binary(max_size=120), st.binary(max_size=20)),
    ),
    content_type=st.sampled_from(
        [
            "multipart/form-data; boundary=b",
            "multipart/form-data",
            'multipart/form-data; boundary=""',
            "multipart/form-data; boundary=b; x*=utf-8''%ff",
        ]
    ),
    path=st.sampled_from(["/predict", "/predictions/linear"]),
)
def test_any_multipart_body_gets_a_typed_answer(
    client: SyncASGIClient, body: bytes, content_type: str, path: str
) -> None:
    # GIVEN any bytes labelled as a multipart form
    # WHEN posted to an upload route
    response = client.post(path, content=body, headers={"content-type": content_type})
    # THEN never a 5xx: a typed JSON answer
    assert response.status_code < 500, response.text
    assert response.status_code == 200 or "field" in response.json()


LAZY_PARSER_SCRIPT = """
import asyncio, sys
from modelfn.serving.asgi import create_app
from tests.serving.tiny_models import linear_bundle, served

app = create_app(served(linear_bundle()))

def call(body, content_type):
    sent = []
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"content-type", content_type)]}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"]

json_status = call(b'{"instances": [[1, 2, 3, 4]]}', b"application/json")
after_json = "email.policy" in sys.modules
form = b'--b\\r\\nContent-Disposition: form-data; name="image"\\r\\n\\r\\n[1, 2, 3, 4]\\r\\n--b--\\r\\n'
form_status = call(form, b"multipart/form-data; boundary=b")
print(json_status, after_json, form_status, "email.policy" in sys.modules)
"""


def test_json_requests_never_import_the_multipart_parser() -> None:
    import subprocess
    import sys
    from pathlib import Path

    # GIVEN a fresh interpreter serving the app
    root = Path(__file__).resolve().parents[2]
    # WHEN a JSON /predict is served, then a multipart one
    out = subprocess.run([sys.executable, "-c", LAZY_PARSER_SCRIPT], capture_output=True, text=True, cwd=root)
    # THEN the HTTP email policy (the costly part of the parser) was imported only for the multipart request
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["200", "False", "200", "True"]
