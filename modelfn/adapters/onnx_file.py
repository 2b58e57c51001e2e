"""ONNX models pass straight through, after the checks a bundle needs.

The file must be one self-contained model (no external data: the bundle is ``model.onnx`` and
nothing else), valid by ``onnx.checker``, and loadable by onnxruntime. An ``opset`` request
converts the default domain with the ONNX version converter. Parity is onnxruntime against
itself, so it is exact; it still runs once to prove the model loads and answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelfn.adapters.base import ExportResult, SampleInput, class_from, import_extra
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np

SUFFIXES = (".onnx",)


class OnnxFileAdapter:
    """A ready ONNX model (``onnx.ModelProto`` or a ``.onnx`` file)."""

    name: ClassVar[str] = "onnx"

    @classmethod
    def detects(cls, model: Any) -> bool:
        """A ``.onnx`` path or an ``onnx.ModelProto``."""
        if isinstance(model, Path):
            return model.is_file() and model.suffix.lower() in SUFFIXES
        return type(model).__name__ == "ModelProto" and class_from(model, "onnx")

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """Parse the file's bytes (never following external-data references); refuse external data."""
        onnx = import_extra("onnx", extra="onnx")
        data = path.read_bytes()
        _refuse_external_data(data, path.name)
        try:
            return onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf raises DecodeError, onnx raises several kinds
            raise PackagingError(f"onnx: cannot parse {path.name} as an ONNX model: {exc}") from exc

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """Check (and optionally convert the opset of) the model; the bytes go into the bundle as they are."""
        onnx = import_extra("onnx", extra="onnx")
        from modelfn.bundle.manifest import FrameworkInfo

        _refuse_external_data(model.SerializeToString(), "the model")
        if opset is not None and _default_opset(model) != opset:
            from onnx import version_converter

            try:
                model = version_converter.convert_version(model, opset)
            except Exception as exc:  # the converter raises plain RuntimeError/ValueError
                raise PackagingError(f"onnx: cannot convert the model to opset {opset}: {exc}") from exc
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise PackagingError(f"onnx: the model fails onnx.checker: {exc}") from exc
        framework = FrameworkInfo(
            name=self.name,
            version=onnx.__version__,
            converter=model.producer_name or None,
            converter_version=model.producer_version or None,
        )
        return ExportResult(onnx_bytes=model.SerializeToString(), framework=framework)

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, np.ndarray[Any, Any]]:
        """onnxruntime on the model itself: the reference for an ONNX file is the file."""
        from modelfn.bundle.schema import read_schema
        from modelfn.parity import run_onnx, to_feeds

        data = model.SerializeToString()
        return run_onnx(data, to_feeds(sample, read_schema(data).inputs))


def _default_opset(model: Any) -> int | None:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _refuse_external_data(data: bytes, where: str) -> None:
    """The run-time guard's walk (graphs, subgraphs, functions, sparse tensors), applied at build time."""
    from modelfn.errors import UnsafeBundleError
    from modelfn.runtime.onnx_guard import inspect_onnx

    try:
        facts = inspect_onnx(data, artifact=where)
    except UnsafeBundleError as exc:
        raise PackagingError(f"onnx: {exc.message}", field="model") from exc
    for tensor, location in facts.external:
        raise PackagingError(
            f"onnx: {where} keeps tensor {tensor!r} in external file {location!r}; a bundle holds one"
            " self-contained model.onnx. Re-save it with onnx.save_model(model, path,"
            " save_as_external_data=False) (models under 2 GB)",
            field="model",
        )
