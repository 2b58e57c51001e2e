"""``POST /predict``: TF-Serving-style rows, named columns, labels for classifiers."""

from __future__ import annotations

import numpy as np

from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import LABELS, expected_linear

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 0.5, 0.0], [3.0, 0.0, 0.0, 1.0]]


def test_instances_rows_return_every_output_by_name(client: SyncASGIClient) -> None:
    # GIVEN one row per instance for a two-output model
    # WHEN predicted
    response = client.post("/predict", json={"instances": ROWS})
    # THEN predictions hold each output, nested per row, equal to onnxruntime's
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    y, label = expected_linear(ROWS)
    np.testing.assert_allclose(predictions["y"], y, rtol=1e-6)
    assert predictions["label"] == label.tolist()
    assert "labels" not in response.json()


def test_named_inputs_and_row_objects_give_the_same_answer(client: SyncASGIClient) -> None:
    # GIVEN the same data as columns, as row objects, and as a bare value for the single input
    forms = [
        {"instances": ROWS},
        {"inputs": {"x": ROWS}},
        {"inputs": ROWS},
        {"instances": [{"x": row} for row in ROWS]},
    ]
    # WHEN each is predicted
    answers = [client.post("/predict", json=form) for form in forms]
    # THEN all agree
    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.json() == answers[0].json() for a in answers)


def test_return_labels_maps_argmax_to_manifest_labels(client: SyncASGIClient) -> None:
    # GIVEN a classifier whose manifest lists labels
    # WHEN labels are asked for
    response = client.post("/predict", json={"instances": ROWS, "return_labels": True})
    # THEN each row gets the label of its highest score
    assert response.status_code == 200, response.text
    y, _ = expected_linear(ROWS)
    assert response.json()["labels"] == [LABELS[i] for i in y.argmax(axis=1)]


def test_return_labels_without_labels_is_422(echo_client: SyncASGIClient) -> None:
    # GIVEN a model without labels
    # WHEN labels are asked for
    response = echo_client.post("/predict", json={"instances": ["a"], "return_labels": True})
    # THEN the request is refused, naming the flag
    assert response.status_code == 422 and response.json()["field"] == "return_labels"


def test_string_model_via_predict(echo_client: SyncASGIClient) -> None:
    # GIVEN a string-input model
    # WHEN rows of text are predicted (and a non-string is mixed in)
    ok = echo_client.post("/predict", json={"instances": ["a", "bé"]})
    bad = echo_client.post("/predict", json={"instances": ["a", 3]})
    # THEN text round-trips and the wrong type names the input
    assert ok.status_code == 200 and ok.json() == {"predictions": ["a", "bé"]}
    assert bad.status_code == 422 and bad.json()["field"] == "s"


def test_json_content_type_with_charset_and_suffix_is_accepted(client: SyncASGIClient) -> None:
    # WHEN the body is labelled with parameters or a +json suffix
    a = client.post(
        "/predict", content=b'{"instances": [[1,2,3,4]]}', headers={"content-type": "application/json; charset=utf-8"}
    )
    b = client.post(
        "/predict", content=b'{"instances": [[1,2,3,4]]}', headers={"content-type": "application/vnd.api+json"}
    )
    # THEN both are served
    assert (a.status_code, b.status_code) == (200, 200)
