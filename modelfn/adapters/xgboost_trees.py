"""XGBoost models (scikit-learn API or raw ``Booster``), converted with onnxmltools.

Tree ensembles map onto ONNX-ML's ``TreeEnsemble*`` operators, so the served model needs nothing
but onnxruntime. onnxmltools only understands features named ``f0..fN``: models trained on named
columns are converted from a copy with the names dropped (the original is never touched).
Classifiers come out as ``label`` + ``probabilities`` tensors (no ZipMap), regressors and rankers
(``rank:*``, one score per row) as ``variable``. Categorical features (``enable_categorical``)
take their category codes, as XGBoost itself sees them; a DataFrame sample's category columns are
turned into codes. Files load from XGBoost's own ``.json``/``.ubj`` formats; pickle only with consent.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
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
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

EXTRA = "xgboost"
MODEL_SUFFIXES = (".json", ".ubj")
DEFAULT_INPUT_NAME = "input"
DEFAULT_OPSET = 15
MAX_OPSET = 15
"""onnxmltools' tree converters support the default domain up to opset 15 (ai.onnx.ml 1)."""
CLASSIFIER_OBJECTIVES = ("binary:logistic", "multi:softprob", "multi:softmax")
RANK_PREFIX = "rank:"
UNSUPPORTED_OBJECTIVES = ("reg:logistic", "binary:logitraw", "binary:hinge")
"""Objectives onnxmltools maps to a different function than XGBoost computes."""
_JSON_HEAD = re.compile(rb'^\s*\{\s*"learner"\s*:')
_UBJ_HEAD = b"learner"
_SNIFF_BYTES = 64


class XGBoostAdapter:
    """An ``XGBClassifier``/``XGBRegressor``/``XGBRanker`` or a ``xgboost.Booster``."""

    name: ClassVar[str] = "xgboost"

    @classmethod
    def detects(cls, model: Any) -> bool:
        """An xgboost object, or a ``.json``/``.ubj`` file whose first bytes are an XGBoost model's."""
        if isinstance(model, Path):
            return model.is_file() and model.suffix.lower() in MODEL_SUFFIXES and _looks_like_xgboost(model)
        return class_from(model, "xgboost") and (hasattr(model, "get_booster") or type(model).__name__ == "Booster")

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """``xgboost.Booster`` from ``.json``/``.ubj``; a pickled model only with ``allow_pickle``."""
        xgb = import_extra("xgboost", extra=EXTRA)
        suffix = path.suffix.lower()
        if suffix in MODEL_SUFFIXES:
            if not _looks_like_xgboost(path):
                raise PackagingError(
                    f"xgboost: {path.name} is not an XGBoost model file (expected the JSON/UBJSON written by"
                    " Booster.save_model)",
                    field="model",
                )
            try:
                return xgb.Booster(model_file=str(path))
            except xgb.core.XGBoostError as exc:
                raise PackagingError(f"xgboost: cannot load {path.name}: {exc}", field="model") from exc
        if is_pickle_path(path):
            model = load_pickled(path, allow_pickle=allow_pickle, adapter=self.name, extra=EXTRA)
            if not self.detects(model):
                raise PackagingError(f"xgboost: {path.name} holds a {type(model).__name__}, not an XGBoost model")
            return model
        raise PackagingError(
            f"xgboost: cannot load {path.name}; expected {' or '.join(MODEL_SUFFIXES)} (Booster.save_model)"
            " or, with allow_pickle, a pickled model",
            field="model",
        )

    def normalize_sample(self, sample: Any) -> Any:
        """A DataFrame becomes float32 rows, each category column holding its category codes."""
        return category_codes(sample)

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """onnxmltools' ``convert_xgboost`` with a float32 ``[-1, n_features]`` input."""
        xgb = import_extra("xgboost", extra=EXTRA)
        onnxmltools = import_extra("onnxmltools", extra=EXTRA)
        data_types = import_extra("onnxmltools.convert.common.data_types", extra=EXTRA)
        from modelfn.bundle.manifest import FrameworkInfo

        input_name, x = single_array(sample, adapter=self.name)
        width = _check_width(model, x)
        target = _target_opset(opset)
        classifier = _is_classifier(model)
        objective = _objective(model)
        if objective in UNSUPPORTED_OBJECTIVES:
            raise PackagingError(
                f"xgboost: onnxmltools converts objective {objective!r} incorrectly (transform or base score);"
                f" train with one of {', '.join(CLASSIFIER_OBJECTIVES)} or a reg:squarederror-style objective",
                field="model",
            )
        try:
            source = _ranker_as_regressor(model) if objective.startswith(RANK_PREFIX) else model
            onx = onnxmltools.convert_xgboost(
                _without_feature_names(source),
                initial_types=[(input_name or DEFAULT_INPUT_NAME, data_types.FloatTensorType([None, width]))],
                target_opset=target,
            )
        except Exception as exc:  # onnxmltools raises RuntimeError, ValueError, NotImplementedError
            raise PackagingError(f"xgboost: onnxmltools cannot convert {type(model).__name__}: {exc}") from exc
        if objective == "multi:softmax":
            _softmax_scores(onx)
        framework = FrameworkInfo(
            name=self.name,
            version=xgb.__version__,
            converter="onnxmltools",
            converter_version=onnxmltools.__version__,
        )
        result = tabular_result(onx, framework, classifier=classifier, labels=_labels(model) if classifier else None)
        return dataclasses.replace(result, notes=_notes(model, objective, result.notes))

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, np.ndarray[Any, Any]]:
        """XGBoost's own predictions keyed like the ONNX outputs (Booster outputs expanded to match)."""
        import numpy as np

        _, x = single_array(sample, adapter=self.name)
        x = x.astype(np.float32)
        if hasattr(model, "get_booster"):
            if _is_classifier(model):
                proba = np.asarray(model.predict_proba(x))
                return {LABEL_OUTPUT: np.asarray(model.predict(x)), PROBA_OUTPUT: proba}
            return {REGRESSION_OUTPUT: np.asarray(model.predict(x))}
        xgb = import_extra("xgboost", extra=EXTRA)
        matrix = xgb.DMatrix(x, feature_names=model.feature_names, feature_types=model.feature_types)
        objective = _objective(model)
        if not objective.startswith(("binary:", "multi:")):
            return {REGRESSION_OUTPUT: np.asarray(model.predict(matrix))}
        if objective == "binary:logistic":
            positive = np.asarray(model.predict(matrix), dtype=np.float64)
            proba = np.stack([1.0 - positive, positive], axis=1)
        elif objective == "multi:softprob":
            proba = np.asarray(model.predict(matrix), dtype=np.float64)
        elif objective == "multi:softmax":
            margin = np.asarray(model.predict(matrix, output_margin=True), dtype=np.float64)
            exp = np.exp(margin - margin.max(axis=1, keepdims=True))
            proba = exp / exp.sum(axis=1, keepdims=True)
        else:
            raise PackagingError(
                f"xgboost: objective {objective!r} is not supported for classifiers;"
                f" supported: {', '.join(CLASSIFIER_OBJECTIVES)}",
                field="model",
            )
        return {LABEL_OUTPUT: proba.argmax(axis=1).astype(np.int64), PROBA_OUTPUT: proba}


def _looks_like_xgboost(path: Path) -> bool:
    """XGBoost's JSON and UBJSON models both open with the ``learner`` object (MXNet's JSON does not)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return False
    if path.suffix.lower() == ".ubj":
        return head.startswith(b"{") and _UBJ_HEAD in head
    return _JSON_HEAD.match(head) is not None


def _booster(model: Any) -> Any:
    return model.get_booster() if hasattr(model, "get_booster") else model


def _objective(model: Any) -> str:
    config = json.loads(_booster(model).save_config())
    return str(config["learner"]["objective"]["name"])


def _is_classifier(model: Any) -> bool:
    if hasattr(model, "get_booster"):
        return hasattr(model, "predict_proba") and hasattr(model, "classes_")
    return _objective(model).startswith(("binary:", "multi:"))


def _labels(model: Any) -> list[str | int]:
    import numpy as np

    if hasattr(model, "classes_"):
        return [v if isinstance(v, str) else int(v) for v in np.asarray(model.classes_).tolist()]
    config = json.loads(model.save_config())
    classes = int(config["learner"]["learner_model_param"]["num_class"])
    return list(range(max(classes, 2)))


def _check_width(model: Any, x: npt.NDArray[Any]) -> int:
    if x.ndim != 2:
        raise PackagingError(f"xgboost: the sample must be 2-D (rows, features), got shape {list(x.shape)}")
    expected = int(_booster(model).num_features())
    if x.shape[1] != expected:
        raise PackagingError(
            f"xgboost: the sample has {x.shape[1]} features, the model was trained on {expected}", field="sample"
        )
    return expected


def _target_opset(opset: int | None) -> int:
    target = opset or DEFAULT_OPSET
    if target > MAX_OPSET:
        raise PackagingError(
            f"xgboost: opset {target} is above what onnxmltools' tree converters support ({MAX_OPSET})", field="opset"
        )
    return target


def _without_feature_names(model: Any) -> Any:
    """The model itself when its features are already ``f0..fN``, else a copy with the names dropped."""
    names = _booster(model).feature_names
    if not names or all(n == f"f{i}" for i, n in enumerate(names)):
        return model
    clone = copy.deepcopy(model) if hasattr(model, "get_booster") else model.copy()
    booster = _booster(clone)
    booster.feature_names = None
    return clone


def _softmax_scores(onx: Any) -> None:
    """``multi:softmax`` converts with raw margins as scores; turn them into the probabilities XGBoost reports."""
    for node in onx.graph.node:
        if node.op_type == "TreeEnsembleClassifier":
            for attr in node.attribute:
                if attr.name == "post_transform":
                    attr.s = b"SOFTMAX"


def _ranker_as_regressor(model: Any) -> Any:
    """onnxmltools has no ranker converter; a ranker's score is a regressor's sum of leaves (no transform)."""
    xgb = import_extra("xgboost", extra=EXTRA)
    shell = xgb.XGBRegressor()
    shell.load_model(bytearray(_booster(model).save_raw("json")))
    return shell


def _notes(model: Any, objective: str, notes: str | None) -> str | None:
    """Say what a ranker's output means and which columns take category codes."""
    extra = []
    if objective.startswith(RANK_PREFIX):
        extra.append(f"{objective} ranker: {REGRESSION_OUTPUT} = relevance score, higher ranks first within a query")
    types = _booster(model).feature_types or []
    categorical = [i for i, t in enumerate(types) if t == "c"]
    if categorical:
        extra.append(f"input columns {categorical} are categorical: send category codes (0 = first category)")
    return "; ".join([notes or "", *extra]).strip("; ") or None


def category_codes(sample: Any) -> Any:
    """A pandas DataFrame as float32 rows, category columns as their codes (missing -> NaN); anything else as is."""
    columns = getattr(sample, "columns", None)
    if columns is None or not hasattr(sample, "dtypes"):
        return sample
    import numpy as np

    arrays = []
    for name in columns:
        column = sample[name]
        if str(column.dtype) == "category":
            codes = column.cat.codes.to_numpy().astype(np.float32)
            arrays.append(np.where(codes < 0, np.float32(np.nan), codes))
            continue
        try:
            arrays.append(column.to_numpy(dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise PackagingError(
                f"sample column {name!r} ({column.dtype}) is neither numeric nor a pandas category", field="sample"
            ) from exc
    return np.stack(arrays, axis=1)
