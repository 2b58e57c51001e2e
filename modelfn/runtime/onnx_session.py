"""An onnxruntime session built from verified bytes, with the manifest's schema enforced.

``OnnxModel`` is the run-time object every front door (HTTP, storage events) calls. It is built
from the exact bytes the loader hashed; it never re-opens a path (SECURITY.md rule 9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelfn.errors import UnsafeBundleError
from modelfn.runtime.base import check_output_names, numpy_dtype, validate_feeds
from modelfn.runtime.onnx_guard import check_external_data, inspect_onnx, refuse_external_data

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest

# onnxruntime type strings -> numpy / manifest dtype names
ORT_DTYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, always CPU last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


class OnnxModel:
    """A ready-to-run model: onnxruntime session + the manifest that describes it."""

    def __init__(
        self,
        model_bytes: bytes,
        manifest: Manifest,
        *,
        threads: int = 0,
        providers: Sequence[str] = (),
        data_files: Mapping[str, bytes] | None = None,
    ) -> None:
        """``data_files``: the bundle's verified external-data files by name (models over 2 GB), else none."""
        facts = inspect_onnx(model_bytes, artifact=manifest.artifact)
        if data_files:
            check_external_data(facts, data_files, artifact=manifest.artifact)
        else:
            refuse_external_data(facts, artifact=manifest.artifact)
        import onnxruntime as ort

        options = ort.SessionOptions()
        if data_files:  # onnxruntime copies what it needs while the session is built; no file is opened
            names = sorted(data_files)
            buffers = [memoryview(data_files[n]) for n in names]
            options.add_external_initializers_from_files_in_memory(names, buffers, [len(b) for b in buffers])
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.manifest = manifest
        self.providers = list(providers) or default_providers()
        self._session = ort.InferenceSession(model_bytes, sess_options=options, providers=self.providers)
        self._input_specs = {spec.name: spec for spec in manifest.inputs}
        self.output_names = [o.name for o in self._session.get_outputs()]
        self._check_schema_matches_session()

    def _check_schema_matches_session(self) -> None:
        """The signed manifest and the graph must agree, or the bundle is lying about its schema."""
        graph_inputs = {i.name: ORT_DTYPES.get(i.type, i.type) for i in self._session.get_inputs()}
        declared = {s.name: s.dtype for s in self.manifest.inputs}
        if graph_inputs != declared:
            raise UnsafeBundleError(f"manifest inputs {declared} do not match the model graph inputs {graph_inputs}")
        missing = [o.name for o in self.manifest.outputs if o.name not in self.output_names]
        if missing:
            raise UnsafeBundleError(f"manifest outputs {missing} are not outputs of the model graph")

    def validate(self, feeds: Mapping[str, Any]) -> dict[str, npt.NDArray[Any]]:
        """Check names, dtypes and shapes against the schema; cast safe numeric inputs. 4xx on mismatch."""
        return validate_feeds(feeds, self._input_specs)

    def predict(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        """Validate then run; returns every (or the requested) output by name."""
        wanted = check_output_names(outputs, self.output_names)
        results = self._session.run(wanted, self.validate(feeds))
        return dict(zip(wanted, results, strict=True))

    def warm_up(self) -> None:
        """One run on zeros shaped from the schema (dynamic dims = 1) so the first request is warm."""
        import numpy as np

        feeds = {
            s.name: np.zeros([d if d > 0 else 1 for d in s.shape], dtype=numpy_dtype(s.dtype))
            for s in self.manifest.inputs
        }
        self._session.run(None, feeds)
