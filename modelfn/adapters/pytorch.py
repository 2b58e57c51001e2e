"""PyTorch ``nn.Module`` models, exported to ONNX with ``torch.onnx`` (dynamo first, TorchScript as fallback).

A module arrives as an object, as ``.safetensors`` weights plus its class path (no pickle, no
flag), as a ``.pt``/``.pth`` file, which is pickle or TorchScript and so needs explicit consent
at build time (``weights_only=True`` is tried first; a ``torch.jit.save`` archive is recognised by
its layout and loaded with ``torch.jit.load``), or as a TorchServe / MXNet Model Server ``.mar``
archive (``_torch_archive``: the serialized model is converted, the handler is not run). ONNX
input names are the ``forward`` argument names (or the sample's dict keys), outputs are ``output``
or ``output_0..n`` (a dict output keeps its keys), and dim 0 of the batched inputs stays symbolic
so the served function takes any batch.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from modelfn.adapters._torch_archive import (
    MAR_SUFFIX,
    ModelArchive,
    is_torchscript,
    load_archive_model,
    read_model_archive,
    torch_consent,
)
from modelfn.adapters._torch_export import (
    EXPORTERS,
    ExportCall,
    Exported,
    Exporter,
    Inputs,
    batched_inputs,
    bool_option,
    eval_mode,
    export_onnx,
    float_dtype,
    forward_params,
    kwargs_option,
    labels_option,
    leaves,
    names_option,
    to_tensor,
)
from modelfn.adapters.base import ExportResult, SampleInput, import_extra
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np

TorchSample: TypeAlias = "SampleInput | tuple[Any, ...]"
"""One array, arrays by forward argument name, or a tuple in forward order (arrays or tensors)."""
SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pt", ".pth")
SUFFIXES = (SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES, MAR_SUFFIX)
SINGLE_OUTPUT = "output"
CHECKPOINT_KEYS = ("state_dict", "model_state_dict")
"""Where training checkpoints commonly keep the weights."""
_CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class PyTorchAdapter:
    """A ``torch.nn.Module`` (object, ``.safetensors`` + class path, or ``.pt``/``.pth`` with consent)."""

    name: ClassVar[str] = "torch"

    def __init__(
        self,
        *,
        model_class: str | None = None,
        model_kwargs: str | Mapping[str, Any] | None = None,
        input_names: str | Sequence[str] | None = None,
        output_names: str | Sequence[str] | None = None,
        exporter: str = "auto",
        dynamic_batch: bool | str = True,
        labels: str | Sequence[str | int] | None = None,
    ) -> None:
        """Adapter options (``package(options=...)``; CLI ``--option key=value`` passes strings).

        Args:
            model_class: ``pkg.module:Class`` of the ``nn.Module`` that weights-only files load into.
            model_kwargs: its constructor arguments, a mapping or a JSON object string.
            input_names: ONNX input names in sample order (list or comma-separated); default: forward's.
            output_names: ONNX output names (list or comma-separated); default ``output`` / ``output_i``.
            exporter: ``auto`` (dynamo, TorchScript fallback), ``dynamo`` or ``legacy``.
            dynamic_batch: keep dim 0 symbolic (``true``/``false``).
            labels: class labels in score-column order, recorded for ``return_labels`` (list or comma-separated).
        """
        if model_class is not None and not _CLASS_PATH.match(model_class):
            raise PackagingError(
                f"option model_class must look like 'pkg.module:Class', got {model_class!r}",
                field="model_class",
            )
        self.model_class = model_class
        self.model_kwargs = kwargs_option(model_kwargs)
        self.input_names = names_option("input_names", input_names)
        self.output_names = names_option("output_names", output_names)
        if exporter not in EXPORTERS:
            raise PackagingError(
                f"option exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}", field="exporter"
            )
        self.exporter: Exporter = exporter
        self.dynamic_batch = bool_option("dynamic_batch", dynamic_batch)
        self.labels = labels_option(labels)
        self._archive_note: str | None = None
        self._delegate: Any = None
        """The MXNet adapter converting an MXNet Model Server archive's symbol/params."""

    @classmethod
    def detects(cls, model: Any) -> bool:
        """An ``nn.Module`` instance (by its class hierarchy, torch not imported) or a weights file suffix."""
        if isinstance(model, Path):
            return model.is_file() and model.suffix.lower() in SUFFIXES
        return any(c.__module__ == "torch.nn.modules.module" and c.__name__ == "Module" for c in type(model).__mro__)

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """``.safetensors`` into ``model_class``; ``.pt``/``.pth`` (state dict or module) only with ``allow_pickle``."""
        suffix = path.suffix.lower()
        if suffix == SAFETENSORS_SUFFIX:
            st = import_extra("safetensors.torch", extra="torch")
            try:
                state = st.load_file(str(path), device="cpu")
            except Exception as exc:  # SafetensorError, OSError, ValueError for a damaged header
                raise PackagingError(f"torch: {path.name} is not a readable safetensors file: {exc}") from exc
            return self._build(state, path)
        if suffix in PICKLE_SUFFIXES:
            torch_consent(path, allow_pickle=allow_pickle, torchscript=is_torchscript(path))
            return self._from_torch_file(path)
        if suffix == MAR_SUFFIX:
            return self._from_archive(read_model_archive(path), allow_pickle=allow_pickle)
        raise PackagingError(
            f"torch: cannot load {path.name}; expected {SAFETENSORS_SUFFIX} (with model_class) or"
            f" (with allow_pickle) {', '.join(PICKLE_SUFFIXES)}",
            field="model",
        )

    def export(self, model: Any, sample: TorchSample | None, *, opset: int | None) -> ExportResult:
        """``torch.onnx.export`` with a symbolic batch dim; the legacy exporter if dynamo cannot capture it."""
        if self._delegate is not None:
            result: ExportResult = self._delegate.export(model, sample, opset=opset)
            return dataclasses.replace(result, notes="; ".join(filter(None, [result.notes, self._archive_note])))
        torch = import_extra("torch", extra="torch")
        from modelfn.bundle.manifest import FrameworkInfo

        inputs = self._inputs(model, sample)
        output_names = self._output_names(_forward(torch, model, inputs))
        batched = batched_inputs(inputs) if self.dynamic_batch else []
        call = ExportCall(
            args=inputs.args,
            kwargs=inputs.kwargs,
            input_names=inputs.names,
            output_names=output_names,
            batch_inputs=batched,
            opset=opset,
        )
        with eval_mode(model):
            exported = export_onnx(model, call, exporter=self.exporter)
        framework = FrameworkInfo(
            name=self.name,
            version=str(torch.__version__),
            converter=exported.converter,
            converter_version=str(torch.__version__),
        )
        notes = "; ".join(filter(None, [_notes(call, exported), self._archive_note]))
        return ExportResult(onnx_bytes=exported.onnx_bytes, framework=framework, labels=self.labels, notes=notes)

    def native_predict(self, model: Any, sample: TorchSample) -> dict[str, np.ndarray[Any, Any]]:
        """The module's own forward on ``sample`` (eval mode, no grad), keyed like the ONNX outputs."""
        if self._delegate is not None:
            return dict(self._delegate.native_predict(model, sample))
        torch = import_extra("torch", extra="torch")

        result = _forward(torch, model, self._inputs(model, sample))
        names = self._output_names(result)
        return {name: t.detach().cpu().numpy() for name, t in zip(names, leaves(result), strict=True)}

    def _from_torch_file(self, path: Path) -> Any:
        """``torch.load``: ``weights_only=True`` first (plain state dicts), full unpickling only when needed."""
        import pickle

        torch = import_extra("torch", extra="torch")
        if is_torchscript(path):
            try:
                return torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:  # TorchScript deserialization errors are RuntimeErrors from C++
                raise PackagingError(f"torch: cannot load TorchScript {path.name}: {exc}", field="model") from exc
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # a whole module (or other objects) beyond the weights-only allow-list
            try:
                obj = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as exc:  # unpickling raises anything the payload chooses
                raise PackagingError(f"torch: cannot load {path.name}: {exc}") from exc
        except Exception as exc:  # not a torch file at all: zipfile/EOF/runtime errors
            raise PackagingError(f"torch: cannot load {path.name}: {exc}") from exc
        if isinstance(obj, torch.nn.Module):
            return obj
        if isinstance(obj, Mapping):
            nested = next((obj[k] for k in CHECKPOINT_KEYS if isinstance(obj.get(k), Mapping)), None)
            state = nested if nested is not None else obj
            if all(isinstance(v, torch.Tensor) for v in state.values()):
                return self._build(state, path)
        raise PackagingError(
            f"torch: {path.name} holds a {type(obj).__name__}; expected an nn.Module or a state_dict of tensors",
            field="model",
        )

    def _from_archive(self, archive: ModelArchive, *, allow_pickle: bool) -> Any:
        """The archive's model: MXNet symbol/params through the MXNet adapter, else TorchScript or eager torch."""
        loaded, self._delegate, self._archive_note = load_archive_model(
            archive, allow_pickle=allow_pickle, build=self._build if self.model_class else None, labels=self.labels,
        )  # fmt: skip
        return loaded

    def _build(self, state: Mapping[str, Any], path: Path) -> Any:
        """Instantiate ``model_class(**model_kwargs)`` and load ``state`` into it strictly."""
        if self.model_class is None:
            raise PackagingError(
                f"torch: {path.name} holds weights only ({len(state)} tensors); name the module class with"
                " model_class='pkg.module:Class' (CLI: --option model_class=pkg.module:Class), plus"
                " model_kwargs='{...}' (JSON) if its constructor needs arguments",
                field="model_class",
            )
        cls = _import_class(self.model_class)
        try:
            module = cls(**self.model_kwargs)
        except Exception as exc:  # the user's constructor raises whatever it raises
            raise PackagingError(
                f"torch: {self.model_class}(**{self.model_kwargs}) failed: {exc}", field="model_kwargs"
            ) from exc
        try:
            module.load_state_dict(dict(state), strict=True)
        except RuntimeError as exc:
            raise PackagingError(
                f"torch: the weights in {path.name} do not fit {self.model_class}: {str(exc).strip()[:800]}",
                field="model_class",
            ) from exc
        return module

    def _inputs(self, model: Any, sample: TorchSample | None) -> Inputs:
        """Tensors for ``forward`` from an array, a tuple of arrays, or arrays by argument name."""
        if sample is None:
            raise PackagingError("torch: a sample input is required to trace the model", field="sample")
        if not self.detects(model):
            raise PackagingError(f"torch: expected a torch.nn.Module, got {type(model).__name__}", field="model")
        params, open_ended = forward_params(model)
        dtype = float_dtype(model)
        if isinstance(sample, Mapping):
            aliases = dict(zip(self.input_names or [], params, strict=False))
            arg_of: dict[str, str] = {str(k): aliases.get(str(k), str(k)) for k in sample}
            unknown = sorted(k for k, arg in arg_of.items() if arg not in params)
            if unknown:
                raise PackagingError(
                    f"torch: sample keys {unknown} are not arguments of {type(model).__name__}.forward{tuple(params)};"
                    " key the sample by forward argument name (or pass a tuple in forward order)",
                    field="sample",
                )
            names = sorted(arg_of, key=lambda k: params.index(arg_of[k]))
            kwargs = {arg_of[k]: to_tensor(sample[k], dtype) for k in names}
            return Inputs(names=names, args=(), kwargs=kwargs)
        values = list(sample) if isinstance(sample, tuple) else [sample]
        if len(values) > len(params) and not open_ended:
            raise PackagingError(
                f"torch: the sample has {len(values)} inputs but {type(model).__name__}.forward takes {params}",
                field="sample",
            )
        names = list(self.input_names or [])
        if names and len(names) != len(values):
            raise PackagingError(
                f"option input_names has {len(names)} names for {len(values)} sample inputs", field="input_names"
            )
        names = names or [params[i] if i < len(params) else f"input_{i}" for i in range(len(values))]
        return Inputs(names=names, args=tuple(to_tensor(v, dtype) for v in values), kwargs={})

    def _output_names(self, result: Any) -> list[str]:
        """``output`` for one tensor, ``output_i`` for several, a dict's keys; or the ``output_names`` option."""
        tensors = leaves(result)
        if self.output_names is not None:
            if len(self.output_names) != len(tensors):
                raise PackagingError(
                    f"option output_names has {len(self.output_names)} names; the model returns {len(tensors)} tensors",
                    field="output_names",
                )
            return list(self.output_names)
        if isinstance(result, Mapping) and len(result) == len(tensors):
            return [str(k) for k in result]
        return [SINGLE_OUTPUT] if len(tensors) == 1 else [f"{SINGLE_OUTPUT}_{i}" for i in range(len(tensors))]


def _forward(torch: Any, model: Any, inputs: Inputs) -> Any:
    """One eval-mode, no-grad forward pass; a failure is the sample's or the module's, reported as such."""
    with eval_mode(model), torch.no_grad():
        try:
            return model(*inputs.args, **inputs.kwargs)
        except Exception as exc:  # the user's forward raises whatever it raises
            raise PackagingError(
                f"torch: {type(model).__name__}.forward failed on the sample {inputs.names}: {exc}", field="sample"
            ) from exc


def _notes(call: ExportCall, exported: Exported) -> str:
    parts = [f"inputs {call.input_names}, outputs {call.output_names}"]
    if call.batch_inputs:
        parts.append(f"dim 0 of {call.batch_inputs} is the dynamic batch dim")
    parts.append(f"exported with {exported.converter}")
    if exported.fallback_reason:
        parts.append(
            f"fell back to the TorchScript exporter because the dynamo exporter failed: {exported.fallback_reason}"
        )
    if exported.tracer_warnings:
        parts.append("tracer warnings (the trace may not generalize): " + " | ".join(exported.tracer_warnings))
    return "; ".join(parts)


def _import_class(path: str) -> Any:
    import torch

    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for attr in qualname.split("."):
            obj = getattr(obj, attr)
    except (ImportError, AttributeError) as exc:
        raise PackagingError(f"option model_class {path!r} cannot be imported: {exc}", field="model_class") from exc
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise PackagingError(f"option model_class {path!r} is not a torch.nn.Module subclass", field="model_class")
    return obj
