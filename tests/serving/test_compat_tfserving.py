"""TF Serving REST API / KServe v1: ``:predict`` in row and columnar format, model status, errors."""

from __future__ import annotations

import numpy as np
import pytest

from modelfn.errors import ModelNotReady
from modelfn.loader import LoadedBundle
from modelfn.serving.asgi import create_app
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import expected_linear, served

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 0.5, 0.0]]


def test_row_format_answers_one_object_per_row_keyed_by_output(client: SyncASGIClient) -> None:
    # GIVEN TF Serving's row format for a two-output model, sent the way `curl -d` labels it
    body = b'{"signature_name": "serving_default", "instances": [[1, 2, 3, 4], [0, -1, 0.5, 0]]}'
    # WHEN posted to :predict, with and without the version in the path
    plain = client.post(
        "/v1/models/linear:predict", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    versioned = client.post("/v1/models/linear/versions/3:predict", content=body)
    # THEN predictions is a list of objects, one per row, keyed by output name
    assert plain.status_code == 200, plain.text
    assert plain.json() == versioned.json()
    predictions = plain.json()["predictions"]
    y, label = expected_linear(ROWS)
    assert [set(p) for p in predictions] == [{"y", "label"}] * 2
    np.testing.assert_allclose([p["y"] for p in predictions], y, rtol=1e-6)
    assert [p["label"] for p in predictions] == label.tolist()


def test_row_objects_and_columnar_format(client: SyncASGIClient) -> None:
    # GIVEN the same rows as row objects, and as columns (named and bare)
    objects = client.post("/v1/models/linear:predict", json={"instances": [{"x": r} for r in ROWS]})
    named = client.post("/v1/models/linear:predict", json={"inputs": {"x": ROWS}})
    bare = client.post("/v1/models/linear:predict", json={"inputs": ROWS})
    # THEN rows answer "predictions", columns answer "outputs" keyed by output name
    assert objects.status_code == named.status_code == bare.status_code == 200
    y, label = expected_linear(ROWS)
    assert named.json() == bare.json() and set(named.json()) == {"outputs"}
    np.testing.assert_allclose(named.json()["outputs"]["y"], y, rtol=1e-6)
    assert named.json()["outputs"]["label"] == label.tolist()
    assert [p["label"] for p in objects.json()["predictions"]] == label.tolist()


def test_single_output_model_omits_the_output_name(echo_client: SyncASGIClient) -> None:
    # GIVEN a one-output model (TF Serving's half_plus_three shape: a list of scalars)
    rows = echo_client.post("/v1/models/echo:predict", json={"instances": ["foo", "bar", "baz"]})
    columns = echo_client.post("/v1/models/echo:predict", json={"inputs": ["foo", "bar"]})
    # THEN the values come back without the name
    assert rows.json() == {"predictions": ["foo", "bar", "baz"]}
    assert columns.json() == {"outputs": ["foo", "bar"]}


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/models/half:predict", {"instances": ROWS}, 404, "model_name"),
        ("/v1/models/linear/versions/9:predict", {"instances": ROWS}, 404, "model_version"),
        ("/v1/models/linear:predict", {"signature_name": "classify", "instances": ROWS}, 400, "signature_name"),
        ("/v1/models/linear:predict", {"instances": ROWS, "inputs": {"x": ROWS}}, 400, "instances"),
        ("/v1/models/linear:predict", {"instances": [[1, 2, 3]]}, 400, "x"),
        ("/v1/models/linear:predict", {"instances": [["a", "b", "c", "d"]]}, 400, "x"),
        ("/v1/models/linear:predict", {"examples": []}, 400, "examples"),
    ],
)
def test_errors_are_tf_serving_shaped_400_or_404_naming_the_field(
    client: SyncASGIClient, path: str, body: object, status: int, field: str
) -> None:
    # WHEN a request names an unknown model/version/signature or sends input that does not fit
    response = client.post(path, json=body)
    # THEN TF Serving's status and an "error" message, with the field named
    assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str) and response.json()["field"] == field


def test_malformed_json_is_400(client: SyncASGIClient) -> None:
    response = client.post("/v1/models/linear:predict", content=b'{"instances": [')
    assert response.status_code == 400 and response.json()["field"] == "body"


def test_model_status_serves_tf_serving_and_kserve_keys(client: SyncASGIClient) -> None:
    # WHEN the status is read, plain and for the served version; and KServe's model list
    status = client.get("/v1/models/linear")
    versioned = client.get("/v1/models/linear/versions/3")
    models = client.get("/v1/models")
    # THEN TF Serving's model_version_status and KServe's name/ready are both there
    assert status.status_code == versioned.status_code == 200
    assert status.json() == {
        "name": "linear",
        "ready": True,
        "model_version_status": [
            {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ],
    }
    assert versioned.json() == status.json()
    assert models.json() == {"models": ["linear"]}
    assert client.get("/v1/models/linear/versions/4").status_code == 404
    assert client.get("/v1/models/linear:predict").status_code == 405


def test_status_while_not_ready_is_503_with_retry_after(linear: LoadedBundle) -> None:
    # GIVEN a process whose model failed to load
    client = SyncASGIClient(create_app(served(None, failure=ModelNotReady("store down"))))
    try:
        # WHEN the status and a prediction are asked for
        status = client.get("/v1/models/linear")
        predict = client.post("/v1/models/linear:predict", json={"instances": ROWS})
        models = client.get("/v1/models")
    finally:
        client.close()
    # THEN 503 + Retry-After, not ready in both vocabularies
    assert status.status_code == 503 and "retry-after" in status.headers
    body = status.json()
    assert body["ready"] is False and body["model_version_status"][0]["state"] == "END"
    assert body["model_version_status"][0]["status"]["error_code"] == "UNAVAILABLE"
    assert predict.status_code == 503 and predict.json()["field"] == "model"
    assert models.json() == {"models": []}


def test_metadata_lists_the_serving_default_signature(client: SyncASGIClient) -> None:
    # WHEN TF Serving's model metadata is read (plain and versioned)
    response = client.get("/v1/models/linear/metadata")
    versioned = client.get("/v1/models/linear/versions/3/metadata")
    # THEN the one signature names each tensor with its TF dtype and shape (-1 = dynamic)
    assert response.status_code == 200, response.text
    assert versioned.json() == response.json()
    assert response.json()["model_spec"] == {"name": "linear", "signature_name": "", "version": "3"}
    signature = response.json()["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["x"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}, {"size": "4", "name": ""}]
    assert signature["outputs"]["label"]["dtype"] == "DT_INT64"
    assert client.get("/v1/models/linear/versions/2/metadata").status_code == 404
    assert client.get("/v1/models/linear/labels/stable").status_code == 404
