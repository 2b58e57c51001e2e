"""/openapi.json for bundles that declare processing: named features, CSV and pictures in, labels and top-k out."""

from __future__ import annotations

from typing import Any

from modelfn.serving.openapi_document import openapi_document
from tests.serving.processing_models import COLOURS, FEATURES, image_bundle, iris_bundle
from tests.serving.test_openapi import _check_examples
from tests.serving.tiny_models import LABELS, served


def _examples(document: dict[str, Any], path: str, media: str) -> dict[str, Any]:
    examples: dict[str, Any] = document["paths"][path]["post"]["requestBody"]["content"][media]["examples"]
    return examples


def _answers(document: dict[str, Any], path: str) -> dict[str, Any]:
    answers: dict[str, Any] = document["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
    return answers["examples"]


def test_a_records_bundle_documents_named_features_and_csv_that_work() -> None:
    # GIVEN the linear model fed by four named features, with declared labels and softmax
    state = served(iris_bundle())
    # WHEN every example in its document is sent, THEN each answers 200 with the documented body
    sent = {(line.split()[1], line.split()[-1]) for line in _check_examples(state)}
    for expected in [("/predict", "records"), ("/predict", "csv"), ("/predictions/iris", "csv"),
                     ("/predictions/iris", "records"), ("/v1/models/iris:predict", "records")]:  # fmt: skip
        assert expected in sent, expected
    document = openapi_document(state)
    # AND the examples name the bundle's features, in its order, and show its labels and top-k
    record = _examples(document, "/predict", "application/json")["records"]["value"]["instances"][0]
    assert list(record) == FEATURES
    assert _examples(document, "/predict", "text/csv")["csv"]["value"].splitlines()[0] == ",".join(FEATURES)
    answer = _answers(document, "/predict")["records"]["value"]
    assert answer["labels"][0] in LABELS and answer["top_k"][0][0]["label"] == answer["labels"][0]
    assert "csv" not in document["paths"]["/v1/models/{name}:predict"]["post"]["requestBody"]["content"]


def test_an_image_bundle_documents_pictures_on_every_front_door() -> None:
    # GIVEN the colour classifier with declared image preprocessing
    state = served(image_bundle())
    # WHEN every example is sent, THEN each answers 200 with the documented body
    sent = {(line.split()[1], line.split()[-1]) for line in _check_examples(state)}
    for expected in [("/predict", "image_b64"), ("/predict", "image_body"), ("/predict", "keras_image"),
                     ("/v1/models/colour:predict", "image_b64"), ("/predictions/colour", "image_body"),
                     ("/predictions/colour", "form_image")]:  # fmt: skip
        assert expected in sent, expected
    document = openapi_document(state)
    # AND the Keras REST API and TorchServe answers are top-k labels of the bundle
    keras = _answers(document, "/predict")["keras_image"]["value"]
    assert keras["success"] is True and keras["predictions"][0]["label"] in COLOURS
    torchserve = _answers(document, "/predictions/{name}")["image_body"]["value"]
    assert set(torchserve) <= set(COLOURS)
    picture = _examples(document, "/predict", "image/png")["image_body"]["externalValue"]
    assert picture.startswith("data:image/png;base64,iVBORw0KGgo")
