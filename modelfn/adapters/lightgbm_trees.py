"""LightGBM models (scikit-learn API or raw ``Booster``), converted with onnxmltools.

Tree ensembles map onto ONNX-ML's ``TreeEnsemble*`` operators, so the served model needs nothing
but onnxruntime. Classifiers come out as ``label`` + ``probabilities`` tensors (``zipmap=False``),
regressors as ``variable``. onnxmltools declares the classifier's ``label`` output with a fixed
length of 1; the batch dimension is made dynamic again so the manifest tells the truth.
Categorical features (``categorical_feature``, pandas ``category`` columns) take category codes;
the manifest lists them, with a DataFrame-trained model's categories. Files load from LightGBM's
text model format; pickle only with consent.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelfn.adapters._tabular import LABEL_OUTPUT, PROBA_OUTPUT, REGRESSION_OUTPUT, tabular_result
from modelfn.adapters.base import (
    ExportResult,
    SampleInput,
    class_from,
    import_extra,
    is_pickle_path,
    load_pickled,
    single_array,
)
from modelfn.adapters.xgboost_trees import category_codes
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

EXTRA = "lightgbm"
MODEL_SUFFIXES = (".txt",)
TEXT_MODEL_HEADER = b"tree\nversion="
"""How ``Booster.save_model`` starts every text model."""
DEFAULT_INPUT_NAME = "input"
DEFAULT_OPSET = 15
MAX_OPSET = 15
"""onnxmltools' tree converters support the default domain up to opset 15 (ai.onnx.ml 1)."""
CLASSIFIER_OBJECTIVES = ("binary", "multiclass")
REGRESSOR_OBJECTIVES = ("regression", "poisson", "gamma", "quantile", "huber", "tweedie")
MAX_LISTED_CATEGORIES = 20


class LightGBMAdapter:
    """An ``LGBMClassifier``/``LGBMRegressor`` or a ``lightgbm.Booster`` (classification or regression)."""

    name: ClassVar[str] = "lightgbm"

    @classmethod
    def detects(cls, model: Any) -> bool:
        """A lightgbm estimator or Booster, or a ``.txt`` file starting with LightGBM's model header."""
        if isinstance(model, Path):
            return model.is_file() and model.suffix.lower() in MODEL_SUFFIXES and _has_header(model)
        return class_from(model, "lightgbm") and (hasattr(model, "booster_") or type(model).__name__ == "Booster")

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """``lightgbm.Booster`` from a text model file; a pickled model only with ``allow_pickle``."""
        lgb = import_extra("lightgbm", extra=EXTRA)
        if path.suffix.lower() in MODEL_SUFFIXES:
            if not _has_header(path):
                raise PackagingError(
                    f"lightgbm: {path.name} is not a LightGBM text model (it must start with 'tree' /"
                    " 'version=', as Booster.save_model writes it)",
                    field="model",
                )
            try:
                return lgb.Booster(model_file=str(path))
            except lgb.basic.LightGBMError as exc:
                raise PackagingError(f"lightgbm: cannot load {path.name}: {exc}", field="model") from exc
        if is_pickle_path(path):
            model = load_pickled(path, allow_pickle=allow_pickle, adapter=self.name, extra=EXTRA)
            if not self.detects(model):
                raise PackagingError(f"lightgbm: {path.name} holds a {type(model).__name__}, not a LightGBM model")
            return model
        raise PackagingError(
            f"lightgbm: cannot load {path.name}; expected a text model (.txt, Booster.save_model)"
            " or, with allow_pickle, a pickled model",
            field="model",
        )

    def normalize_sample(self, sample: Any) -> Any:
        """A DataFrame becomes float32 rows, each category column holding its category codes."""
        return category_codes(sample)

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """onnxmltools' ``convert_lightgbm`` with a float32 ``[-1, n_features]`` input and no ZipMap."""
        lgb = import_extra("lightgbm", extra=EXTRA)
        onnxmltools = import_extra("onnxmltools", extra=EXTRA)
        data_types = import_extra("onnxmltools.convert.common.data_types", extra=EXTRA)
        from modelfn.bundle.manifest import FrameworkInfo

        input_name, x = single_array(sample, adapter=self.name)
        width = _check_width(model, x)
        target = opset or DEFAULT_OPSET
        if target > MAX_OPSET:
            raise PackagingError(
                f"lightgbm: opset {target} is above what onnxmltools' tree converters support ({MAX_OPSET})",
                field="opset",
            )
        classifier = _is_classifier(model)
        try:
            onx = onnxmltools.convert_lightgbm(
                model,
                initial_types=[(input_name or DEFAULT_INPUT_NAME, data_types.FloatTensorType([None, width]))],
                target_opset=target,
                zipmap=False,
            )
        except Exception as exc:  # onnxmltools raises RuntimeError, ValueError, NotImplementedError
            raise PackagingError(f"lightgbm: onnxmltools cannot convert {type(model).__name__}: {exc}") from exc
        _dynamic_batch_outputs(onx)
        framework = FrameworkInfo(
            name=self.name,
            version=lgb.__version__,
            converter="onnxmltools",
            converter_version=onnxmltools.__version__,
        )
        result = tabular_result(onx, framework, classifier=classifier, labels=_labels(model) if classifier else None)
        notes = "; ".join(filter(None, [result.notes, _categorical_note(model)]))
        return dataclasses.replace(result, notes=notes or None)

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, np.ndarray[Any, Any]]:
        """LightGBM's own predictions keyed like the ONNX outputs (Booster outputs expanded to match)."""
        import numpy as np

        _, x = single_array(sample, adapter=self.name)
        x = x.astype(np.float32)
        if hasattr(model, "booster_") and model.booster_.pandas_categorical is None:
            frame = _named_frame(model, x)
            if _is_classifier(model):
                return {
                    LABEL_OUTPUT: np.asarray(model.predict(frame)),
                    PROBA_OUTPUT: np.asarray(model.predict_proba(frame)),
                }
            return {REGRESSION_OUTPUT: np.asarray(model.predict(frame))}
        raw = np.asarray(_booster(model).predict(x), dtype=np.float64)  # codes as is, no pandas re-coding
        if not _is_classifier(model):
            return {REGRESSION_OUTPUT: raw}
        proba = np.stack([1.0 - raw, raw], axis=1) if raw.ndim == 1 else raw
        index = proba.argmax(axis=1)
        labels = np.asarray(model.classes_)[index] if hasattr(model, "classes_") else index.astype(np.int64)
        return {LABEL_OUTPUT: labels, PROBA_OUTPUT: proba}


def _has_header(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(TEXT_MODEL_HEADER)) == TEXT_MODEL_HEADER
    except OSError:
        return False


def _booster(model: Any) -> Any:
    return model.booster_ if hasattr(model, "booster_") else model


def _objective(booster: Any) -> str:
    """The objective as LightGBM records it (``binary sigmoid:1``, ``multiclass num_class:3``, ``regression``)."""
    return str(booster.dump_model(num_iteration=1)["objective"])


def _is_classifier(model: Any) -> bool:
    if hasattr(model, "booster_"):
        return hasattr(model, "predict_proba") and hasattr(model, "classes_")
    objective = _objective(model)
    if objective.startswith(CLASSIFIER_OBJECTIVES):
        return True
    if objective.startswith(REGRESSOR_OBJECTIVES):
        return False
    raise PackagingError(
        f"lightgbm: objective {objective!r} is not supported; supported:"
        f" {', '.join(CLASSIFIER_OBJECTIVES + REGRESSOR_OBJECTIVES)}",
        field="model",
    )


def _labels(model: Any) -> list[str | int]:
    import numpy as np

    if hasattr(model, "classes_"):
        return [v if isinstance(v, str) else int(v) for v in np.asarray(model.classes_).tolist()]
    classes = int(model.dump_model(num_iteration=1)["num_class"])
    return list(range(max(classes, 2)))


def _check_width(model: Any, x: npt.NDArray[Any]) -> int:
    if x.ndim != 2:
        raise PackagingError(f"lightgbm: the sample must be 2-D (rows, features), got shape {list(x.shape)}")
    expected = int(_booster(model).num_feature())
    if x.shape[1] != expected:
        raise PackagingError(
            f"lightgbm: the sample has {x.shape[1]} features, the model was trained on {expected}", field="sample"
        )
    return expected


def _named_frame(model: Any, x: npt.NDArray[Any]) -> Any:
    """A DataFrame with the training column names when there were any (avoids sklearn's name warning)."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return x
    pandas = import_extra("pandas", extra=EXTRA)
    return pandas.DataFrame(x, columns=list(names))


def _dynamic_batch_outputs(onx: Any) -> None:
    """Make every output's first dimension dynamic when the input's is (onnxmltools pins ``label`` to 1)."""
    first_input = onx.graph.input[0].type.tensor_type.shape.dim
    if not first_input or first_input[0].HasField("dim_value"):
        return
    for output in onx.graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].Clear()


def _categorical_note(model: Any) -> str | None:
    """Which input columns are categorical and, for a DataFrame-trained model, which code is which category."""
    booster = _booster(model)
    infos = booster.dump_model(num_iteration=1)["feature_infos"]
    columns = [i for i, info in enumerate(infos.values()) if info.get("values")]
    if not columns:
        return None
    note = f"input columns {columns} are categorical: send category codes"
    for column, categories in zip(columns, booster.pandas_categorical or [], strict=False):
        listed = ", ".join(f"{code}={value}" for code, value in enumerate(categories[:MAX_LISTED_CATEGORIES]))
        note += f"; column {column}: {listed}{', ...' if len(categories) > MAX_LISTED_CATEGORIES else ''}"
    return note
