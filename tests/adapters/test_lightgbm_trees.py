"""LightGBM models become ONNX tree-ensemble bundles that serve LightGBM's own predictions over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pytest

from modelfn.adapters.base import PickleLoadWarning
from modelfn.adapters.lightgbm_trees import LightGBMAdapter
from modelfn.adapters.registry import detect
from modelfn.bundle.manifest import Manifest
from modelfn.errors import PackagingError
from modelfn.packaging import package
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey

pytestmark = [pytest.mark.framework, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
Fitted = tuple[Any, npt.NDArray[np.float32]]
PARAMS: dict[str, Any] = {"n_estimators": 10, "num_leaves": 7, "random_state": 0, "n_jobs": 1, "verbose": -1}


@pytest.fixture(scope="module")
def iris_classifier() -> Fitted:
    """(LGBMClassifier on iris, 3 classes; every 5th row as float32)."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    model = lgb.LGBMClassifier(**PARAMS).fit(x, y)
    return model, x[::5].astype(np.float32)


@pytest.fixture(scope="module")
def diabetes_regressor() -> Fitted:
    """(LGBMRegressor on the diabetes data; 25 float32 rows)."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    model = lgb.LGBMRegressor(**PARAMS).fit(x, y)
    return model, x[:25].astype(np.float32)


def _serve_predict(bundle: Path, tmp_path: Path, key: SigningKey, x: npt.NDArray[Any]) -> dict[str, Any]:
    """Sign, push and serve the bundle; POST /predict with labels requested; return the JSON body."""
    client = serve(publish(bundle, str(tmp_path / "store"), key).settings)
    try:
        response = client.post("/predict", json={"inputs": {"input": x.tolist()}, "return_labels": True})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_classifier_end_to_end(iris_classifier: Fitted, tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a 3-class LGBMClassifier and a float32 sample
    model, x = iris_classifier
    out = tmp_path / "iris"
    # WHEN it is packaged (detected from the object, ahead of the sklearn adapter)
    manifest = package(model, x, out, name="iris-lgbm")
    # THEN the graph has plain label/probability tensors (no ZipMap), with a dynamic batch on both
    assert manifest.framework.name == "lightgbm" and manifest.framework.converter == "onnxmltools"
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [("input", "float32", [-1, 4])]
    assert [(t.name, t.dtype, t.shape) for t in manifest.outputs] == [
        ("label", "int64", [-1]),
        ("probabilities", "float32", [-1, 3]),
    ]
    assert manifest.labels == [0, 1, 2] and manifest.opset["ai.onnx"] <= 15
    # AND the parity report on disk shows full label agreement
    parity = Manifest.from_json((out / "manifest.json").read_bytes()).parity
    assert parity is not None and parity == manifest.parity
    assert parity.samples == len(x) and parity.label_agreement == 1.0 and parity.max_abs_diff <= 1e-5
    # WHEN signed, pushed and served over HTTP
    body = _serve_predict(out, tmp_path, signing_key, x)
    # THEN /predict answers with LightGBM's classes and probabilities within the recorded tolerance
    np.testing.assert_array_equal(body["predictions"]["label"], model.predict(x))
    np.testing.assert_allclose(body["predictions"]["probabilities"], model.predict_proba(x), atol=parity.atol)
    assert body["labels"] == model.predict(x).tolist()


def test_string_labels_are_recorded_and_served(
    iris_classifier: Fitted, tmp_path: Path, signing_key: SigningKey
) -> None:
    from sklearn.datasets import load_iris

    # GIVEN a classifier trained on class names
    _, x = iris_classifier
    data = load_iris()
    model = lgb.LGBMClassifier(**PARAMS).fit(data.data, data.target_names[data.target])
    # WHEN packaged and served
    manifest = package(model, x, tmp_path / "b", name="iris-names")
    body = _serve_predict(tmp_path / "b", tmp_path, signing_key, x)
    # THEN the names are the labels, the label output is a string tensor, and rows agree with LightGBM
    assert manifest.labels == ["setosa", "versicolor", "virginica"]
    assert {t.name: t.dtype for t in manifest.outputs}["label"] == "string"
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0
    assert body["predictions"]["label"] == model.predict(x).tolist() == body["labels"]


def test_regressor_served_through_v2(diabetes_regressor: Fitted, tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN an LGBMRegressor
    model, x = diabetes_regressor
    out = tmp_path / "reg"
    # WHEN packaged
    manifest = package(model, x, out, name="diabetes-lgbm")
    assert [(t.name, t.dtype) for t in manifest.outputs] == [("variable", "float32")]
    assert manifest.labels is None and manifest.parity is not None
    # AND served through the Open Inference Protocol V2
    client = serve(publish(out, str(tmp_path / "store"), signing_key).settings)
    try:
        tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        response = client.post("/v2/models/diabetes-lgbm/infer", json={"inputs": [tensor]})
    finally:
        client.close()
    # THEN the served predictions match LightGBM's within the recorded tolerance
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    served = np.asarray(output["data"], dtype=np.float64)
    np.testing.assert_allclose(served, model.predict(x), rtol=manifest.parity.rtol, atol=manifest.parity.atol)


def test_named_columns_binary_classifier(tmp_path: Path) -> None:
    import pandas
    from sklearn.datasets import load_breast_cancer

    # GIVEN a binary classifier trained on a DataFrame with named columns
    x, y = load_breast_cancer(return_X_y=True)
    frame = pandas.DataFrame(x, columns=[f"feature {i}" for i in range(x.shape[1])])
    model = lgb.LGBMClassifier(**PARAMS).fit(frame, y)
    # WHEN packaged from a plain array sample
    manifest = package(model, x[::10].astype(np.float32), tmp_path / "b", name="cancer-lgbm")
    # THEN the two-class graph agrees on every row
    assert manifest.labels == [0, 1] and [t.shape for t in manifest.outputs] == [[-1], [-1, 2]]
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0


def test_text_model_file_packages(iris_classifier: Fitted, diabetes_regressor: Fitted, tmp_path: Path) -> None:
    # GIVEN a classifier and a regressor saved as LightGBM text models
    classifier, x = iris_classifier
    regressor, xr = diabetes_regressor
    classifier.booster_.save_model(tmp_path / "iris.txt")
    regressor.booster_.save_model(tmp_path / "diabetes.txt")
    # WHEN the files are packaged (framework detected from the header)
    clf = package(tmp_path / "iris.txt", x, tmp_path / "c", name="iris-txt")
    reg = package(tmp_path / "diabetes.txt", xr, tmp_path / "r", name="diabetes-txt")
    # THEN the raw Boosters convert to the same kinds of outputs, within tolerance
    assert clf.framework.name == "lightgbm" and clf.labels == [0, 1, 2]
    assert clf.parity is not None and clf.parity.label_agreement == 1.0
    assert [t.name for t in reg.outputs] == ["variable"] and reg.labels is None


def _categorical_data() -> tuple[Any, npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """(DataFrame with a numeric column and a 10-category string column, the same rows as codes, binary target)."""
    import pandas

    rng = np.random.default_rng(6)
    codes = rng.integers(0, 10, 300)
    names = list("abcdefghij")
    size = rng.standard_normal(300).astype(np.float32)
    frame = pandas.DataFrame({"size": size, "colour": pandas.Categorical([names[c] for c in codes], categories=names)})
    y = (size + np.isin(codes, [1, 4, 7, 8]) * 2 > 0.8).astype(np.int64)
    return frame, np.stack([size, codes.astype(np.float32)], axis=1), y


def test_categorical_feature_on_arrays(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a classifier trained on an array with categorical_feature=[1] (set-valued splits)
    frame, rows, y = _categorical_data()
    model = lgb.LGBMClassifier(**PARAMS, min_child_samples=5).fit(rows, y, categorical_feature=[1])
    assert "||" in json.dumps(model.booster_.dump_model())  # a split on a set of categories ("1||4||7")
    # WHEN packaged
    manifest = package(model, rows[:8], tmp_path / "b", name="cat-lgbm")
    # THEN the manifest names the categorical column, and the served model answers like LightGBM on every code
    assert "input columns [1] are categorical" in (manifest.preprocessing or "")
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0
    body = _serve_predict(tmp_path / "b", tmp_path, signing_key, rows[:60])
    np.testing.assert_allclose(body["predictions"]["probabilities"], model.predict_proba(rows[:60]), atol=1e-4)
    assert body["labels"] == np.asarray(model.predict(rows[:60])).tolist()


def test_categorical_dataframe_model_and_file(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a regressor trained on a DataFrame with a pandas category column, and its text model file
    frame, rows, y = _categorical_data()
    model = lgb.LGBMRegressor(**PARAMS, min_child_samples=5).fit(frame, y.astype(np.float64))
    model.booster_.save_model(tmp_path / "cat.txt")
    for source, sample, out in (
        (model, frame.iloc[:8], tmp_path / "obj"),
        (tmp_path / "cat.txt", rows[:8], tmp_path / "f"),
    ):
        # WHEN the model (with a DataFrame sample) and the file (with codes) are packaged
        manifest = package(source, sample, out, name="cat-reg")
        # THEN each converts within tolerance, and the manifest says which code is which category
        assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
        assert "column 1: 0=a, 1=b, 2=c" in (manifest.preprocessing or "")
    # AND the served predictions on codes are LightGBM's on the DataFrame
    client = serve(publish(tmp_path / "obj", str(tmp_path / "store"), signing_key).settings)
    try:
        response = client.post("/predict", json={"instances": rows[:60].tolist()})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    served = np.asarray(response.json()["predictions"], dtype=np.float64).ravel()
    parity = manifest.parity
    assert parity is not None
    np.testing.assert_allclose(served, model.predict(frame[:60]), atol=parity.atol, rtol=parity.rtol)


def test_detection_by_object_and_file(iris_classifier: Fitted, tmp_path: Path) -> None:
    # GIVEN lightgbm objects, a LightGBM text model and an unrelated text file
    model, _ = iris_classifier
    model.booster_.save_model(tmp_path / "model.txt")
    (tmp_path / "notes.txt").write_text("tree of life\nversion=2\n")
    # WHEN detection runs
    # THEN lightgbm claims its objects and model files (not sklearn), and nothing else
    assert isinstance(detect(model), LightGBMAdapter)
    assert isinstance(detect(model.booster_), LightGBMAdapter)
    assert isinstance(detect(tmp_path / "model.txt"), LightGBMAdapter)
    assert not LightGBMAdapter.detects(tmp_path / "notes.txt") and not LightGBMAdapter.detects(tmp_path)
    assert not LightGBMAdapter.detects(np.zeros(3))


def test_wrong_file_is_refused(tmp_path: Path) -> None:
    # GIVEN a text file that is not a LightGBM model, forced through the adapter
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    # WHEN packaged
    with pytest.raises(PackagingError, match="not a LightGBM text model") as info:
        package(path, np.zeros((2, 4), np.float32), tmp_path / "b", name="x", framework="lightgbm")
    # THEN the error names the file and nothing is written
    assert "notes.txt" in info.value.message and not (tmp_path / "b").exists()


def test_pickle_needs_the_flag(iris_classifier: Fitted, tmp_path: Path) -> None:
    import joblib

    # GIVEN an LGBMClassifier pickled with joblib
    model, x = iris_classifier
    path = tmp_path / "iris.pkl"
    joblib.dump(model, path)
    # WHEN packaged through the lightgbm adapter without allow_pickle
    # THEN it is refused
    with pytest.raises(PackagingError, match="allow_pickle=True"):
        package(path, x, tmp_path / "b", name="iris", framework="lightgbm")
    # WHEN allowed
    with pytest.warns(PickleLoadWarning):
        manifest = package(path, x, tmp_path / "b", name="iris", framework="lightgbm", allow_pickle=True)
    # THEN it packages like the object
    assert manifest.framework.name == "lightgbm" and manifest.labels == [0, 1, 2]


def test_bad_sample_and_opset_are_refused(iris_classifier: Fitted, tmp_path: Path) -> None:
    # GIVEN a 4-feature model
    model, x = iris_classifier
    # WHEN the sample has the wrong width or rank, or the opset is beyond the converter
    # THEN each error says what was expected
    with pytest.raises(PackagingError, match="sample has 5 features, the model was trained on 4"):
        package(model, np.hstack([x, x[:, :1]]), tmp_path / "b", name="iris")
    with pytest.raises(PackagingError, match="must be 2-D"):
        package(model, x[0], tmp_path / "b", name="iris")
    with pytest.raises(PackagingError, match="opset 18 is above") as info:
        package(model, x, tmp_path / "b", name="iris", opset=18)
    assert info.value.field == "opset"


def test_missing_extra_names_the_install(iris_classifier: Fitted, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN onnxmltools cannot be imported
    model, x = iris_classifier
    monkeypatch.setitem(sys.modules, "onnxmltools", None)
    # WHEN the adapter exports
    # THEN the error says which extra to install
    with pytest.raises(PackagingError, match=r"pip install 'modelfn\[lightgbm\]'"):
        LightGBMAdapter().export(model, x, opset=None)


def test_example_runs(tmp_path: Path) -> None:
    # GIVEN the lightgbm example script
    script = REPO / "examples" / "lightgbm" / "train_and_package.py"
    # WHEN it runs in a fresh interpreter
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "bundle")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # THEN it writes a bundle and prints the next CLI steps
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "bundle" / "model.onnx").is_file() and (tmp_path / "bundle" / "manifest.json").is_file()
    assert "served prediction: {'predictions'" in result.stdout  # signed, pushed, served
    assert "modelfn sign" in result.stdout and "modelfn serve" in result.stdout
