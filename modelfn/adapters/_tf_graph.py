"""File loading, option parsing and ONNX clean-up for the TensorFlow adapter (``keras_tf``).

Frozen graphs are the TF-Serving-era ``.pb``: tensors have names, but no signature says which
are the inputs and outputs, so the caller names them (``inputs="x:0"``, ``outputs="y:0"``). The
names are checked against the graph before anything is converted, and a wrong or missing name
lists the graph's placeholders, which is usually what the caller was looking for. In the ONNX
graph (and so on the wire) a name drops its ``:0``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfn.adapters import _tf_ops
from modelfn.adapters.base import PickleLoadWarning, SampleInput, import_extra
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np

    Array = np.ndarray[Any, Any]

ADAPTER = EXTRA = "tensorflow"
EXAMPLE = "inputs='x:0' outputs='Identity:0'"


@dataclasses.dataclass(frozen=True)
class FrozenGraph:
    """A parsed ``tf.compat.v1.GraphDef`` and where it came from (for messages)."""

    graph_def: Any
    source: str


def parse_names(value: str | Sequence[str] | None, *, option: str) -> tuple[str, ...] | None:
    """Tensor names from an option: a comma-separated string (CLI) or a sequence; ``x`` means ``x:0``."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise PackagingError(
            f"{ADAPTER}: option {option!r} must be tensor names (strings), got {value!r}", field=option
        )
    names = tuple(_full_name(item.strip()) for item in items)
    if not names or any(n.startswith(":") for n in names):
        raise PackagingError(
            f"{ADAPTER}: option {option!r} needs one or more tensor names like 'x:0', got {value!r}", field=option
        )
    if len(set(names)) != len(names):
        raise PackagingError(f"{ADAPTER}: option {option!r} names a tensor twice: {value!r}", field=option)
    return names


def onnx_name(tensor: str) -> str:
    """The ONNX (wire) name of a graph tensor: ``x:0`` -> ``x``, ``split:1`` -> ``split_1``."""
    op, _, index = tensor.rpartition(":")
    return op if index == "0" else f"{op}_{index}"


def load_keras(path: Path, *, allow_pickle: bool) -> Any:
    """A ``.keras`` or legacy ``.h5`` model in Keras' safe mode; Lambda layers (bytecode) only with ``allow_pickle``."""
    keras = import_extra("keras", extra=EXTRA)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as exc:
        if "No model config" in str(exc):  # save_weights' .weights.h5: no architecture to convert
            raise PackagingError(
                f"{ADAPTER}: {path.name} holds only weights; save the whole model (model.save('m.keras' or 'm.h5'))",
                field="model",
            ) from exc
        if "safe_mode" not in str(exc):
            raise PackagingError(f"{ADAPTER}: cannot load {path.name}: {exc}", field="model") from exc
        if not allow_pickle:
            raise PackagingError(
                f"{ADAPTER}: {path.name} holds Python code (a Lambda layer); loading it runs arbitrary code."
                " Pass allow_pickle=True (CLI: --allow-pickle) only for files you trust",
                field="allow_pickle",
            ) from exc
    except Exception as exc:  # zipfile, h5py and Keras errors for a damaged file
        raise PackagingError(f"{ADAPTER}: {path.name} is not a readable Keras file: {exc}", field="model") from exc
    warnings.warn(
        f"loading {path.name} with Keras safe mode off: its Lambda layers run Python code at build time, only load"
        " files you trust. The bundle itself holds only ONNX",
        PickleLoadWarning,
        stacklevel=3,
    )
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=False)
    except Exception as exc:  # whatever the stored code raises
        raise PackagingError(f"{ADAPTER}: cannot load {path.name}: {exc}", field="model") from exc


def read_graph_def(path: Path) -> FrozenGraph:
    """Parse a binary GraphDef (protobuf only: nothing in it runs while parsing)."""
    tf = import_extra("tensorflow", extra=EXTRA)

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise PackagingError(
            f"{ADAPTER}: {path.name} is not a binary GraphDef (a frozen .pb); a SavedModel is a directory"
            " holding saved_model.pb and variables/, pass the directory",
            field="model",
        ) from exc
    if not graph_def.node:
        raise PackagingError(f"{ADAPTER}: {path.name} holds an empty GraphDef", field="model")
    return FrozenGraph(graph_def=graph_def, source=path.name)


def check_names(
    frozen: FrozenGraph, inputs: tuple[str, ...] | None, outputs: tuple[str, ...] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Both name lists, once each is given and names nodes of the graph; otherwise say what the graph offers."""
    if inputs is None or outputs is None:
        missing = " and ".join(o for o, v in (("inputs", inputs), ("outputs", outputs)) if v is None)
        raise PackagingError(
            f"{ADAPTER}: frozen graph {frozen.source} needs the {missing} option(s): tensor names such as {EXAMPLE}"
            f" (CLI: --option inputs=x:0 --option outputs=Identity:0). {_offer(frozen)}",
            field="inputs" if inputs is None else "outputs",
        )
    nodes = {node.name for node in frozen.graph_def.node}
    for option, names in (("inputs", inputs), ("outputs", outputs)):
        unknown = [n for n in names if n.rpartition(":")[0] not in nodes]
        if unknown:
            raise PackagingError(
                f"{ADAPTER}: {option} {unknown} are not tensors of {frozen.source}. {_offer(frozen)}", field=option
            )
    if len({onnx_name(n) for n in inputs + outputs}) != len(inputs + outputs):
        raise PackagingError(f"{ADAPTER}: inputs and outputs must be different tensors", field="outputs")
    return inputs, outputs


def input_dtypes(frozen: FrozenGraph, inputs: tuple[str, ...]) -> list[np.dtype[Any]]:
    """The numpy dtype of each named input tensor (its node's ``dtype`` attribute; float32 if absent)."""
    import numpy as np

    tf = import_extra("tensorflow", extra=EXTRA)

    by_name = {node.name: node for node in frozen.graph_def.node}
    dtypes: list[np.dtype[Any]] = []
    for name in inputs:
        attr = by_name[name.rpartition(":")[0]].attr
        dtypes.append(np.dtype(tf.dtypes.as_dtype(attr["dtype"].type).as_numpy_dtype if "dtype" in attr else "f4"))
    return dtypes


def convert_graph(frozen: FrozenGraph, inputs: tuple[str, ...], outputs: tuple[str, ...], *, opset: int) -> Any:
    """tf2onnx ``from_graph_def``, with ONNX names that drop the ``:0`` suffix."""
    tf2onnx = import_extra("tf2onnx", extra=EXTRA)

    rename = {n: onnx_name(n) for n in inputs + outputs}
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph_def,
            name=Path(frozen.source).stem,
            input_names=list(inputs),
            output_names=list(outputs),
            opset=opset,
            tensors_to_rename=rename,
            custom_op_handlers=_tf_ops.CUSTOM_OPS,
        )
    except Exception as exc:  # tf2onnx raises ValueError, KeyError, TF errors
        raise PackagingError(f"{ADAPTER}: tf2onnx cannot convert {frozen.source}: {exc}") from exc
    return proto


def run_graph(
    frozen: FrozenGraph, inputs: tuple[str, ...], outputs: tuple[str, ...], arrays: Sequence[np.ndarray[Any, Any]]
) -> list[np.ndarray[Any, Any]]:
    """TensorFlow itself on the graph: import it into a wrapped function pruned to the named tensors."""
    import numpy as np

    tf = import_extra("tensorflow", extra=EXTRA)

    def _import() -> None:
        tf.compat.v1.import_graph_def(frozen.graph_def, name="")

    try:
        wrapped = tf.compat.v1.wrap_function(_import, [])
        as_element = wrapped.graph.as_graph_element
        pruned = wrapped.prune(feeds=[as_element(n) for n in inputs], fetches=[as_element(n) for n in outputs])
        results = pruned(*[tf.constant(a) for a in arrays])
    except Exception as exc:  # TF raises InvalidArgumentError, ValueError, ...
        raise PackagingError(f"{ADAPTER}: TensorFlow cannot run {frozen.source} on the sample: {exc}") from exc
    return [np.asarray(r) for r in results]


def parse_labels(value: str | Sequence[str | int] | None) -> list[str | int] | None:
    """Class labels from a comma-separated string (all-digit labels become ints) or a sequence."""
    if value is None:
        return None
    items: list[str | int] = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(value)
    if not items or any(not isinstance(i, str | int) or i == "" for i in items):
        raise PackagingError(
            f"{ADAPTER}: option 'labels' must be non-empty class labels, got {value!r}", field="labels"
        )
    if all(isinstance(i, str) and i.lstrip("-").isdigit() for i in items):
        items = [int(i) for i in items]
    if len(set(items)) != len(items):
        raise PackagingError(f"{ADAPTER}: option 'labels' repeats a label: {value!r}", field="labels")
    return items


def sample_arrays(sample: SampleInput, names: list[str], dtypes: Sequence[Any]) -> list[Array]:
    """The sample as one array per input, in input order and dtype."""
    import numpy as np

    if isinstance(sample, dict):
        if sorted(sample) != sorted(names):
            raise PackagingError(f"{ADAPTER}: sample inputs {sorted(sample)} do not match {names}", field="sample")
        return [np.asarray(sample[n], dtype=d) for n, d in zip(names, dtypes, strict=True)]
    if len(names) != 1:
        raise PackagingError(f"{ADAPTER}: the model takes inputs {names}: pass the sample as a dict", field="sample")
    return [np.asarray(sample, dtype=dtypes[0])]


def order_outputs(proto: Any, order: Sequence[str]) -> None:
    """Put the graph outputs in the model's own order (tf2onnx sorts structured outputs by name)."""
    rank = {name: i for i, name in enumerate(order)}
    outputs = sorted(proto.graph.output, key=lambda o: rank.get(o.name, len(rank)))
    copies = [type(o)() for o in outputs]
    for copy, original in zip(copies, outputs, strict=True):
        copy.CopyFrom(original)
    del proto.graph.output[:]
    proto.graph.output.extend(copies)


def checked_bytes(proto: Any) -> bytes:
    """``onnx.checker`` catches ops tf2onnx could not convert (it keeps going and leaves TF ops behind)."""
    onnx = import_extra("onnx", extra=EXTRA)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        unconverted = sorted({n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx", "ai.onnx.ml")})
        hint = f" (ops left unconverted: {', '.join(unconverted)})" if unconverted else ""
        raise PackagingError(f"{ADAPTER}: the converted model is not valid ONNX{hint}: {exc}") from exc
    data: bytes = proto.SerializeToString()
    return data


def _full_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def _offer(frozen: FrozenGraph) -> str:
    """The graph's placeholders, the usual inputs, as ``name:0 (dtype)``."""
    tf = import_extra("tensorflow", extra=EXTRA)

    found = []
    for node in frozen.graph_def.node:
        if node.op == "Placeholder":
            dtype = tf.dtypes.as_dtype(node.attr["dtype"].type).name if "dtype" in node.attr else "?"
            found.append(f"{node.name}:0 ({dtype})")
    return f"Its placeholders: {', '.join(found) or 'none'}; its last node: {frozen.graph_def.node[-1].name}:0"
