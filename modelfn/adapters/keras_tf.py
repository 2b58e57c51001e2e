"""TensorFlow and Keras models (Keras objects, ``.keras``/``.h5`` files, SavedModels, frozen ``.pb``), via tf2onnx.

Every kind except the frozen graph is traced as a ``tf.function`` with an ``input_signature`` whose
batch dimension is None, then converted with ``tf2onnx.convert.from_function``: that keeps the
batch dynamic and avoids ``from_keras``, which fails on Keras 3 ``Sequential`` models. A SavedModel
is served through one of its signatures (``serving_default`` unless ``signature`` says otherwise),
with the signature's input and output names. A frozen GraphDef goes through ``from_graph_def``
with the tensor names the caller gives (see ``_tf_graph``). ``.keras`` and ``.h5`` files load in
Keras' safe mode; a ``Lambda`` layer (Python bytecode) needs the same consent as pickle. Tensors a
traced model captures (adapted preprocessing layers) are frozen as constants, not graph inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelfn.adapters import _tf_graph, _tf_ops
from modelfn.adapters._tf_graph import FrozenGraph
from modelfn.adapters.base import ExportResult, SampleInput, class_from, import_extra
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np

    Array = np.ndarray[Any, Any]

EXTRA = "tensorflow"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
"""Keras 3's zip format and the legacy HDF5 format (``model.save("m.h5")``, tf.keras 2)."""
GRAPH_SUFFIX = ".pb"
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
DEFAULT_SIGNATURE = "serving_default"
DEFAULT_OPSET = 17
DEFAULT_INPUT_NAME, DEFAULT_OUTPUT_NAME = "input", "output"
AUTO_NAME_PREFIXES = ("keras_tensor", "input_layer")
"""Names Keras invents for unnamed inputs; modelfn replaces them with ``input``/``input_<i>``."""


@dataclasses.dataclass(frozen=True)
class _Traceable:
    """A model as TensorFlow sees it: named input specs, and positional tensors -> outputs by name."""

    specs: list[Any]
    outputs: list[str]
    call: Callable[..., dict[str, Any]]
    kind: str


class KerasTFAdapter:
    """A Keras model, a loaded SavedModel, or a frozen GraphDef (``inputs``/``outputs`` options name its tensors)."""

    name: ClassVar[str] = "tensorflow"

    def __init__(
        self,
        inputs: str | Sequence[str] | None = None,
        outputs: str | Sequence[str] | None = None,
        signature: str = DEFAULT_SIGNATURE,
        labels: str | Sequence[str | int] | None = None,
    ) -> None:
        self.inputs = _tf_graph.parse_names(inputs, option="inputs")
        self.outputs = _tf_graph.parse_names(outputs, option="outputs")
        if not isinstance(signature, str) or not signature:
            raise PackagingError(
                f"tensorflow: option 'signature' must be a signature name, got {signature!r}", field="signature"
            )
        self.signature = signature
        self.labels = _tf_graph.parse_labels(labels)

    @classmethod
    def detects(cls, model: Any) -> bool:
        """A Keras model, SavedModel object or GraphDef; a SavedModel directory, ``.keras`` or ``.pb`` file."""
        if isinstance(model, Path):
            if model.is_dir():
                return any((model / f).is_file() for f in SAVED_MODEL_FILES)
            return model.is_file() and model.suffix.lower() in (*KERAS_SUFFIXES, GRAPH_SUFFIX)
        if isinstance(model, FrozenGraph) or _is_keras_model(model):
            return True
        if type(model).__name__ == "GraphDef" and class_from(model, "tensorflow"):
            return True
        return class_from(model, "tensorflow") and hasattr(model, "signatures")

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """A ``.keras``/``.h5`` file (safe mode), a SavedModel directory, or a frozen GraphDef ``.pb``."""
        tf = _import_tf()
        if path.is_file() and path.name in SAVED_MODEL_FILES:
            path = path.parent
        if path.is_dir():
            try:
                return tf.saved_model.load(str(path))
            except Exception as exc:  # TF raises OSError, ValueError, its own errors
                raise PackagingError(f"tensorflow: cannot load SavedModel {path.name}: {exc}", field="model") from exc
        if path.suffix.lower() in KERAS_SUFFIXES:
            return _tf_graph.load_keras(path, allow_pickle=allow_pickle)
        if path.suffix.lower() == GRAPH_SUFFIX:
            return _tf_graph.read_graph_def(path)
        raise PackagingError(
            f"tensorflow: cannot load {path.name}; expected a .keras or .h5 file, a SavedModel directory"
            f" (holding saved_model.pb) or a frozen GraphDef {GRAPH_SUFFIX} (with inputs/outputs options)",
            field="model",
        )

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """tf2onnx: ``from_function`` for Keras and SavedModels, ``from_graph_def`` for frozen graphs."""
        tf = _import_tf()
        tf2onnx = import_extra("tf2onnx", extra=EXTRA)
        from modelfn.bundle.manifest import FrameworkInfo

        target = opset or DEFAULT_OPSET
        if _is_graph(model):
            frozen = _as_frozen(model)
            inputs, outputs = self._graph_names(frozen)
            proto = _tf_graph.convert_graph(frozen, inputs, outputs, opset=target)
            kind, order = "frozen GraphDef", [_tf_graph.onnx_name(n) for n in outputs]
        else:
            traceable = self._traceable(model, sample)
            try:
                function = _tf_ops.freeze_captures(
                    tf.function(traceable.call, input_signature=traceable.specs), traceable.specs
                )
                proto, _ = tf2onnx.convert.from_function(
                    function, input_signature=traceable.specs, opset=target, custom_op_handlers=_tf_ops.CUSTOM_OPS
                )
            except Exception as exc:  # tf2onnx and TF tracing raise many kinds
                raise PackagingError(f"tensorflow: tf2onnx cannot convert the {traceable.kind}: {exc}") from exc
            kind, order = traceable.kind, traceable.outputs
        _tf_graph.order_outputs(proto, order)
        onnx_bytes = _tf_graph.checked_bytes(proto)
        self._check_labels(onnx_bytes)
        names = [o.name for o in proto.graph.output]
        framework = FrameworkInfo(
            name=self.name, version=tf.__version__, converter="tf2onnx", converter_version=tf2onnx.__version__
        )
        notes = f"{kind} converted with tf2onnx; outputs {names}"
        return ExportResult(onnx_bytes=onnx_bytes, framework=framework, labels=self.labels, notes=notes)

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, Array]:
        """TensorFlow's own outputs (Keras ``model(x, training=False)``, the signature, or the graph)."""
        import numpy as np

        if _is_graph(model):
            frozen = _as_frozen(model)
            inputs, outputs = self._graph_names(frozen)
            names = [_tf_graph.onnx_name(n) for n in inputs]
            arrays = _tf_graph.sample_arrays(sample, names, _tf_graph.input_dtypes(frozen, inputs))
            values = _tf_graph.run_graph(frozen, inputs, outputs, arrays)
            return {_tf_graph.onnx_name(n): v for n, v in zip(outputs, values, strict=True)}
        traceable = self._traceable(model, sample)
        names = [s.name for s in traceable.specs]
        arrays = _tf_graph.sample_arrays(sample, names, [np.dtype(s.dtype.as_numpy_dtype) for s in traceable.specs])
        tf = _import_tf()
        try:
            results = traceable.call(*[tf.constant(a) for a in arrays])
        except Exception as exc:  # Keras/TF raise ValueError, InvalidArgumentError, ...
            raise PackagingError(f"tensorflow: the {traceable.kind} cannot run on the sample: {exc}") from exc
        return {name: np.asarray(value) for name, value in results.items()}

    def _graph_names(self, frozen: FrozenGraph) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return _tf_graph.check_names(frozen, self.inputs, self.outputs)

    def _traceable(self, model: Any, sample: SampleInput | None) -> _Traceable:
        if self.inputs is not None or self.outputs is not None:
            raise PackagingError(
                "tensorflow: the inputs/outputs options name the tensors of a frozen GraphDef (.pb); Keras models"
                " and SavedModels declare their own",
                field="inputs" if self.inputs is not None else "outputs",
            )
        if _is_keras_model(model):
            return _keras_traceable(model, sample)
        return _signature_traceable(model, self.signature)

    def _check_labels(self, onnx_bytes: bytes) -> None:
        """Labels only make sense with an output holding one score per label (``/predict`` arg-max)."""
        if self.labels is None:
            return
        from modelfn.bundle.schema import read_schema

        widths = [t.shape[-1] for t in read_schema(onnx_bytes).outputs if t.shape and t.dtype.startswith("float")]
        if len(self.labels) not in widths:
            raise PackagingError(
                f"tensorflow: {len(self.labels)} labels given, but no float output has that many columns"
                f" (last dims: {widths})",
                field="labels",
            )


def _import_tf() -> Any:
    """TensorFlow, with its Python-side logging turned down to errors (build time only)."""
    tf = import_extra("tensorflow", extra=EXTRA)
    tf.get_logger().setLevel("ERROR")
    import logging

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    return tf


def _is_keras_model(model: Any) -> bool:
    """A Keras (3, or tf_keras) ``Model`` instance, by class name and module, without importing Keras."""
    return any(
        cls.__name__ == "Model" and (cls.__module__ or "").split(".")[0] in ("keras", "tf_keras")
        for cls in type(model).__mro__
    )


def _is_graph(model: Any) -> bool:
    return isinstance(model, FrozenGraph) or type(model).__name__ == "GraphDef"


def _as_frozen(model: Any) -> FrozenGraph:
    return model if isinstance(model, FrozenGraph) else FrozenGraph(graph_def=model, source="the GraphDef")


def _keras_traceable(model: Any, sample: SampleInput | None) -> _Traceable:
    """Specs from the model's declared inputs (or the sample when it has none), batch dim None."""
    tf = _import_tf()
    declared = _declared_inputs(model)
    if declared is None:
        if sample is None:
            raise PackagingError(
                "tensorflow: this Keras model declares no inputs (not built): pass a sample", field="sample"
            )
        declared = _inputs_from_sample(sample)
    if len(declared) == 1 and isinstance(sample, dict) and len(sample) == 1 and _auto_named(declared[0][0]):
        declared = [(next(iter(sample)), declared[0][1], declared[0][2])]
    count = len(declared)
    names = [
        _default_name(DEFAULT_INPUT_NAME, i, count) if _auto_named(n) else n for i, (n, _, _) in enumerate(declared)
    ]
    specs = [tf.TensorSpec([None, *d[1][1:]], d[2], name=name) for name, d in zip(names, declared, strict=True)]
    output_names = list(getattr(model, "output_names", None) or [])
    struct = getattr(model, "_inputs_struct", None)
    keras_names = [n for n, _, _ in declared]

    def call(*tensors: Any) -> dict[str, Any]:
        if isinstance(struct, dict):
            args: Any = dict(zip(keras_names, tensors, strict=True))
        else:
            args = tensors[0] if len(tensors) == 1 else list(tensors)
        return _name_outputs(model(args, training=False), output_names)

    return _Traceable(specs=specs, outputs=output_names, call=call, kind=f"Keras model {type(model).__name__}")


def _declared_inputs(model: Any) -> list[tuple[str, tuple[Any, ...], str]] | None:
    try:
        inputs = list(model.inputs or [])
    except (AttributeError, ValueError):  # subclassed or never-built models
        return None
    if not inputs:
        return None
    return [(str(t.name), tuple(t.shape), str(t.dtype)) for t in inputs]


def _inputs_from_sample(sample: SampleInput) -> list[tuple[str, tuple[Any, ...], str]]:
    import numpy as np

    items = sample.items() if isinstance(sample, dict) else [(DEFAULT_INPUT_NAME, sample)]
    found = []
    for name, value in items:
        array = np.asarray(value)
        dtype = "float32" if array.dtype.kind == "f" else str(array.dtype)
        found.append((str(name), (None, *array.shape[1:]), dtype))
    return found


def _signature_traceable(model: Any, signature: str) -> _Traceable:
    """A SavedModel signature: keyword inputs become positional specs carrying the signature's names."""
    tf = _import_tf()
    signatures = getattr(model, "signatures", None) or {}
    if signature not in signatures:
        raise PackagingError(
            f"tensorflow: the SavedModel has no signature {signature!r}; it has {sorted(signatures) or 'none'}."
            " Choose one with the signature option (CLI: --option signature=NAME), or export the model with"
            " keras' model.export(path)",
            field="signature",
        )
    function = signatures[signature]
    inputs = function.structured_input_signature[1]
    names = list(inputs)
    specs = [tf.TensorSpec(spec.shape, spec.dtype, name=name) for name, spec in inputs.items()]
    outputs = list(function.structured_outputs)

    def call(*tensors: Any) -> dict[str, Any]:
        return dict(function(**dict(zip(names, tensors, strict=True))))

    return _Traceable(specs=specs, outputs=outputs, call=call, kind=f"SavedModel signature {signature!r}")


def _name_outputs(result: Any, declared: list[str]) -> dict[str, Any]:
    """Keras outputs (one tensor, a list, or a dict) keyed by output name."""
    if isinstance(result, dict):
        return {str(k): v for k, v in result.items()}
    values = list(result) if isinstance(result, list | tuple) else [result]
    names = declared if len(declared) == len(values) and len(set(declared)) == len(declared) else []
    return {names[i] if names else _default_name(DEFAULT_OUTPUT_NAME, i, len(values)): v for i, v in enumerate(values)}


def _default_name(base: str, index: int, count: int) -> str:
    return base if count == 1 else f"{base}_{index}"


def _auto_named(name: str) -> bool:
    return name.startswith(AUTO_NAME_PREFIXES)
