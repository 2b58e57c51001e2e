"""scikit-learn estimators and pipelines, converted with skl2onnx.

Classifiers come out as two plain tensors, ``label`` and ``probabilities`` (ZipMap disabled, also
on the final step of a pipeline), regressors as ``variable``. The input width comes from the
sample; a float64 sample keeps float64 end to end. Files load from ``.skops`` after every
untrusted type is checked to be scikit-learn's or numpy's; pickle (``.joblib``, ``.pkl``) only
with explicit consent, at build time, and never into the bundle.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelfn.adapters._converter_error import converter_failure
from modelfn.adapters._tabular import LABEL_OUTPUT, PROBA_OUTPUT, REGRESSION_OUTPUT, tabular_result
from modelfn.adapters.base import (
    ExportResult,
    SampleInput,
    class_from,
    feature_names_of,
    import_extra,
    load_pickled,
    single_array,
)
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np

SKOPS_SUFFIX = ".skops"
DEFAULT_INPUT_NAME = "input"
DEFAULT_OPSET = 17
DEFAULT_ML_OPSET = 3
TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.")
"""Types a ``.skops`` file may reference beyond skops' own defaults."""


class SklearnAdapter:
    """A fitted scikit-learn classifier or regressor (a pipeline ending in one counts)."""

    name: ClassVar[str] = "sklearn"

    @classmethod
    def detects(cls, model: Any) -> bool:
        """A fitted-looking sklearn estimator, or a ``.skops`` / pickle-family file."""
        if isinstance(model, Path):
            return model.is_file() and (model.suffix.lower() == SKOPS_SUFFIX or model.suffix.lower() in _PICKLE)
        return class_from(model, "sklearn") and hasattr(model, "predict")

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """``.skops`` with a type allow-list; ``.joblib``/``.pkl`` only with ``allow_pickle``."""
        suffix = path.suffix.lower()
        if suffix == SKOPS_SUFFIX:
            return _load_skops(path)
        if suffix in _PICKLE:
            return load_pickled(path, allow_pickle=allow_pickle, adapter=self.name, extra="sklearn")
        raise PackagingError(
            f"sklearn: cannot load {path.name}; expected {SKOPS_SUFFIX} or (with allow_pickle) {', '.join(_PICKLE)}"
        )

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """skl2onnx with explicit input types and plain probability tensors."""
        import numpy as np

        skl2onnx = import_extra("skl2onnx", extra="sklearn")
        sklearn = import_extra("sklearn", extra="sklearn")
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

        from modelfn.bundle.manifest import FrameworkInfo

        input_name, x = single_array(sample, adapter=self.name)
        if x.ndim != 2:
            raise PackagingError(f"sklearn: the sample must be 2-D (rows, features), got shape {list(x.shape)}")
        tensor_type = DoubleTensorType if x.dtype == np.float64 else FloatTensorType
        classifier = _is_classifier(model)
        final = _final_estimator(model)
        options = {id(final): {"zipmap": False}} if classifier else None
        try:
            onx = skl2onnx.to_onnx(
                model,
                initial_types=[(input_name or DEFAULT_INPUT_NAME, tensor_type([None, int(x.shape[1])]))],
                target_opset={"": opset or DEFAULT_OPSET, "ai.onnx.ml": DEFAULT_ML_OPSET},
                options=options,
            )
        except Exception as exc:  # skl2onnx raises RuntimeError, NameError, its own Missing* errors
            raise converter_failure(f"sklearn: skl2onnx cannot convert {type(model).__name__}", exc) from exc
        framework = FrameworkInfo(
            name=self.name,
            version=sklearn.__version__,
            converter="skl2onnx",
            converter_version=skl2onnx.__version__,
        )
        result = tabular_result(
            onx,
            framework,
            classifier=classifier,
            labels=_plain(model.classes_) if classifier and hasattr(model, "classes_") else None,
        )
        return dataclasses.replace(result, feature_names=feature_names_of(model))

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, np.ndarray[Any, Any]]:
        """``predict`` (+ ``predict_proba``) keyed like the ONNX outputs."""
        import numpy as np

        _, x = single_array(sample, adapter=self.name)
        x = _named(model, x)
        if _is_classifier(model):
            out = {LABEL_OUTPUT: np.asarray(model.predict(x))}
            if hasattr(model, "predict_proba"):
                out[PROBA_OUTPUT] = np.asarray(model.predict_proba(x))
            return out
        if _is_regressor(model):
            return {REGRESSION_OUTPUT: np.asarray(model.predict(x))}
        raise PackagingError(
            f"sklearn: {type(model).__name__} is neither a classifier nor a regressor; modelfn packages those"
            " (or a pipeline ending in one)"
        )


_PICKLE = (".joblib", ".pkl", ".pickle")


def _plain(classes: Any) -> list[str | int]:
    """Class labels as plain Python values (an object array of a pandas target holds ``numpy.str_``)."""
    import numpy as np

    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(classes).tolist()]


def _named(model: Any, x: Any) -> Any:
    """Rows as a DataFrame with the training column names when the model was fitted on one (no name warning)."""
    names = feature_names_of(model)
    if names is None or len(names) != x.shape[1]:
        return x
    try:
        import pandas  # a model fitted on a DataFrame was fitted where pandas is installed
    except ImportError:
        return x
    return pandas.DataFrame(x, columns=names)


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(model))


def _is_regressor(model: Any) -> bool:
    from sklearn.base import is_regressor

    return bool(is_regressor(model))


def _final_estimator(model: Any) -> Any:
    """The last step of (possibly nested) pipelines: the estimator whose outputs the graph ends with."""
    while hasattr(model, "steps"):
        model = model.steps[-1][1]
    return model


def _load_skops(path: Path) -> Any:
    sio = import_extra("skops.io", extra="sklearn")
    try:
        untrusted = list(sio.get_untrusted_types(file=path))
    except Exception as exc:  # zipfile / json errors for a damaged file
        raise PackagingError(f"sklearn: {path.name} is not a readable .skops file: {exc}") from exc
    refused = sorted(t for t in untrusted if not t.startswith(TRUSTED_TYPE_PREFIXES))
    if refused:
        raise PackagingError(
            f"sklearn: {path.name} references types outside scikit-learn and numpy, refused: {', '.join(refused)}."
            " Load it yourself with skops.io.load(..., trusted=[...]) after review, and pass the object",
            field="model",
        )
    try:
        return sio.load(path, trusted=untrusted)
    except Exception as exc:  # skops raises UntrustedTypesFoundException, TypeError, ...
        raise PackagingError(f"sklearn: cannot load {path.name}: {exc}") from exc
