"""Spark MLlib fitted models and ``PipelineModel``s, converted with onnxmltools' ``convert_sparkml``.

The JVM is a build-time cost only: a local, single-core, UI-less Spark session bound to
127.0.0.1 is started when none is running (to load a saved pipeline, convert it and compute the
native predictions for parity) and stopped once the parity predictions are done; a session the
caller started is used and left alone. The bundle is plain ONNX and serves without Java.

The sample is a mapping (or pandas DataFrame) of numeric or string columns; each column becomes
one ONNX input of shape ``[-1, 1]`` named after it, as ``convert_sparkml`` expects: float32 for
numbers, string for text (``StringIndexer``, then ``OneHotEncoder``, convert on strings). The served
function also takes such a column as a plain list or as one value per row object. Outputs keep the
pipeline's column names (``prediction``, ``probability``); a classifier's prediction is an int64
class index. onnxmltools maps a multinomial logistic regression to per-class sigmoids; the graph
is patched to softmax, which is what Spark computes (parity proves it).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelfn.adapters._converter_error import converter_failure
from modelfn.adapters._spark_one_hot import default_one_hot_encoder_converts
from modelfn.adapters.base import ExportResult, SampleInput, class_from, import_extra
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

EXTRA = "spark"
PIPELINE_DIRS = ("metadata", "stages")
"""The layout ``PipelineModel.save`` writes."""
DEFAULT_OPSET = 15
MAX_OPSET = 15
"""onnxmltools' Spark converters support the default domain up to opset 15."""
SESSION_CONFIG: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.memory": "512m",
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.execution.arrow.pyspark.enabled": "false",
}
"""A build-time session: one core, no UI, loopback only, small heap."""
SESSION_MASTER = "local[1]"
_ONE_HOT_HINT = (
    " (OneHotEncoder(handleInvalid='keep', dropLast=False) adds a column for invalid values that ONNX's"
    " OneHotEncoder cannot produce; refit with dropLast=True, or with handleInvalid='error')"
)


class SparkMLlibAdapter:
    """A fitted ``pyspark.ml`` model or ``PipelineModel`` (object, or a saved pipeline directory)."""

    name: ClassVar[str] = "spark"

    def __init__(self) -> None:
        self._owned: Any = None
        """The session this adapter started (and so must stop), if any."""
        self._outputs: list[str] = []

    @classmethod
    def detects(cls, model: Any) -> bool:
        """A fitted ``pyspark.ml`` Model, or a directory with ``metadata/`` and ``stages/`` (a saved pipeline)."""
        if isinstance(model, Path):
            return model.is_dir() and all((model / d).is_dir() for d in PIPELINE_DIRS)
        return class_from(model, "pyspark.ml") and any(
            c.__name__ == "Model" and c.__module__ == "pyspark.ml.base" for c in type(model).__mro__
        )

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """``PipelineModel.load`` on a saved pipeline directory (starting a local session if needed)."""
        if not self.detects(path):
            raise PackagingError(
                f"spark: {path.name} is not a saved PipelineModel directory (expected {'/, '.join(PIPELINE_DIRS)}/)",
                field="model",
            )
        ml = import_extra("pyspark.ml", extra=EXTRA)
        self._session()
        try:
            return ml.PipelineModel.load(str(path))
        except Exception as exc:  # py4j surfaces JVM errors as Py4JJavaError / AnalysisException
            self.close()
            raise PackagingError(f"spark: cannot load the pipeline in {path.name}: {exc}", field="model") from exc

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """``convert_sparkml`` with one ``[-1, 1]`` float32 (or string) input per sample column."""
        pyspark = import_extra("pyspark", extra=EXTRA)
        onnxmltools = import_extra("onnxmltools", extra=EXTRA)
        data_types = import_extra("onnxmltools.convert.common.data_types", extra=EXTRA)
        from modelfn.bundle.manifest import FrameworkInfo

        columns = sample_columns(sample)
        target = opset or DEFAULT_OPSET
        if target > MAX_OPSET:
            raise PackagingError(
                f"spark: opset {target} is above what onnxmltools' Spark converters support ({MAX_OPSET})",
                field="opset",
            )
        initial_types = [
            (name, (data_types.StringTensorType if _is_text(v) else data_types.FloatTensorType)([None, 1]))
            for name, v in columns.items()
        ]
        try:
            session = self._session()
            with (
                contextlib.redirect_stdout(io.StringIO()),
                warnings.catch_warnings(),
                default_one_hot_encoder_converts(),
            ):
                # some converters pprint their attributes; tree converters read model data via toPandas
                warnings.filterwarnings("ignore", message="toPandas attempted Arrow optimization", category=UserWarning)
                onx = onnxmltools.convert_sparkml(
                    model, "spark-model", initial_types, target_opset=target, spark_session=session
                )
        except Exception as exc:  # onnxmltools raises RuntimeError, KeyError, TypeError, ...
            self.close()
            hint = _ONE_HOT_HINT if "dropLast" in str(exc) else ""
            raise converter_failure(f"spark: onnxmltools cannot convert {type(model).__name__}{hint}", exc) from exc
        _softmax_for_multinomial(onx)
        unseen = _unseen_categories_as_zeros(onx)
        self._outputs = [o.name for o in onx.graph.output]
        final = _final_stage(model)
        classes = getattr(final, "numClasses", None)
        labels: list[str | int] | None = _indexed_labels(model, final) or list(range(int(classes))) if classes else None
        kinds = ", ".join(f"{name}: {'string' if _is_text(v) else 'float32'}" for name, v in columns.items())
        notes = (
            f"one input per column ({kinds}), shape [-1, 1]: send [[v], ...], a list [v, ...] or one value per"
            f" row object; outputs {self._outputs}"
        )
        if labels:
            notes += "; prediction = class index (int64), probability = one column per class"
        if unseen:
            notes += (
                f"; a category of {unseen} not seen in training indexes as -1 and one-hot encodes as all zeros"
                " (Spark's StringIndexer would raise)"
            )
        framework = FrameworkInfo(
            name=self.name,
            version=pyspark.__version__,
            converter="onnxmltools",
            converter_version=onnxmltools.__version__,
        )
        return ExportResult(
            onnx_bytes=onx.SerializeToString(), framework=framework, labels=labels, notes=notes,
            feature_names=list(columns),
        )  # fmt: skip

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, np.ndarray[Any, Any]]:
        """``model.transform`` on the sample rows; the session this adapter started is stopped afterwards."""
        try:
            return self._transform(model, sample_columns(sample))
        finally:
            self.close()

    def normalize_sample(self, sample: Any) -> dict[str, npt.NDArray[Any]]:
        """The sample as the ONNX feeds need it (float32 or string ``(n, 1)`` per column), e.g. from a DataFrame."""
        return sample_columns(sample)

    def close(self) -> None:
        """Stop the Spark session this adapter started (never one the caller started)."""
        session, self._owned = self._owned, None
        if session is not None:
            session.stop()

    def _transform(self, model: Any, columns: dict[str, npt.NDArray[Any]]) -> dict[str, np.ndarray[Any, Any]]:
        import numpy as np

        types = import_extra("pyspark.sql.types", extra=EXTRA)
        session = self._session()
        fields = [
            types.StructField(name, types.StringType() if _is_text(v) else types.DoubleType(), False)
            for name, v in columns.items()
        ]
        values = [v[:, 0].tolist() if _is_text(v) else v[:, 0].astype(np.float64).tolist() for v in columns.values()]
        rows = list(zip(*values, strict=True))
        schema = types.StructType(fields)
        result = model.transform(session.createDataFrame(rows, schema=schema))
        final = _final_stage(model)
        wanted = self._outputs or _default_outputs(final)
        present = [name for name in wanted if name in result.columns]
        if not present:
            raise PackagingError(f"spark: the transformed data has none of the outputs {wanted}", field="model")
        collected = result.select(*present).collect()
        prediction_col = final.getPredictionCol() if hasattr(final, "getPredictionCol") else None
        out: dict[str, np.ndarray[Any, Any]] = {}
        for name in present:
            values = [r[name].toArray() if hasattr(r[name], "toArray") else r[name] for r in collected]
            array = np.asarray(values)
            if name == prediction_col and getattr(final, "numClasses", None):
                array = array.astype(np.int64)
            out[name] = array
        return out

    def _session(self) -> Any:
        """The caller's active session, else one this adapter starts (and later stops)."""
        sql = import_extra("pyspark.sql", extra=EXTRA)
        active = sql.SparkSession.getActiveSession()
        if active is not None:
            return active
        if sql.SparkSession._instantiatedSession is not None:  # the caller's, made active on another thread
            return sql.SparkSession.builder.getOrCreate()
        builder = sql.SparkSession.builder.master(SESSION_MASTER).appName("modelfn-package")
        for key, value in SESSION_CONFIG.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # a missing JVM surfaces as PySparkRuntimeError / RuntimeError
            raise PackagingError(
                f"spark: cannot start a local Spark session (is Java 17+ installed and on PATH?): {exc}"
            ) from exc
        session.sparkContext.setLogLevel("ERROR")
        self._owned = session
        return session


def sample_columns(sample: Any) -> dict[str, npt.NDArray[Any]]:
    """Sample columns by name as ``(n, 1)`` arrays (float32, or object holding str), from a mapping or DataFrame."""
    import numpy as np

    if sample is None:
        raise PackagingError(
            "spark: a sample is required: the input columns by name (a dict of arrays or a pandas DataFrame)",
            field="sample",
        )
    if not isinstance(sample, Mapping) and not (hasattr(sample, "columns") and hasattr(sample, "__getitem__")):
        raise PackagingError(
            "spark: the sample must name its columns: a dict of arrays (one per input column) or a pandas DataFrame",
            field="sample",
        )
    columns: dict[str, npt.NDArray[Any]] = {}
    rows: int | None = None
    for name in list(sample.keys() if isinstance(sample, Mapping) else sample.columns):
        array = np.asarray(sample[name])
        text = array.dtype.kind in "US" or (array.dtype.kind == "O" and all(isinstance(v, str) for v in array.flat))
        if array.dtype.kind not in "biuf" and not text:
            raise PackagingError(
                f"spark: column {name!r} has dtype {array.dtype}; columns must be numeric or strings", field=name
            )
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise PackagingError(f"spark: column {name!r} must be 1-D or (n, 1), got {list(array.shape)}", field=name)
        if rows is not None and len(array) != rows:
            raise PackagingError(f"spark: column {name!r} has {len(array)} rows, the others {rows}", field=name)
        rows = len(array)
        columns[str(name)] = array.astype(object if text else np.float32).reshape(-1, 1)
    if not columns:
        raise PackagingError("spark: the sample has no columns", field="sample")
    return columns


def _is_text(column: npt.NDArray[Any]) -> bool:
    """A string column (``sample_columns`` keeps those as object arrays)."""
    return bool(column.dtype.kind == "O")


def _final_stage(model: Any) -> Any:
    """The last stage of (possibly nested) pipeline models: the one whose columns the graph ends with."""
    while hasattr(model, "stages"):
        model = model.stages[-1]
    return model


def _indexed_labels(model: Any, final: Any) -> list[str | int] | None:
    """The class names a pipeline's label ``StringIndexer`` (or an ``IndexToString`` stage) maps indices to."""
    label_col = final.getLabelCol() if hasattr(final, "getLabelCol") else None
    prediction_col = final.getPredictionCol() if hasattr(final, "getPredictionCol") else None
    stages = list(model.stages) if hasattr(model, "stages") else []
    for stage in stages:
        if type(stage).__name__ == "StringIndexerModel" and stage.getOutputCol() == label_col:
            arrays = stage.labelsArray if hasattr(stage, "labelsArray") else [stage.labels]
            return [str(v) for v in arrays[0]]
        if type(stage).__name__ == "IndexToString" and stage.getInputCol() == prediction_col and stage.getLabels():
            return [str(v) for v in stage.getLabels()]
    return None


def _default_outputs(final: Any) -> list[str]:
    names = []
    for getter in ("getPredictionCol", "getProbabilityCol", "getOutputCol"):
        if hasattr(final, getter):
            names.append(str(getattr(final, getter)()))
    return names


def _softmax_for_multinomial(onx: Any) -> None:
    """Spark's multinomial logistic regression is a softmax; onnxmltools emits per-class sigmoids."""
    for node in onx.graph.node:
        if node.op_type != "LinearClassifier" or node.domain != "ai.onnx.ml":
            continue
        attrs = {a.name: a for a in node.attribute}
        classes = attrs.get("classlabels_ints")
        transform = attrs.get("post_transform")
        if transform is not None and transform.s == b"LOGISTIC" and classes is not None and len(classes.ints) > 2:
            transform.s = b"SOFTMAX"


def _unseen_categories_as_zeros(onx: Any) -> list[str]:
    """String columns whose indexer feeds a one-hot encoder: an unseen value encodes as zeros instead of failing.

    onnxmltools indexes an unseen string as -1 (``LabelEncoder``'s default), which its ``OneHotEncoder``
    (``zeros=0``) turns into a run-time failure, and not a typed one: the served function could not
    even warm up on its schema. All zeros is what the index -1 means to the rest of the graph.
    """
    indexed = {n.output[0]: n.input[0] for n in onx.graph.node if n.op_type == "LabelEncoder"}
    columns: list[str] = []
    for node in onx.graph.node:
        if node.op_type != "OneHotEncoder" or node.input[0] not in indexed:
            continue
        for attr in node.attribute:
            if attr.name == "zeros":
                attr.i = 1
        columns.append(indexed[node.input[0]])
    return columns
