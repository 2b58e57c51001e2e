"""Run ``torch.onnx.export`` quietly, dynamo first, the TorchScript exporter as a fallback.

The dynamo exporter (``torch.export`` + onnxscript) is the maintained path and keeps symbolic
batch dims; models it cannot capture (data-dependent Python control flow, unsupported ops) still
export through the legacy tracer, whose result is only as good as the trace. The exporters print
graphs, log warnings and raise deprecation notices; all of that is captured here so packaging
output stays readable, and the parts that matter (why it fell back, tracer warnings) go into the
manifest notes instead. The small tensor helpers (sample -> forward arguments, outputs -> leaves)
and the parsers for adapter options (which arrive as strings from the CLI) live here too, so the
adapter module keeps to files and the protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import json
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from modelfn.errors import PackagingError

Exporter = Literal["auto", "dynamo", "legacy"]
EXPORTERS: tuple[Exporter, ...] = ("auto", "dynamo", "legacy")
DYNAMO_CONVERTER = "torch.onnx.export(dynamo=True)"
LEGACY_CONVERTER = "torch.onnx.export(dynamo=False)"
BATCH_DIM = "batch"
SINGLE_FILE_LIMIT = 2**31 - 1
"""Protobuf's 2 GB ceiling: above it ONNX needs external data, which a bundle refuses."""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class ExportCall:
    """Everything one export needs: example inputs and the names/dims the graph must carry."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    input_names: list[str]
    output_names: list[str]
    batch_inputs: list[str]
    """Inputs whose dim 0 becomes the symbolic ``batch`` dim (empty: static shapes)."""
    opset: int | None


@dataclasses.dataclass(frozen=True)
class Exported:
    """The ONNX bytes, which exporter produced them, and what the notes should say about it."""

    onnx_bytes: bytes
    converter: str
    fallback_reason: str | None = None
    tracer_warnings: list[str] = dataclasses.field(default_factory=list)


def export_onnx(model: Any, call: ExportCall, *, exporter: Exporter) -> Exported:
    """Export with the requested exporter; ``auto`` tries dynamo and falls back to the legacy one."""
    if exporter == "legacy":
        return _legacy(model, call, reason=None)
    try:
        return _dynamo(model, call)
    except PackagingError:
        raise
    except Exception as exc:  # torch.export and onnxscript raise many unrelated exception types
        reason = first_line(exc)
        if exporter == "dynamo":
            raise PackagingError(f"torch: the dynamo exporter failed: {reason}", field="exporter") from exc
        try:
            return _legacy(model, call, reason=reason)
        except Exception as legacy_exc:
            raise PackagingError(
                f"torch: both exporters failed. dynamo: {reason}; legacy: {first_line(legacy_exc)}"
            ) from legacy_exc


def first_line(exc: BaseException) -> str:
    """A one-line, colour-free summary of an exporter error (its messages span screens)."""
    text = _ANSI.sub("", str(exc)).strip()
    line = text.splitlines()[0] if text else ""
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        line = line.split(". ")[0].rstrip(".")
        line = f"{line} ({type(cause).__name__}: {_ANSI.sub('', str(cause)).strip().splitlines()[0]})"
    return f"{type(exc).__name__}: {line}"[:500]


def _dynamo(model: Any, call: ExportCall) -> Exported:
    import torch

    dynamic_shapes: dict[str, Any] | None = None
    if call.batch_inputs:
        batch = torch.export.Dim(BATCH_DIM)
        names = list(call.kwargs) if call.kwargs else call.input_names[: len(call.args)]
        dynamic_shapes = {name: ({0: batch} if name in call.batch_inputs else None) for name in names}
        if not call.kwargs:
            dynamic_shapes = tuple(dynamic_shapes.values())  # type: ignore[assignment]
    with quiet():
        program = torch.onnx.export(
            model,
            call.args,
            kwargs=call.kwargs or None,
            dynamo=True,
            external_data=False,
            input_names=call.input_names,
            output_names=call.output_names,
            dynamic_shapes=dynamic_shapes,
            opset_version=call.opset,
            verbose=False,
            report=False,
        )
        if program is None:
            raise RuntimeError("torch.onnx.export returned no program")
        proto = program.model_proto
    return Exported(onnx_bytes=_serialize(proto), converter=DYNAMO_CONVERTER)


def _legacy(model: Any, call: ExportCall, *, reason: str | None) -> Exported:
    import torch

    dynamic_axes = {name: {0: BATCH_DIM} for name in call.batch_inputs}
    if call.batch_inputs:
        dynamic_axes.update({name: {0: BATCH_DIM} for name in call.output_names})
    args = call.args if not call.kwargs else (*call.args, dict(call.kwargs))
    with tempfile.TemporaryDirectory(prefix="modelfn-torch-") as tmp, quiet() as caught:
        target = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model,
            args,
            target,
            dynamo=False,
            input_names=call.input_names,
            output_names=call.output_names,
            dynamic_axes=dynamic_axes or None,
            opset_version=call.opset,
            verbose=False,
        )
        onnx_bytes = target.read_bytes()
    tracer = sorted({_ANSI.sub("", str(w.message)).splitlines()[0] for w in caught if _is_tracer(w.category)})
    return Exported(onnx_bytes=onnx_bytes, converter=LEGACY_CONVERTER, fallback_reason=reason, tracer_warnings=tracer)


def _is_tracer(category: type[Warning]) -> bool:
    return category.__name__ == "TracerWarning"


def _serialize(proto: Any) -> bytes:
    size = int(proto.ByteSize())
    if size > SINGLE_FILE_LIMIT:
        raise PackagingError(
            f"torch: the exported model is {size / 2**30:.1f} GiB; a bundle holds one self-contained model.onnx,"
            " which protobuf limits to 2 GB"
        )
    data: bytes = proto.SerializeToString()
    return data


@contextlib.contextmanager
def quiet() -> Iterator[list[warnings.WarningMessage]]:
    """Capture the exporters' warnings, prints and log records for the duration of one export."""
    previous_disable = logging.root.manager.disable
    sink = io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        warnings.simplefilter("always")
        logging.disable(logging.CRITICAL)
        try:
            yield caught
        finally:
            logging.disable(previous_disable)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The sample as tensors: positional (``args``) or by forward argument name (``kwargs``)."""

    names: list[str]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def forward_params(model: Any) -> tuple[list[str], bool]:
    """Positional ``forward`` argument names, and whether it also takes ``*args``."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # builtins / scripted modules without a Python signature
        return [], True
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [p.name for p in signature.parameters.values() if p.kind in kinds]
    open_ended = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values())
    return params, open_ended


def float_dtype(model: Any) -> Any:
    """The dtype of the module's first floating parameter or buffer (float samples are cast to it)."""
    tensors = [*model.parameters(), *model.buffers()] if hasattr(model, "parameters") else []
    return next((t.dtype for t in tensors if t.is_floating_point()), None)


def to_tensor(value: Any, float_dtype: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(np.asarray(value)))
    if float_dtype is not None and tensor.is_floating_point() and tensor.dtype != float_dtype:
        tensor = tensor.to(float_dtype)
    return tensor


def leaves(result: Any) -> list[Any]:
    import torch
    from torch.utils._pytree import tree_leaves

    leaves = tree_leaves(result)
    if not leaves or not all(isinstance(t, torch.Tensor) for t in leaves):
        kinds = sorted({type(t).__name__ for t in leaves}) or ["nothing"]
        raise PackagingError(f"torch: forward must return tensors (a tensor, tuple, list or dict); got {kinds}")
    return leaves


def batched_inputs(inputs: Inputs) -> list[str]:
    """Inputs whose dim 0 matches the first input's: they share the symbolic batch dim."""
    tensors = list(inputs.args) or list(inputs.kwargs.values())
    shaped = [(n, t) for n, t in zip(inputs.names, tensors, strict=True) if t.dim() > 0]
    if not shaped:
        return []
    rows = shaped[0][1].shape[0]
    return [n for n, t in shaped if t.shape[0] == rows]


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Eval mode (dropout off, batch-norm running stats) for the duration, then the caller's mode again."""
    training = bool(getattr(model, "training", False))
    if training:
        model.eval()
    try:
        yield
    finally:
        if training:
            model.train(True)


def kwargs_option(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PackagingError(f"option model_kwargs is not valid JSON: {exc}", field="model_kwargs") from exc
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise PackagingError("option model_kwargs must be a JSON object of constructor arguments", field="model_kwargs")
    return dict(value)


def names_option(option: str, value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else list(value)
    bad = [n for n in names if not isinstance(n, str) or not _NAME.match(n)]
    if not names or bad or len(set(names)) != len(names):
        raise PackagingError(
            f"option {option} must be distinct names (letters, digits, _ . -), comma-separated; got {value!r}",
            field=option,
        )
    return names


def labels_option(value: str | Sequence[str | int] | None) -> list[str | int] | None:
    if value is None:
        return None
    labels: list[str | int] = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    if not labels or not all(isinstance(v, str | int) and not isinstance(v, bool) and v != "" for v in labels):
        raise PackagingError(
            f"option labels must be class labels (strings or integers), comma-separated; got {value!r}", field="labels"
        )
    return labels


def bool_option(option: str, value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise PackagingError(f"option {option} must be true or false, got {value!r}", field=option)
