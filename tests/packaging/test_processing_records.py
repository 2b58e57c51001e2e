"""Records and labels declared from the framework or from flags: an iris classifier fitted on a DataFrame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from modelfn.bundle.manifest import Manifest
from modelfn.cli import app
from modelfn.errors import PackagingError
from modelfn.packaging import package
from modelfn.packaging_processing import ProcessingRequest
from tests.fixtures.bundles import publish
from tests.fixtures.keys import SigningKey

pytestmark = pytest.mark.framework

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    """LogisticRegression fitted on a pandas DataFrame (feature_names_in_) with species names as the target."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris(as_frame=True)
    frame = data.data.set_axis(FEATURES, axis=1)
    target = data.target.map(dict(enumerate(SPECIES)))
    return LogisticRegression(max_iter=500).fit(frame, target), frame


def test_dataframe_classifier_declares_records_and_labels_and_serves_named_features(
    iris: tuple[Any, Any], tmp_path: Path, signing_key: SigningKey
) -> None:
    # GIVEN an iris classifier fitted on a DataFrame
    model, frame = iris
    # WHEN it is packaged with no processing flags at all
    manifest = package(model, frame.iloc[::10], tmp_path / "b", name="iris")
    # THEN records come from feature_names_in_, labels from classes_, and labels come out of the scores
    processing = manifest.processing
    assert processing is not None and processing.records is not None and processing.output is not None
    assert processing.records.features == FEATURES and processing.records.input == "input"
    assert manifest.labels == SPECIES
    assert processing.output.output == "probabilities" and processing.output.activation == "none"
    assert "sample scores are probabilities" in (manifest.preprocessing or "")
    # WHEN the signed bundle is loaded with modelfn.load and rows of named features (in another order) are sent
    from modelfn import load
    from modelfn.processing.outputs import classify
    from modelfn.processing.records import records_to_feeds

    published = publish(tmp_path / "b", str(tmp_path / "store"), signing_key)
    predictor = load(published.settings.store_url, "iris", trust=signing_key.public_path)
    rows = [dict(reversed(list(row.items()))) for row in frame.iloc[::7].to_dict("records")]
    assert predictor.manifest.processing == processing
    feeds = records_to_feeds(rows, processing.records, predictor.manifest, field="instances")
    answers = classify(predictor.predict(feeds), predictor.manifest, field="instances")
    # THEN the labels agree with scikit-learn's own predictions on the same rows
    assert [answer[0][0] for answer in answers] == model.predict(frame.iloc[::7]).tolist()


def test_cli_feature_names_labels_and_a_csv_sample(tmp_path: Path) -> None:
    # GIVEN a model fitted on a plain array (no names), saved as .skops; names, labels and a CSV sample with
    # the columns in another order and an id column
    import skops.io as sio
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    sio.dump(model, tmp_path / "iris.skops")
    (tmp_path / "names.txt").write_text("\n".join(FEATURES) + "\n")
    (tmp_path / "labels.json").write_text(json.dumps(SPECIES))
    order = [3, 0, 2, 1]
    lines = ["id," + ",".join(FEATURES[i] for i in order)]
    lines += [f"r{n}," + ",".join(str(row[i]) for i in order) for n, row in enumerate(x[::15])]
    (tmp_path / "sample.csv").write_text("\n".join(lines) + "\n")
    # WHEN packaged from the command line
    result = CliRunner().invoke(
        app,
        ["package", str(tmp_path / "iris.skops"), "-o", str(tmp_path / "b"), "-n", "iris", "--sample",
         str(tmp_path / "sample.csv"), "--feature-names", f"@{tmp_path / 'names.txt'}", "--labels",
         str(tmp_path / "labels.json"), "--top-k", "2"],
    )  # fmt: skip
    # THEN records, labels and top-k are declared, and parity ran on the CSV rows mapped by name
    assert result.exit_code == 0, result.output
    manifest = Manifest.from_json((tmp_path / "b" / "manifest.json").read_bytes())
    assert manifest.processing is not None and manifest.processing.records is not None
    assert manifest.processing.records.features == FEATURES
    assert manifest.labels == SPECIES and manifest.parity is not None and manifest.parity.samples == 10
    assert manifest.processing.output is not None and manifest.processing.output.top_k == 2
    assert manifest.parity.label_agreement == 1.0
    assert "processing declared: records, output" in result.output


def test_no_classify_leaves_output_processing_out(iris: tuple[Any, Any], tmp_path: Path) -> None:
    model, frame = iris
    manifest = package(model, frame.iloc[::10], tmp_path / "b", name="iris",
                       processing=ProcessingRequest(classify=False))  # fmt: skip
    assert manifest.processing is not None and manifest.processing.output is None
    assert manifest.labels == SPECIES  # labels are still recorded


@pytest.mark.parametrize(
    ("request_", "field", "words"),
    [
        (ProcessingRequest(threshold=0.3), "threshold", "binary"),
        (ProcessingRequest(top_k=4), "top_k", "above the 3 labels"),
        (ProcessingRequest(preprocess="records", feature_names=["a", "b"]), "feature_names", "do not fit"),
        (ProcessingRequest(preprocess="image:size=32"), "preprocess.image.input", "4-D inputs"),
        (ProcessingRequest(labels=["a", "b"]), "labels", "one score per label"),
        (ProcessingRequest(reference_preprocess="tests.packaging.images:reference"), "reference_preprocess", "images"),
    ],
)
def test_flags_that_do_not_fit_the_model_are_refused_naming_the_flag(
    iris: tuple[Any, Any], tmp_path: Path, request_: ProcessingRequest, field: str, words: str
) -> None:
    model, frame = iris
    with pytest.raises(PackagingError) as caught:
        package(model, frame.iloc[::10], tmp_path / "b", name="iris", processing=request_)
    assert caught.value.field == field and words in caught.value.message
    assert not (tmp_path / "b").exists()


def test_records_without_any_feature_names_are_refused(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    with pytest.raises(PackagingError) as caught:
        package(model, x[::10].astype(np.float32), tmp_path / "b", name="iris",
                processing=ProcessingRequest(preprocess="records"))  # fmt: skip
    assert caught.value.field == "feature_names" and "--feature-names" in caught.value.message
