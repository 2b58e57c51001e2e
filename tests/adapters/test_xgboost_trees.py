"""XGBoost models become ONNX tree-ensemble bundles that serve XGBoost's own predictions over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import xgboost as xgb

from modelfn.adapters.base import PickleLoadWarning
from modelfn.adapters.registry import detect
from modelfn.adapters.xgboost_trees import XGBoostAdapter
from modelfn.bundle.manifest import Manifest
from modelfn.errors import PackagingError
from modelfn.packaging import package
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey

pytestmark = [pytest.mark.framework, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
Fitted = tuple[Any, npt.NDArray[np.float32]]


@pytest.fixture(scope="module")
def iris_classifier() -> Fitted:
    """(XGBClassifier on iris, 3 classes; every 5th row as float32)."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3, random_state=0, n_jobs=1).fit(x, y)
    return model, x[::5].astype(np.float32)


@pytest.fixture(scope="module")
def diabetes_regressor() -> Fitted:
    """(XGBRegressor on the diabetes data; 25 float32 rows)."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    model = xgb.XGBRegressor(n_estimators=8, max_depth=3, random_state=0, n_jobs=1).fit(x, y)
    return model, x[:25].astype(np.float32)


def _serve_predict(
    bundle: Path, tmp_path: Path, key: SigningKey, x: npt.NDArray[Any], *, labels: bool = True
) -> dict[str, Any]:
    """Sign, push and serve the bundle; POST /predict (labels requested unless told); return the JSON body."""
    client = serve(publish(bundle, str(tmp_path / "store"), key).settings)
    try:
        response = client.post("/predict", json={"inputs": {"input": x.tolist()}, "return_labels": labels})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_classifier_end_to_end(iris_classifier: Fitted, tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a 3-class XGBClassifier and a float32 sample
    model, x = iris_classifier
    out = tmp_path / "iris"
    # WHEN it is packaged (framework detected from the object, ahead of the sklearn adapter)
    manifest = package(model, x, out, name="iris-xgb")
    # THEN the graph is a plain-tensor classifier in the ML domain at opset <= 15
    assert manifest.framework.name == "xgboost" and manifest.framework.converter == "onnxmltools"
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [("input", "float32", [-1, 4])]
    assert [(t.name, t.dtype, t.shape) for t in manifest.outputs] == [
        ("label", "int64", [-1]),
        ("probabilities", "float32", [-1, 3]),
    ]
    assert manifest.labels == [0, 1, 2] and "ai.onnx.ml" in manifest.opset
    # AND the parity report on disk shows full label agreement and float32-level differences
    parity = Manifest.from_json((out / "manifest.json").read_bytes()).parity
    assert parity is not None and parity == manifest.parity
    assert parity.samples == len(x) and parity.label_agreement == 1.0
    assert parity.max_abs_diff <= 1e-5 and set(parity.outputs) == {"probabilities"}
    # WHEN the bundle is signed, pushed and served over HTTP
    body = _serve_predict(out, tmp_path, signing_key, x)
    # THEN /predict answers with XGBoost's classes and probabilities within the recorded tolerance
    np.testing.assert_array_equal(body["predictions"]["label"], model.predict(x))
    np.testing.assert_allclose(body["predictions"]["probabilities"], model.predict_proba(x), atol=parity.atol)
    assert body["labels"] == model.predict(x).tolist()


def test_regressor_served_through_v2(diabetes_regressor: Fitted, tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN an XGBRegressor and a sample named through a dict
    model, x = diabetes_regressor
    out = tmp_path / "reg"
    # WHEN packaged
    manifest = package(model, {"features": x}, out, name="diabetes-xgb")
    # THEN the output is `variable`, there are no labels, and parity holds
    assert [t.name for t in manifest.inputs] == ["features"]
    assert [(t.name, t.dtype) for t in manifest.outputs] == [("variable", "float32")]
    assert manifest.labels is None and manifest.parity is not None and manifest.parity.label_agreement is None
    # WHEN served and called through the Open Inference Protocol V2
    client = serve(publish(out, str(tmp_path / "store"), signing_key).settings)
    try:
        request = {
            "inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
        }
        response = client.post("/v2/models/diabetes-xgb/infer", json=request)
    finally:
        client.close()
    # THEN the served predictions match XGBoost's within the recorded tolerance
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    served = np.asarray(output["data"], dtype=np.float64)
    np.testing.assert_allclose(served, model.predict(x), rtol=manifest.parity.rtol, atol=manifest.parity.atol)


def test_named_features_are_converted_from_a_copy(tmp_path: Path, signing_key: SigningKey) -> None:
    import pandas
    from sklearn.datasets import load_breast_cancer

    # GIVEN a binary classifier trained on a DataFrame whose columns are not f0..fN
    x, y = load_breast_cancer(return_X_y=True)
    frame = pandas.DataFrame(x, columns=[f"feature {i}" for i in range(x.shape[1])])
    model = xgb.XGBClassifier(n_estimators=6, max_depth=3, random_state=0, n_jobs=1).fit(frame, y)
    sample = x[::10].astype(np.float32)
    # WHEN packaged
    manifest = package(model, sample, tmp_path / "b", name="cancer-xgb")
    # THEN it converts, labels agree on every row, and the caller's model keeps its feature names
    assert manifest.labels == [0, 1]
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0
    assert model.get_booster().feature_names[0] == "feature 0"
    # AND the served probabilities are XGBoost's
    body = _serve_predict(tmp_path / "b", tmp_path, signing_key, sample)
    np.testing.assert_allclose(body["predictions"]["probabilities"], model.predict_proba(frame[::10]), atol=1e-4)


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_booster_file_packages(iris_classifier: Fitted, tmp_path: Path, suffix: str) -> None:
    # GIVEN a classifier's Booster saved in XGBoost's own format
    model, x = iris_classifier
    path = tmp_path / f"model{suffix}"
    model.get_booster().save_model(path)
    # WHEN the file is packaged (framework detected from its content)
    manifest = package(path, x, tmp_path / "b", name="iris-booster")
    # THEN the raw Booster converts to the same classifier outputs, with full label agreement
    assert manifest.framework.name == "xgboost" and manifest.labels == [0, 1, 2]
    assert [t.name for t in manifest.outputs] == ["label", "probabilities"]
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0


def test_regression_booster_object(diabetes_regressor: Fitted, tmp_path: Path) -> None:
    # GIVEN a raw regression Booster
    model, x = diabetes_regressor
    # WHEN packaged
    manifest = package(model.get_booster(), x, tmp_path / "b", name="diabetes-booster")
    # THEN it is a regressor bundle within tolerance
    assert [t.name for t in manifest.outputs] == ["variable"] and manifest.labels is None


@pytest.mark.parametrize("objective", ["rank:pairwise", "rank:ndcg", "rank:map"])
def test_ranker_serves_scores(objective: str, tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN an XGBRanker trained on 6 query groups of 10 documents, and its Booster saved as JSON
    rng = np.random.default_rng(4)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    relevance = (x[:, 0] > 0).astype(int) + (objective != "rank:map") * (x[:, 1] > 0.5)
    ranker = xgb.XGBRanker(n_estimators=6, max_depth=3, objective=objective, random_state=0, n_jobs=1)
    ranker.fit(x, relevance, qid=np.repeat(np.arange(6), 10))
    ranker.get_booster().save_model(tmp_path / "ranker.json")
    for source, out in ((ranker, tmp_path / "obj"), (tmp_path / "ranker.json", tmp_path / "file")):
        # WHEN the ranker object and the file are packaged
        manifest = package(source, x[:10], out, name="rank")
        # THEN each is one score per row, within float32 rounding of XGBoost, and the manifest says how to read it
        assert [(t.name, t.dtype) for t in manifest.outputs] == [("variable", "float32")] and manifest.labels is None
        assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
        assert f"{objective} ranker" in (manifest.preprocessing or "")
    # AND the served scores order documents like XGBoost's
    body = _serve_predict(tmp_path / "file", tmp_path, signing_key, x[10:20], labels=False)
    served = np.asarray(body["predictions"], dtype=np.float64).ravel()
    parity = manifest.parity
    assert parity is not None
    np.testing.assert_allclose(served, ranker.predict(x[10:20]), atol=parity.atol, rtol=parity.rtol)


def test_categorical_features(tmp_path: Path, signing_key: SigningKey) -> None:
    import pandas

    # GIVEN a classifier trained on a DataFrame with a 10-category string column (set-valued splits)
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 10, 200)
    names = list("abcdefghij")
    frame = pandas.DataFrame(
        {
            "size": rng.standard_normal(200).astype(np.float32),
            "colour": pandas.Categorical([names[c] for c in codes], categories=names),
        }
    )
    y = (frame["size"] + np.isin(codes, [1, 4, 7, 8]) * 2 > 0.8).astype(int)
    model = xgb.XGBClassifier(
        n_estimators=8, max_depth=3, enable_categorical=True, max_cat_to_onehot=1, random_state=0, n_jobs=1
    ).fit(frame, y)
    assert any(
        isinstance(json.loads(t).get("split_condition"), list) for t in model.get_booster().get_dump("", True, "json")
    )
    # WHEN it is packaged with a slice of the DataFrame as the sample
    manifest = package(model, frame.iloc[:8], tmp_path / "b", name="cat-xgb")
    # THEN the input is one float32 row per record, the manifest names the categorical column, and labels agree
    assert [(t.name, t.shape) for t in manifest.inputs] == [("input", [-1, 2])]
    assert "input columns [1] are categorical" in (manifest.preprocessing or "")
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0
    # AND served on every category code it answers like XGBoost on the DataFrame
    rows = np.stack([frame["size"].to_numpy(np.float32), codes.astype(np.float32)], axis=1)[:40]
    body = _serve_predict(tmp_path / "b", tmp_path, signing_key, rows)
    np.testing.assert_allclose(body["predictions"]["probabilities"], model.predict_proba(frame[:40]), atol=1e-4)
    assert body["labels"] == model.predict(frame[:40]).tolist()
    # AND a sample column that is neither numeric nor categorical is named
    with pytest.raises(PackagingError, match="sample column 'colour'") as info:
        package(model, frame.assign(colour=frame["colour"].astype(str)).iloc[:8], tmp_path / "c", name="c")
    assert info.value.field == "sample"


def test_softmax_objective_serves_probabilities(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    # GIVEN a Booster trained with multi:softmax (onnxmltools would emit raw margins as scores)
    x, y = load_iris(return_X_y=True)
    params = {"objective": "multi:softmax", "num_class": 3, "max_depth": 3, "nthread": 1, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=5)
    # WHEN packaged
    manifest = package(booster, x[::5].astype(np.float32), tmp_path / "b", name="iris-softmax")
    # THEN the scores are probabilities matching XGBoost's softmax of the margins, labels agreeing
    assert manifest.labels == [0, 1, 2]
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0
    assert manifest.parity.max_abs_diff <= 1e-5


def test_misconverted_objective_is_refused(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    # GIVEN a reg:logistic Booster (onnxmltools drops its sigmoid and base-score link)
    x, y = load_breast_cancer(return_X_y=True)
    booster = xgb.train({"objective": "reg:logistic", "nthread": 1}, xgb.DMatrix(x, label=y), num_boost_round=2)
    # WHEN packaged
    # THEN it is refused up front, naming the objective and what to use instead
    with pytest.raises(PackagingError, match="objective 'reg:logistic'.*binary:logistic"):
        package(booster, x[:4].astype(np.float32), tmp_path / "b", name="reglog")


def test_detection_by_object_and_file(iris_classifier: Fitted, tmp_path: Path) -> None:
    # GIVEN xgboost objects, an XGBoost JSON model, an MXNet-style symbol JSON and a plain JSON file
    model, _ = iris_classifier
    booster_path = tmp_path / "model.json"
    model.get_booster().save_model(booster_path)
    symbol = tmp_path / "net-symbol.json"
    symbol.write_text(json.dumps({"nodes": [{"op": "null", "name": "data"}], "heads": [[0, 0, 0]]}))
    other = tmp_path / "config.json"
    other.write_text('{"learning_rate": 0.1}')
    # WHEN detection runs
    # THEN xgboost claims its objects and model files (not sklearn), and nothing else
    assert isinstance(detect(model), XGBoostAdapter)
    assert isinstance(detect(model.get_booster()), XGBoostAdapter)
    assert isinstance(detect(booster_path), XGBoostAdapter)
    assert not XGBoostAdapter.detects(symbol) and not XGBoostAdapter.detects(other)
    assert not XGBoostAdapter.detects(np.zeros(3)) and not XGBoostAdapter.detects(tmp_path)


def test_wrong_file_is_refused(tmp_path: Path) -> None:
    # GIVEN a JSON file that is not an XGBoost model, forced through the xgboost adapter
    path = tmp_path / "net-symbol.json"
    path.write_text('{"nodes": []}')
    # WHEN packaged
    with pytest.raises(PackagingError, match="not an XGBoost model file") as info:
        package(path, np.zeros((2, 4), np.float32), tmp_path / "b", name="x", framework="xgboost")
    # THEN the error names the file and nothing is written
    assert "net-symbol.json" in info.value.message and not (tmp_path / "b").exists()


def test_pickle_needs_the_flag(iris_classifier: Fitted, tmp_path: Path) -> None:
    import joblib

    # GIVEN an XGBClassifier pickled with joblib
    model, x = iris_classifier
    path = tmp_path / "iris.joblib"
    joblib.dump(model, path)
    # WHEN packaged through the xgboost adapter without allow_pickle
    # THEN it is refused before unpickling
    with pytest.raises(PackagingError, match="allow_pickle=True"):
        package(path, x, tmp_path / "b", name="iris", framework="xgboost")
    # WHEN allowed
    with pytest.warns(PickleLoadWarning):
        manifest = package(path, x, tmp_path / "b", name="iris", framework="xgboost", allow_pickle=True)
    # THEN it packages like the object
    assert manifest.framework.name == "xgboost" and manifest.labels == [0, 1, 2]


def test_bad_sample_and_opset_are_refused(iris_classifier: Fitted, tmp_path: Path) -> None:
    # GIVEN a 4-feature model
    model, x = iris_classifier
    # WHEN the sample has the wrong width, or the opset is beyond the converter
    # THEN each error says what was expected
    with pytest.raises(PackagingError, match="sample has 3 features, the model was trained on 4"):
        package(model, x[:, :3], tmp_path / "b", name="iris")
    with pytest.raises(PackagingError, match="opset 17 is above") as info:
        package(model, x, tmp_path / "b", name="iris", opset=17)
    assert info.value.field == "opset"
    with pytest.raises(PackagingError, match="sample input is required"):
        package(model, None, tmp_path / "b", name="iris")


def test_missing_extra_names_the_install(iris_classifier: Fitted, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN onnxmltools cannot be imported
    model, x = iris_classifier
    monkeypatch.setitem(sys.modules, "onnxmltools", None)
    # WHEN the adapter exports
    # THEN the error says which extra to install
    with pytest.raises(PackagingError, match=r"pip install 'modelfn\[xgboost\]'"):
        XGBoostAdapter().export(model, x, opset=None)


def test_example_runs(tmp_path: Path) -> None:
    # GIVEN the xgboost example script
    script = REPO / "examples" / "xgboost" / "train_and_package.py"
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
