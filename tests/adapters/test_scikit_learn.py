"""scikit-learn models become ONNX bundles with plain tensors, labels and a parity report; unsafe files are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

from modelfn.adapters.base import PickleLoadWarning
from modelfn.adapters.scikit_learn import SklearnAdapter
from modelfn.bundle.manifest import Manifest
from modelfn.errors import PackagingError, ParityError
from modelfn.packaging import package
from modelfn.runtime.onnx_session import OnnxModel

pytestmark = [pytest.mark.framework, pytest.mark.slow]

Fitted = tuple[Any, npt.NDArray[np.float32]]


def _double(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A user function: skops cannot vouch for it, so a file referencing it must be refused."""
    return x * 2


def _serve(out: Path, manifest: Manifest, feeds: dict[str, Any]) -> dict[str, npt.NDArray[Any]]:
    return OnnxModel((out / "model.onnx").read_bytes(), manifest).predict(feeds)


def test_classifier_pipeline_end_to_end(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    # GIVEN a fitted scaler + logistic-regression pipeline and a float32 sample
    model, x = sklearn_classifier
    out = tmp_path / "iris"
    # WHEN it is packaged
    manifest = package(model, x, out, name="iris")
    # THEN the graph has plain label/probability tensors (no ZipMap), float32 input of the sample's width
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [("input", "float32", [-1, 4])]
    assert [(t.name, t.dtype, t.shape) for t in manifest.outputs] == [
        ("label", "int64", [-1]),
        ("probabilities", "float32", [-1, 3]),
    ]
    assert manifest.labels == [0, 1, 2]
    assert manifest.framework.name == "sklearn" and manifest.framework.converter == "skl2onnx"
    assert manifest.opset["ai.onnx"] == 17
    # AND the parity report (float32 ONNX vs float64 sklearn) lands in the manifest on disk
    parity = Manifest.from_json((out / "manifest.json").read_bytes()).parity
    assert parity is not None and parity == manifest.parity
    assert parity.samples == len(x) and parity.label_agreement == 1.0
    assert 0.0 < parity.max_abs_diff <= 1e-4 and set(parity.outputs) == {"probabilities"}
    # AND the served bundle answers like sklearn
    served = _serve(out, manifest, {"input": x})
    np.testing.assert_array_equal(served["label"], model.predict(x))
    np.testing.assert_allclose(served["probabilities"], model.predict_proba(x), atol=1e-5)


def test_regressor_end_to_end(sklearn_regressor: Fitted, tmp_path: Path) -> None:
    # GIVEN a fitted ridge regressor
    model, x = sklearn_regressor
    # WHEN it is packaged, with the input named through a dict sample
    manifest = package(model, {"features": x}, tmp_path / "b", name="diabetes")
    # THEN the output is `variable`, there are no labels, and predictions match within tolerance
    assert [t.name for t in manifest.inputs] == ["features"]
    assert [(t.name, t.dtype) for t in manifest.outputs] == [("variable", "float32")]
    assert manifest.labels is None
    assert manifest.parity is not None and manifest.parity.label_agreement is None
    served = _serve(tmp_path / "b", manifest, {"features": x})
    np.testing.assert_allclose(served["variable"].ravel(), model.predict(x), rtol=1e-4)


def test_float64_sample_keeps_float64(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    # GIVEN a float64 sample
    model, x = sklearn_classifier
    # WHEN packaged
    manifest = package(model, x.astype(np.float64), tmp_path / "b", name="iris64")
    # THEN the graph takes float64 and its probabilities are float64 too
    assert manifest.inputs[0].dtype == "float64"
    assert {t.name: t.dtype for t in manifest.outputs}["probabilities"] == "float64"


def test_string_class_labels(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    from sklearn.base import clone
    from sklearn.datasets import load_iris

    # GIVEN a classifier trained on string class names
    template, x = sklearn_classifier
    data = load_iris()
    model = clone(template).fit(data.data, data.target_names[data.target])
    # WHEN packaged
    manifest = package(model, x, tmp_path / "b", name="iris-names")
    # THEN labels are the names, the label output is a string tensor, and labels agree on every row
    assert manifest.labels == ["setosa", "versicolor", "virginica"]
    assert {t.name: t.dtype for t in manifest.outputs}["label"] == "string"
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0


def test_tiny_tolerance_fails_and_names_the_worst_element(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    # GIVEN real float32-vs-float64 differences and zero tolerance
    model, x = sklearn_classifier
    # WHEN packaged
    with pytest.raises(ParityError) as info:
        package(model, x, tmp_path / "b", name="iris", atol=0.0, rtol=0.0)
    # THEN the message names the output, the index and both values, and no bundle is written
    message = info.value.message
    assert "output 'probabilities' at index [" in message and "native " in message and "onnx " in message
    assert info.value.field == "probabilities"
    assert not (tmp_path / "b").exists()


class FlippedLabelAdapter(SklearnAdapter):
    """Real sklearn predictions with one label changed: parity must catch it."""

    def native_predict(self, model: Any, sample: Any) -> dict[str, npt.NDArray[Any]]:
        out = super().native_predict(model, sample)
        out["label"] = out["label"].copy()
        out["label"][3] = (out["label"][3] + 1) % 3
        return out


def test_label_disagreement_is_a_parity_error(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    # GIVEN an adapter whose native labels differ from the model's on row 3
    model, x = sklearn_classifier
    # WHEN packaged with it
    with pytest.raises(ParityError, match=r"labels differ at output 'label' at index \[3\]"):
        package(model, x, tmp_path / "b", name="iris", framework="tests.adapters.test_scikit_learn:FlippedLabelAdapter")


def test_sample_is_required(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    # GIVEN no sample (the input width is unknown)
    model, _ = sklearn_classifier
    # WHEN packaged
    # THEN the error says a sample is needed
    with pytest.raises(PackagingError, match="sample input is required"):
        package(model, None, tmp_path / "b", name="iris")


def test_skops_file_loads_and_packages(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    import skops.io as sio

    # GIVEN a pipeline saved as .skops
    model, x = sklearn_classifier
    path = tmp_path / "iris.skops"
    sio.dump(model, path)
    # WHEN the file is packaged (framework detected from the suffix)
    manifest = package(path, x, tmp_path / "b", name="iris")
    # THEN it converts like the object did
    assert manifest.framework.name == "sklearn" and manifest.labels == [0, 1, 2]


def test_skops_with_untrusted_types_is_refused(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    # GIVEN a .skops file referencing a function outside sklearn/numpy
    template, x = sklearn_classifier
    model = make_pipeline(FunctionTransformer(_double), template.steps[-1][1]).fit(x, template.predict(x))
    path = tmp_path / "custom.skops"
    sio.dump(model, path)
    # WHEN it is packaged
    with pytest.raises(PackagingError) as info:
        package(path, x, tmp_path / "b", name="custom")
    # THEN the refusal lists the offending type
    assert "tests.adapters.test_scikit_learn._double" in info.value.message
    assert not (tmp_path / "b").exists()


def test_pickle_needs_the_flag_and_warns_with_it(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    import joblib

    # GIVEN a pipeline saved with joblib (pickle)
    model, x = sklearn_classifier
    path = tmp_path / "iris.joblib"
    joblib.dump(model, path)
    # WHEN packaged without allow_pickle
    # THEN it is refused with a message that explains the flag
    with pytest.raises(PackagingError, match="allow_pickle=True") as info:
        package(path, x, tmp_path / "b", name="iris")
    assert info.value.field == "allow_pickle"
    # WHEN packaged with allow_pickle
    with pytest.warns(PickleLoadWarning, match="arbitrary code"):
        manifest = package(path, x, tmp_path / "b", name="iris", allow_pickle=True)
    # THEN it packages, and the bundle itself holds no pickle
    assert manifest.labels == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["manifest.json", "model.onnx"]
    assert not (tmp_path / "b" / "model.onnx").read_bytes().startswith(b"\x80")


def test_non_predictor_is_refused(tmp_path: Path) -> None:
    from sklearn.cluster import KMeans

    # GIVEN a clusterer (neither classifier nor regressor)
    x = np.random.default_rng(0).standard_normal((12, 3)).astype(np.float32)
    model = KMeans(n_clusters=2, n_init=1, random_state=0).fit(x)
    # WHEN packaged
    # THEN the error says what modelfn packages
    with pytest.raises(PackagingError, match="neither a classifier nor a regressor"):
        package(model, x, tmp_path / "b", name="km")


class Doubler(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A user transformer skl2onnx has no converter for."""

    def fit(self, x: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, x: Any) -> Any:
        return np.asarray(x) * 2


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_hist_gradient_boosting_in_a_pipeline(kind: str, tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # GIVEN a scaler + HistGradientBoosting pipeline trained here, with a missing value in the sample
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4)).astype(np.float32)
    y = x[:, 0] * 2 + x[:, 1] if kind == "regressor" else (x[:, 0] + x[:, 2] > 0).astype(int)
    x[3, 1] = np.nan
    estimator = (
        HistGradientBoostingRegressor(max_iter=8) if kind == "regressor" else HistGradientBoostingClassifier(max_iter=8)
    )
    model = make_pipeline(StandardScaler(), estimator).fit(x, y)
    # WHEN packaged (protobuf 7 made skl2onnx's tree attributes fail here)
    manifest = package(model, x, tmp_path / "b", name="hgb")
    # THEN parity holds and the served bundle answers like the pipeline
    assert manifest.parity is not None and manifest.parity.max_abs_diff < 1e-4
    served = _serve(tmp_path / "b", manifest, {"input": x})
    if kind == "regressor":
        np.testing.assert_allclose(served["variable"].ravel(), model.predict(x), atol=1e-4)
    else:
        np.testing.assert_array_equal(served["label"], model.predict(x))
        assert manifest.parity.label_agreement == 1.0


def test_converter_failure_is_short_and_names_the_root_cause() -> None:
    from modelfn.adapters._converter_error import VERBOSE_HINT, brief, converter_failure

    # GIVEN skl2onnx's shape of failure: a 50 KB attribute dump wrapping a one-line protobuf TypeError
    dump = "Unable to create node 'TreeEnsembleRegressor' with attributes={" + "np.uint32(2),\n" * 4000 + "}"
    try:
        try:
            raise TypeError("Field onnx.AttributeProto.ints: Expected an int, got a boolean.")
        except TypeError as inner:
            raise ValueError(dump) from inner
    except ValueError as exc:
        # WHEN it becomes a packaging error
        error = converter_failure("sklearn: skl2onnx cannot convert Pipeline", exc)
        error.__cause__ = exc
    # THEN the message is a few hundred characters, root cause first, and points at --verbose
    assert len(error.message) < 600
    assert error.message.startswith(
        "sklearn: skl2onnx cannot convert Pipeline: TypeError: Field onnx.AttributeProto.ints: Expected an int"
    )
    assert "TreeEnsembleRegressor" in error.message and VERBOSE_HINT in error.message
    assert brief(error).count("\n") <= 1


def test_cli_shows_the_converter_error_briefly_and_fully_with_verbose(tmp_path: Path) -> None:
    import joblib
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from typer.testing import CliRunner

    from modelfn.cli import app

    # GIVEN a pickled pipeline with a transformer skl2onnx cannot convert
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    joblib.dump(make_pipeline(Doubler(), LinearRegression()).fit(x, x[:, 0]), tmp_path / "m.joblib")
    np.save(tmp_path / "x.npy", x)
    args = ["package", str(tmp_path / "m.joblib"), "--sample", str(tmp_path / "x.npy"), "--name", "m", "--allow-pickle"]
    # WHEN packaged through the CLI, then again with --verbose
    short = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    full = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--verbose"])
    # THEN both fail; the short form names the root error in a few lines, --verbose adds the traceback
    assert short.exit_code == 2 and full.exit_code == 2
    error = short.output[short.output.index("error:") :]
    assert "MissingShapeCalculator" in error and "Doubler" in error
    assert len(error.splitlines()) <= 4 and "Traceback" not in short.output
    assert "Traceback" in full.output and "MissingShapeCalculator" in full.output
    assert len(full.output) > len(short.output)
