"""Spark MLlib pipelines become ONNX bundles that serve Spark's own predictions over HTTP, without a JVM."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelfn.adapters.registry import detect
from modelfn.adapters.spark_mllib import SparkMLlibAdapter, sample_columns
from modelfn.bundle.manifest import Manifest
from modelfn.errors import PackagingError
from modelfn.packaging import package
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey

pytestmark = [pytest.mark.framework, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DIABETES_COLUMNS = ["age", "bmi", "bp"]
Columns = dict[str, npt.NDArray[np.float32]]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local, single-core, UI-less session for the whole module (a JVM start costs seconds)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[1]").appName("modelfn-tests")
    for key, value in {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.memory": "512m",
        "spark.sql.shuffle.partitions": "1",
    }.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _frame(spark: Any, x: npt.NDArray[Any], y: npt.NDArray[Any], columns: list[str]) -> Any:
    rows = [(*map(float, features), float(target)) for features, target in zip(x, y, strict=True)]
    return spark.createDataFrame(rows, [*columns, "label"])


def _columns(x: npt.NDArray[Any], names: list[str]) -> Columns:
    """The sample as packaging feeds it: one float32 (n, 1) array per column."""
    return {name: x[:, [i]].astype(np.float32) for i, name in enumerate(names)}


def _spark_outputs(spark: Any, model: Any, x: npt.NDArray[Any], names: list[str], cols: list[str]) -> list[Any]:
    """Spark's own ``transform`` on float32-rounded rows, the selected columns as lists."""
    frame = spark.createDataFrame([tuple(float(v) for v in row) for row in x.astype(np.float32)], names)
    rows = model.transform(frame).select(*cols).collect()
    return [[r[c].toArray() if hasattr(r[c], "toArray") else r[c] for r in rows] for c in cols]


@pytest.fixture(scope="module")
def iris_frame(spark: Any) -> tuple[Any, npt.NDArray[np.float64]]:
    """(iris as a Spark DataFrame with a label column, every 6th row as the sample)."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return _frame(spark, x, y, IRIS_COLUMNS), x[::6]


@pytest.fixture(scope="module")
def iris_pipeline(iris_frame: tuple[Any, Any]) -> tuple[Any, npt.NDArray[np.float64]]:
    """(VectorAssembler + multinomial LogisticRegression fitted on iris, the sample)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    frame, x = iris_frame
    stages: list[Any] = [VectorAssembler(inputCols=IRIS_COLUMNS, outputCol="features"), LogisticRegression(maxIter=30)]
    return Pipeline(stages=stages).fit(frame), x


@pytest.fixture(scope="module")
def diabetes_pipeline(spark: Any) -> tuple[Any, npt.NDArray[np.float64]]:
    """(VectorAssembler + StandardScaler + LinearRegression on three diabetes columns, 20 rows)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.ml.regression import LinearRegression
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x = x[:, [0, 2, 3]]
    stages: list[Any] = [
        VectorAssembler(inputCols=DIABETES_COLUMNS, outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features", withMean=True),
        LinearRegression(maxIter=20),
    ]
    model = Pipeline(stages=stages).fit(_frame(spark, x, y, DIABETES_COLUMNS))
    return model, x[:20]


def test_classifier_pipeline_end_to_end(
    spark: Any, iris_pipeline: tuple[Any, Any], tmp_path: Path, signing_key: SigningKey
) -> None:
    # GIVEN a fitted multinomial logistic-regression pipeline and its columns as the sample
    model, x = iris_pipeline
    out = tmp_path / "iris"
    # WHEN it is packaged (detected from the object)
    manifest = package(model, _columns(x, IRIS_COLUMNS), out, name="iris-spark")
    # THEN each column is a [-1, 1] float32 input and the outputs keep Spark's column names
    assert manifest.framework.name == "spark" and manifest.framework.converter == "onnxmltools"
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [(c, "float32", [-1, 1]) for c in IRIS_COLUMNS]
    assert [(t.name, t.dtype, t.shape) for t in manifest.outputs] == [
        ("prediction", "int64", [-1]),
        ("probability", "float32", [-1, 3]),
    ]
    assert manifest.labels == [0, 1, 2] and manifest.opset["ai.onnx"] <= 15
    # AND the parity report on disk: softmax probabilities like Spark's, every label agreeing
    parity = Manifest.from_json((out / "manifest.json").read_bytes()).parity
    assert parity is not None and parity == manifest.parity
    assert parity.samples == len(x) and parity.label_agreement == 1.0 and parity.max_abs_diff <= 1e-5
    # WHEN signed, pushed and served, and called with one object per row
    client = serve(publish(out, str(tmp_path / "store"), signing_key).settings)
    try:
        rows = [{c: [float(v)] for c, v in zip(IRIS_COLUMNS, row, strict=True)} for row in x]
        response = client.post("/predict", json={"instances": rows, "return_labels": True})
    finally:
        client.close()
    # THEN the served classes and probabilities are Spark's, within the recorded tolerance
    assert response.status_code == 200, response.text
    body = response.json()
    prediction, probability = _spark_outputs(spark, model, x, IRIS_COLUMNS, ["prediction", "probability"])
    assert body["predictions"]["prediction"] == [int(p) for p in prediction] == body["labels"]
    np.testing.assert_allclose(body["predictions"]["probability"], np.stack(probability), atol=parity.atol)


def test_regression_pipeline_served_through_v2(
    spark: Any, diabetes_pipeline: tuple[Any, Any], tmp_path: Path, signing_key: SigningKey
) -> None:
    # GIVEN a scaler + linear-regression pipeline
    model, x = diabetes_pipeline
    out = tmp_path / "reg"
    # WHEN packaged
    manifest = package(model, _columns(x, DIABETES_COLUMNS), out, name="diabetes-spark")
    # THEN the one output is Spark's prediction column, with no labels
    assert [(t.name, t.dtype) for t in manifest.outputs] == [("prediction", "float32")]
    assert manifest.labels is None and manifest.parity is not None and manifest.parity.label_agreement is None
    # WHEN served and called through the Open Inference Protocol V2, one tensor per column
    client = serve(publish(out, str(tmp_path / "store"), signing_key).settings)
    try:
        tensors = [
            {"name": c, "shape": [len(x), 1], "datatype": "FP32", "data": x[:, i].tolist()}
            for i, c in enumerate(DIABETES_COLUMNS)
        ]
        response = client.post("/v2/models/diabetes-spark/infer", json={"inputs": tensors})
    finally:
        client.close()
    # THEN the predictions match Spark's within the recorded tolerance
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    (expected,) = _spark_outputs(spark, model, x, DIABETES_COLUMNS, ["prediction"])
    np.testing.assert_allclose(
        np.asarray(output["data"], dtype=np.float64), expected, rtol=manifest.parity.rtol, atol=manifest.parity.atol
    )


def test_random_forest_pipeline(iris_frame: tuple[Any, Any], tmp_path: Path) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler

    # GIVEN a tree-ensemble pipeline (its converter reads the trees back through the Spark session)
    frame, x = iris_frame
    forest = RandomForestClassifier(numTrees=5, maxDepth=3, seed=0)
    model = Pipeline(stages=[VectorAssembler(inputCols=IRIS_COLUMNS, outputCol="features"), forest]).fit(frame)
    # WHEN packaged
    manifest = package(model, _columns(x, IRIS_COLUMNS), tmp_path / "b", name="iris-forest")
    # THEN it is a classifier bundle agreeing with Spark on every row
    assert manifest.labels == [0, 1, 2] and [t.name for t in manifest.outputs] == ["prediction", "probability"]
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0
    assert manifest.parity.max_abs_diff <= 1e-5


def test_saved_pipeline_directory(spark: Any, iris_pipeline: tuple[Any, Any], tmp_path: Path) -> None:
    # GIVEN a PipelineModel saved to a directory, and the caller's own running session
    model, x = iris_pipeline
    path = tmp_path / "pipeline"
    model.write().overwrite().save(str(path))
    # WHEN the directory is packaged (detected from its metadata/ + stages/ layout)
    manifest = package(path, _columns(x, IRIS_COLUMNS), tmp_path / "b", name="iris-dir")
    # THEN it converts like the object, and the caller's session is left running
    assert manifest.framework.name == "spark" and manifest.labels == [0, 1, 2]
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0
    assert spark.sparkContext._jsc is not None


def test_detection_by_object_and_layout(iris_pipeline: tuple[Any, Any], tmp_path: Path) -> None:
    from pyspark.ml import Pipeline

    # GIVEN a fitted pipeline, one of its fitted stages, an unfitted pipeline and directory layouts
    model, _ = iris_pipeline
    saved = tmp_path / "saved"
    (saved / "metadata").mkdir(parents=True)
    (saved / "stages").mkdir()
    (tmp_path / "other" / "metadata").mkdir(parents=True)
    # WHEN detection runs
    # THEN fitted models and saved pipelines are Spark's; estimators and other directories are not
    assert isinstance(detect(model), SparkMLlibAdapter)
    assert SparkMLlibAdapter.detects(model.stages[-1])
    assert isinstance(detect(saved), SparkMLlibAdapter)
    assert not SparkMLlibAdapter.detects(Pipeline(stages=[]))
    assert not SparkMLlibAdapter.detects(tmp_path / "other") and not SparkMLlibAdapter.detects(np.zeros(3))


def test_sample_columns_from_a_dataframe_or_dict() -> None:
    import pandas

    # GIVEN the same columns as a pandas DataFrame and as a dict of 1-D arrays
    frame = pandas.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
    # WHEN normalized
    from_frame = sample_columns(frame)
    from_dict = SparkMLlibAdapter().normalize_sample({"a": np.array([1, 2, 3]), "b": np.array([0.5, 1.5, 2.5])})
    # THEN both are float32 (n, 1) columns in order
    for columns in (from_frame, from_dict):
        assert list(columns) == ["a", "b"]
        assert all(v.dtype == np.float32 and v.shape == (3, 1) for v in columns.values())
    # AND text columns (numpy or pandas strings) become (n, 1) object columns of str
    text = sample_columns(pandas.DataFrame({"c": ["x", "y"]}))["c"]
    assert text.dtype == object and text.shape == (2, 1) and text[:, 0].tolist() == ["x", "y"]
    assert sample_columns({"c": np.array(["x", "y"])})["c"].dtype == object


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (None, "a sample is required"),
        (np.zeros((3, 4)), "must name its columns"),
        ({"a": np.array(["x", 1], dtype=object)}, "numeric or strings"),
        ({"a": np.zeros(3), "b": np.zeros(2)}, "has 2 rows, the others 3"),
        ({}, "no columns"),
    ],
)
def test_bad_samples_are_refused(sample: Any, message: str) -> None:
    # GIVEN a sample without column names, with mixed values, ragged or empty
    # WHEN normalized
    # THEN the error says what a sample must be
    with pytest.raises(PackagingError, match=message):
        sample_columns(sample)


def test_wrong_directory_is_refused(tmp_path: Path) -> None:
    # GIVEN a directory that is not a saved pipeline, forced through the spark adapter
    (tmp_path / "model" / "metadata").mkdir(parents=True)
    # WHEN packaged
    with pytest.raises(PackagingError, match="not a saved PipelineModel directory"):
        package(tmp_path / "model", {"a": np.zeros((2, 1))}, tmp_path / "b", name="x", framework="spark")
    # THEN nothing is written
    assert not (tmp_path / "b").exists()


def test_opset_and_missing_extra(iris_pipeline: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = iris_pipeline
    # GIVEN an opset beyond the converter
    # WHEN exported
    # THEN the error names the option
    with pytest.raises(PackagingError, match="opset 17 is above") as info:
        SparkMLlibAdapter().export(model, _columns(x, IRIS_COLUMNS), opset=17)
    assert info.value.field == "opset"
    # GIVEN onnxmltools cannot be imported
    monkeypatch.setitem(sys.modules, "onnxmltools", None)
    # WHEN exported
    # THEN the error says which extra to install
    with pytest.raises(PackagingError, match=r"pip install 'modelfn\[spark\]'"):
        SparkMLlibAdapter().export(model, _columns(x, IRIS_COLUMNS), opset=None)


def test_example_runs(tmp_path: Path) -> None:
    # GIVEN the spark example script (it saves a pipeline, stops its session, packages the directory)
    script = REPO / "examples" / "spark" / "train_and_package.py"
    # WHEN it runs in a fresh interpreter
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "bundle")],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    # THEN it writes a bundle and prints the next CLI steps
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "bundle" / "model.onnx").is_file() and (tmp_path / "bundle" / "manifest.json").is_file()
    assert "served prediction: {'predictions'" in result.stdout  # signed, pushed, served
    assert "modelfn sign" in result.stdout and "modelfn serve" in result.stdout


@pytest.fixture(scope="module")
def colors_pipeline(spark: Any) -> tuple[Any, dict[str, npt.NDArray[Any]], list[tuple[str, float]]]:
    """(StringIndexer + OneHotEncoder on a string column + VectorAssembler + LogisticRegression, sample, rows)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    rng = np.random.default_rng(0)
    colors = ["red", "green", "blue"]
    rows = [(colors[i % 3], float(rng.normal())) for i in range(60)]
    frame = spark.createDataFrame([(c, x, float((c == "red") != (x > 0))) for c, x in rows], ["color", "x", "label"])
    stages: list[Any] = [
        StringIndexer(inputCol="color", outputCol="color_index"),
        OneHotEncoder(inputCols=["color_index"], outputCols=["color_vec"], dropLast=False),
        VectorAssembler(inputCols=["color_vec", "x"], outputCol="features"),
        LogisticRegression(maxIter=20),
    ]
    sample = {"color": np.array([c for c, _ in rows[:12]]), "x": np.array([x for _, x in rows[:12]])}
    return Pipeline(stages=stages).fit(frame), sample, rows[:12]


def test_string_columns_convert_and_serve_as_people_send_them(
    spark: Any, colors_pipeline: tuple[Any, Any, Any], tmp_path: Path, signing_key: SigningKey
) -> None:
    # GIVEN a pipeline that indexes and one-hot encodes a string column, trained here
    model, sample, rows = colors_pipeline
    out = tmp_path / "colors"
    # WHEN packaged with 1-D columns as the sample
    manifest = package(model, sample, out, name="colors")
    # THEN the string column is a string [-1, 1] input and every label agrees with Spark
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [
        ("color", "string", [-1, 1]),
        ("x", "float32", [-1, 1]),
    ]
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0
    assert manifest.parity.max_abs_diff <= 1e-5
    # WHEN served and called with TF Serving row objects (one scalar per column) and with 1-D columns
    client = serve(publish(out, str(tmp_path / "store"), signing_key).settings)
    try:
        by_rows = client.post("/predict", json={"instances": [{"color": c, "x": x} for c, x in rows]})
        by_columns = client.post(
            "/predict", json={"inputs": {"color": [c for c, _ in rows], "x": [x for _, x in rows]}}
        )
        unseen = client.post("/predict", json={"instances": [{"color": "purple", "x": 0.5}]})
    finally:
        client.close()
    # THEN both give Spark's own predictions
    assert by_rows.status_code == 200, by_rows.text
    assert by_columns.status_code == 200, by_columns.text
    frame = spark.createDataFrame([(c, float(np.float32(x))) for c, x in rows], ["color", "x"])
    expected = [int(r["prediction"]) for r in model.transform(frame).select("prediction").collect()]
    assert by_rows.json()["predictions"]["prediction"] == expected == by_columns.json()["predictions"]["prediction"]
    # AND a colour not seen in training is answered (all-zero one-hot, as the notes say), not a server error
    assert unseen.status_code == 200, unseen.text
    assert manifest.preprocessing is not None and "['color'] not seen in training" in manifest.preprocessing


@pytest.mark.parametrize("handle_invalid", ["error", "keep"])
def test_spark_default_one_hot_encoder_converts(spark: Any, tmp_path: Path, handle_invalid: str) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    # GIVEN a pipeline with Spark's default OneHotEncoder (dropLast=True; handleInvalid 'error', the default, or 'keep')
    colors = ["a", "b", "c", "a", "b", "c", "a", "c"]
    frame = spark.createDataFrame([(c, float(c == "b")) for c in colors], ["color", "label"])
    stages: list[Any] = [
        StringIndexer(inputCol="color", outputCol="ci"),
        OneHotEncoder(inputCols=["ci"], outputCols=["cv"], handleInvalid=handle_invalid),
        VectorAssembler(inputCols=["cv"], outputCol="features"),
        LogisticRegression(maxIter=20),
    ]
    model = Pipeline(stages=stages).fit(frame)
    # WHEN packaged (the last category's column is dropped: it encodes as all zeros)
    manifest = package(model, {"color": np.array(["a", "b", "c"])}, tmp_path / "b", name="ohe")
    # THEN the ONNX model agrees with Spark on every category, the dropped one included
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0
    assert manifest.parity.max_abs_diff <= 1e-5


def test_one_hot_encoder_that_onnx_cannot_express_says_what_converts(spark: Any, tmp_path: Path) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    # GIVEN an encoder keeping an extra column for invalid values (handleInvalid='keep', dropLast=False)
    frame = spark.createDataFrame([("a", 0.0), ("b", 1.0), ("c", 0.0), ("a", 1.0)], ["color", "label"])
    stages: list[Any] = [
        StringIndexer(inputCol="color", outputCol="ci", handleInvalid="keep"),
        OneHotEncoder(inputCols=["ci"], outputCols=["cv"], handleInvalid="keep", dropLast=False),
        VectorAssembler(inputCols=["cv"], outputCol="features"),
        LogisticRegression(maxIter=5),
    ]
    model = Pipeline(stages=stages).fit(frame)
    # WHEN packaged THEN the short error names the settings that convert
    with pytest.raises(PackagingError, match=r"dropLast=True") as info:
        package(model, {"color": np.array(["a", "b"])}, tmp_path / "b", name="ohe")
    assert len(info.value.message) < 800
