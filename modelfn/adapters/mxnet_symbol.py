"""MXNet symbol models (``prefix-symbol.json`` + ``prefix-NNNN.params``), converted with MXNet's mx2onnx.

MXNet 1.9.1, the last release, needs numpy<1.24 and onnx<1.16, so it cannot live in modelfn's
environment: package with a converter interpreter (``--python /path/to/mxnet-env/bin/python``,
built by ``scripts/mxnet-env.sh``), which runs this adapter there and checks the result here.

The graph is built with opset 13 (mx2onnx only has translations for 12 and 13, and its
``export_model`` would stamp the installed onnx's newest opset on them), with a dynamic batch
dimension, and with the weights as initializers only (not graph inputs). A training head that
takes a label (``SoftmaxOutput``, ``*RegressionOutput``) is exported as the inference op it
computes (softmax, sigmoid, identity). ``.params`` files are MXNet's own binary NDArray format,
not pickle.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelfn.adapters.base import ExportResult, SampleInput, class_from
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SYMBOL_SUFFIX = "-symbol.json"
PARAMS_SUFFIX = ".params"
DEFAULT_OPSET = 13
SUPPORTED_OPSETS = (12, 13)
"""The opsets mx2onnx has operator translations for."""
IR_VERSION = 7
"""The ONNX IR that goes with opsets 12 and 13."""
ENV_HINT = (
    "MXNet 1.9 needs its own environment (numpy<1.24, onnx<1.16): create it with scripts/mxnet-env.sh DIR,"
    " then package with converter_python=DIR/bin/python (CLI: --python DIR/bin/python)"
)
_EPOCH_RE = re.compile(r"-(\d{4,})\.params$")


@dataclasses.dataclass
class MxnetModel:
    """A loaded symbol graph with its parameters, and the names of its data inputs."""

    symbol: Any
    arg_params: dict[str, Any]
    aux_params: dict[str, Any]
    input_names: list[str]
    label_names: list[str]


class MxnetSymbolAdapter:
    """An MXNet symbol file with its ``.params`` (or a hybridized Gluon ``HybridBlock`` object)."""

    name: ClassVar[str] = "mxnet"

    def __init__(
        self,
        params: str | Path | None = None,
        input_names: str | Sequence[str] | None = None,
        labels: str | Sequence[str | int] | None = None,
    ) -> None:
        """Options (strings from the CLI ``--option key=value`` are accepted for each).

        Args:
            params: the ``.params`` file (default: the newest ``PREFIX-NNNN.params`` beside the symbol).
            input_names: the data inputs, in order (comma-separated; default: the symbol's free inputs).
            labels: class labels of a classifier's one output, in column order (comma-separated).
        """
        if params is not None and not isinstance(params, str | Path):
            raise PackagingError(f"mxnet: option 'params' must be a file path, got {params!r}", field="params")
        self.params = Path(params).expanduser() if params else None
        self.input_names: list[str] | None = _listed(input_names, "input_names", (str,))
        self.labels: list[str | int] | None = _listed(labels, "labels", (str, int))

    @classmethod
    def detects(cls, model: Any) -> bool:
        """A ``*-symbol.json`` file, or an MXNet Gluon ``HybridBlock``."""
        if isinstance(model, Path):
            return model.is_file() and model.name.endswith(SYMBOL_SUFFIX)
        return class_from(model, "mxnet") and any(c.__name__ == "HybridBlock" for c in type(model).__mro__)

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """The symbol JSON and its ``.params`` (MXNet's binary format; no pickle involved)."""
        if path.suffix.lower() != ".json" or not path.is_file():
            raise PackagingError(
                f"mxnet: cannot load {path.name}; expected the symbol file PREFIX{SYMBOL_SUFFIX}"
                f" (with PREFIX-0000{PARAMS_SUFFIX} beside it, or option params=...)",
                field="model",
            )
        params = self.params or _newest_params(path)
        if not params.is_file():
            raise PackagingError(f"mxnet: parameter file {params} does not exist", field="params")
        mx = _require("mxnet")
        try:
            symbol = mx.sym.load(str(path))
            saved = mx.nd.load(str(params))
        except Exception as exc:  # MXNetError, JSON and I/O errors from the C++ side
            raise PackagingError(f"mxnet: cannot load {path.name} / {params.name}: {exc}", field="model") from exc
        return self._wrap(symbol, saved)

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """mx2onnx graph at opset 12/13 with a dynamic batch; weights kept out of the graph inputs."""
        import numpy as np

        onnx = _require("onnx")
        mx = _require("mxnet")
        mx2onnx = _require("mxnet.onnx.mx2onnx._export_onnx")  # export_model cannot pick the opset

        from modelfn.bundle.manifest import FrameworkInfo

        loaded = self._loaded(model)
        opset = opset or DEFAULT_OPSET
        if opset not in SUPPORTED_OPSETS:
            raise PackagingError(
                f"mxnet: opset {opset} is not supported; mx2onnx translates to opset {SUPPORTED_OPSETS}",
                field="opset",
            )
        if sample is None:
            raise PackagingError("mxnet: a sample input is required to infer the input shapes", field="sample")
        inputs = _inputs(loaded, sample)
        shapes = [tuple(int(d) for d in a.shape) for a in inputs.values()]
        types = [onnx.helper.np_dtype_to_tensor_dtype(np.dtype(a.dtype)) for a in inputs.values()]
        try:
            graph = mx2onnx.MXNetGraph().create_onnx_graph_proto(
                _inference_head(mx, loaded),
                {**loaded.arg_params, **loaded.aux_params},
                shapes,
                types,
                opset_version=opset,
                dynamic=True,
                dynamic_input_shapes=[(None, *s[1:]) for s in shapes],
            )
        except Exception as exc:  # mx2onnx raises AttributeError for unsupported ops, AssertionError, ...
            raise PackagingError(f"mxnet: mx2onnx cannot convert the symbol: {type(exc).__name__}: {exc}") from exc
        _fix_output_dims(graph, loaded, dict(zip(inputs, shapes, strict=True)))
        weights = {t.name for t in graph.initializer}
        kept = [v for v in graph.input if v.name not in weights]
        del graph.input[:]
        graph.input.extend(kept)
        model_proto = onnx.helper.make_model(
            graph,
            opset_imports=[onnx.helper.make_opsetid("", opset)],
            producer_name="mxnet",
            producer_version=mx.__version__,
            ir_version=IR_VERSION,
        )
        try:
            onnx.checker.check_model(model_proto)
        except onnx.checker.ValidationError as exc:
            raise PackagingError(f"mxnet: the exported graph fails onnx.checker: {exc}") from exc
        outputs = [o.name for o in graph.output]
        self._check_labels(graph)
        notes = f"outputs {outputs}: the MXNet symbol's outputs, in order"
        if loaded.label_names:
            notes += f" (training label input {loaded.label_names} dropped)"
        framework = FrameworkInfo(
            name=self.name, version=mx.__version__, converter="mxnet.onnx", converter_version=mx.__version__
        )
        return ExportResult(
            onnx_bytes=model_proto.SerializeToString(), framework=framework, labels=self.labels, notes=notes
        )

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, np.ndarray[Any, Any]]:
        """A forward pass (inference mode) of the bound symbol, keyed by the ONNX output names."""
        mx = _require("mxnet")

        loaded = self._loaded(model)
        inputs = _inputs(loaded, sample)
        batch = len(next(iter(inputs.values())))
        args = {**loaded.arg_params, **{n: mx.nd.array(a, dtype=a.dtype) for n, a in inputs.items()}}
        args.update({n: mx.nd.zeros((batch,)) for n in loaded.label_names})
        try:
            executor = loaded.symbol.bind(mx.cpu(), args=args, aux_states=dict(loaded.aux_params), grad_req="null")
            results = executor.forward(is_train=False)
        except Exception as exc:  # MXNetError for shape/type mismatches
            raise PackagingError(f"mxnet: the symbol cannot run on the sample: {exc}", field="sample") from exc
        names = onnx_output_names(loaded.symbol.list_outputs())
        return {n: r.asnumpy() for n, r in zip(names, results, strict=True)}

    def _check_labels(self, graph: Any) -> None:
        """Labels name the columns of the one output: their count must match its last dimension."""
        if self.labels is None:
            return
        if len(graph.output) != 1:
            raise PackagingError(
                f"mxnet: option 'labels' needs a model with one output, this one has {len(graph.output)}",
                field="labels",
            )
        dims = graph.output[0].type.tensor_type.shape.dim
        width = dims[-1].dim_value if dims else 0
        if width and width != len(self.labels):
            raise PackagingError(f"mxnet: {len(self.labels)} labels for an output with {width} columns", field="labels")

    def _loaded(self, model: Any) -> MxnetModel:
        if isinstance(model, MxnetModel):
            return model
        if self.detects(model):
            return self._from_block(model)
        raise PackagingError(
            f"mxnet: expected a symbol file or a Gluon HybridBlock, got {type(model).__name__}", field="model"
        )

    def _from_block(self, block: Any) -> MxnetModel:
        """Export a hybridized block to symbol + params (MXNet's own way) and read them back."""
        mx = _require("mxnet")
        with tempfile.TemporaryDirectory(prefix="modelfn-mxnet-") as tmp:
            prefix = str(Path(tmp) / "block")
            try:
                block.export(prefix, epoch=0)
                symbol, saved = mx.sym.load(prefix + SYMBOL_SUFFIX), mx.nd.load(prefix + "-0000" + PARAMS_SUFFIX)
            except Exception as exc:  # MXNet refuses blocks that were not hybridized and run once
                raise PackagingError(
                    f"mxnet: cannot export the block ({exc}); call block.hybridize() and run it once first",
                    field="model",
                ) from exc
        return self._wrap(symbol, saved)

    def _wrap(self, symbol: Any, saved: dict[str, Any]) -> MxnetModel:
        arg_params = {k.split(":", 1)[1]: v for k, v in saved.items() if k.startswith("arg:")}
        aux_params = {k.split(":", 1)[1]: v for k, v in saved.items() if k.startswith("aux:")}
        arg_params.update({k: v for k, v in saved.items() if ":" not in k})
        internals = symbol.get_internals()
        label = internals[len(internals) - 1].name + "_label"  # the one label input mx2onnx drops
        free = [n for n in symbol.list_inputs() if n not in arg_params and n not in aux_params]
        labels = [n for n in free if n == label]
        data = [n for n in free if n != label]
        if self.input_names is not None:
            if sorted(self.input_names) != sorted(data):
                raise PackagingError(
                    f"mxnet: input_names {self.input_names} do not match the symbol's data inputs {data}",
                    field="input_names",
                )
            data = list(self.input_names)
        if not data:
            raise PackagingError("mxnet: the symbol has no data input left once its parameters are bound")
        return MxnetModel(symbol, arg_params, aux_params, data, labels)


def _listed(value: Any, option: str, kinds: tuple[type, ...]) -> list[Any] | None:
    """A list option, given as a list or as a comma-separated CLI string."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or not all(isinstance(v, kinds) for v in items):
        raise PackagingError(f"mxnet: option {option!r} must be a comma-separated list, got {value!r}", field=option)
    return list(items)


def _require(module: str) -> Any:
    """Import ``module`` or explain how MXNet is run (a separate interpreter, not an extra)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PackagingError(f"mxnet: cannot import {module} here ({exc}). {ENV_HINT}", field="python") from exc


def onnx_output_names(mxnet_outputs: Sequence[str]) -> list[str]:
    """mx2onnx's renaming of symbol outputs (``fc1_output`` -> ``fc1``), so native outputs match ONNX's."""
    names = []
    for name in mxnet_outputs:
        if name.endswith("_state_output"):
            names.append(name[: -len("_state_output")] + "1")
        elif name.endswith("_statecell_output"):
            names.append(name[: -len("_statecell_output")] + "2")
        elif name.endswith("_output"):
            names.append(name[: -len("_output")])
        elif re.search(r"_output[0-9]$", name):
            names.append(name[: -len("_output0")] + name[-1])
        else:
            names.append(name)
    return names


def _inference_head(mx: Any, loaded: MxnetModel) -> Any:
    """The symbol with its training head (which takes the label) swapped for the inference op it computes.

    mx2onnx drops the label input but then mis-indexes the graph, so the swap happens here; the
    native outputs still come from the original symbol, so parity checks the swap.
    """
    if not loaded.label_names:
        return loaded.symbol
    graph = json.loads(loaded.symbol.tojson())
    nodes, heads = graph["nodes"], graph["heads"]
    head = nodes[heads[0][0]]
    op, name, attrs = head["op"], head["name"], head.get("attrs", {})
    source, index = nodes[head["inputs"][0][0]], head["inputs"][0][1]
    internals = loaded.symbol.get_internals()
    wanted = (f"{source['name']}_output", f"{source['name']}_output{index}", source["name"])
    found = [n for n in wanted if n in internals.list_outputs()]
    if len(heads) != 1 or not found:
        raise PackagingError(f"mxnet: cannot separate the training head {op!r} from the label input")
    data = internals[found[0]]
    if op == "SoftmaxOutput":
        multi = str(attrs.get("multi_output", "False")).lower() in ("true", "1")
        return mx.sym.softmax(data, axis=1 if multi else -1, name=name)
    if op == "LogisticRegressionOutput":
        return mx.sym.sigmoid(data, name=name)
    if op in ("LinearRegressionOutput", "MAERegressionOutput"):
        return mx.sym.identity(data, name=name)
    raise PackagingError(
        f"mxnet: the symbol ends in {op!r}, which takes the label input {loaded.label_names}; save the"
        " inference graph (without the loss head) instead",
        field="model",
    )


def _fix_output_dims(graph: Any, loaded: MxnetModel, shapes: dict[str, tuple[int, ...]]) -> None:
    """mx2onnx marks every output dim dynamic; keep fixed the dims that do not follow the batch size."""
    try:
        per_batch = [
            loaded.symbol.infer_shape(**{n: (batch, *s[1:]) for n, s in shapes.items()})[1] for batch in (2, 3)
        ]
    except Exception:  # shape inference is a refinement only; mx2onnx's all-dynamic outputs stay valid
        return
    for value, two, three in zip(graph.output, *per_batch, strict=False):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(two):
            continue
        for dim, a, b in zip(dims, two, three, strict=True):
            if a == b and a > 0:
                dim.Clear()
                dim.dim_value = int(a)


def _newest_params(symbol_path: Path) -> Path:
    """``PREFIX-NNNN.params`` with the highest epoch beside ``PREFIX-symbol.json``."""
    prefix = symbol_path.name[: -len(SYMBOL_SUFFIX)] if symbol_path.name.endswith(SYMBOL_SUFFIX) else symbol_path.stem
    found = [
        (int(m.group(1)), p)
        for p in symbol_path.parent.glob(f"{glob.escape(prefix)}-*{PARAMS_SUFFIX}")
        if (m := _EPOCH_RE.search(p.name)) and p.name == f"{prefix}-{m.group(1)}{PARAMS_SUFFIX}"
    ]
    if not found:
        raise PackagingError(
            f"mxnet: no {prefix}-NNNN{PARAMS_SUFFIX} beside {symbol_path.name}; pass the file with option"
            " params=PATH (CLI: --option params=PATH)",
            field="params",
        )
    return max(found)[1]


def _inputs(loaded: MxnetModel, sample: SampleInput) -> dict[str, npt.NDArray[Any]]:
    """Sample arrays by data-input name, in the symbol's input order; float64 becomes float32 like the weights."""
    import numpy as np

    names = loaded.input_names
    if isinstance(sample, dict):
        if sorted(sample) != sorted(names):
            raise PackagingError(f"mxnet: sample inputs {sorted(sample)} do not match the symbol's {names}")
        raw = {n: np.asarray(sample[n]) for n in names}
    elif len(names) == 1:
        raw = {names[0]: np.asarray(sample)}
    else:
        raise PackagingError(f"mxnet: the symbol takes inputs {names}; pass the sample as a dict", field="sample")
    return {n: a.astype(np.float32) if a.dtype == np.float64 else a for n, a in raw.items()}
