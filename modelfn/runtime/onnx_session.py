"""An onnxruntime session built from verified bytes, with the manifest's schema enforced.

``OnnxModel`` is the run-time object every front door (HTTP, storage events) calls. It is built
from the exact bytes the loader hashed; it never re-opens a path (SECURITY.md rule 9).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelfn.errors import ConfigError, UnsafeBundleError
from modelfn.runtime.base import check_output_names, numpy_dtype, validate_feeds
from modelfn.runtime.onnx_guard import check_external_data, inspect_onnx, refuse_external_data
from modelfn.serving.metrics import METRICS

logger = logging.getLogger("modelfn.runtime")

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


CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PROVIDER_ALIASES: dict[str, str] = {
    "cpu": CPU,
    "cuda": CUDA,
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}
"""Short names accepted in ``MODELFN_PROVIDERS`` beside onnxruntime's full provider names."""
DEVICE_OF: dict[str, str] = {CUDA: "cuda", "TensorrtExecutionProvider": "cuda"}
"""Providers whose outputs IO binding leaves on a device (copied to the host once per run)."""
PROVIDER_FALLBACK = "ProviderFallback"
"""Metric: a requested execution provider was missing and the model runs on the ones left (CPU)."""


def resolve_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """Full provider names to ask onnxruntime for: the requested ones present here, CPU by default.

    A missing provider falls back (warning log + ``ProviderFallback`` metric) when the request lists
    ``cpu``; without it the accelerator is required and its absence is a ``ConfigError``.
    """
    names = [PROVIDER_ALIASES.get(p.strip().lower(), p.strip()) for p in requested if p.strip()] or [CPU]
    missing = [p for p in names if p not in available]
    if not missing:
        return names
    return _fall_back(names, missing, f"this onnxruntime build lacks it (available: {', '.join(available)})")


def _fall_back(names: list[str], missing: list[str], why: str) -> list[str]:
    if CPU not in names:
        raise ConfigError(
            f"MODELFN_PROVIDERS requires {', '.join(missing)}, but {why}; install onnxruntime-gpu on a GPU machine, "
            f"or list cpu last (e.g. cuda,cpu) to fall back",
            field="providers",
        )
    kept = [p for p in names if p not in missing]
    logger.warning("execution provider %s unavailable: %s; running on %s", ", ".join(missing), why, ", ".join(kept))
    METRICS.add(PROVIDER_FALLBACK)
    return kept


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
        io_binding: bool | None = None,
    ) -> None:
        """``data_files``: the bundle's verified external-data files by name (models over 2 GB), else none.

        ``providers``: as ``MODELFN_PROVIDERS`` (empty: CPU). ``io_binding``: run through an IO binding
        (inputs bound from host arrays, outputs left on the device and copied once); by default on
        exactly when a GPU provider is active.
        """
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
        # Idle pool threads spin 2 ms, not the default ~1M pauses (~25 ms of a core here): from their start,
        # while the session builds, and after every run. Back-to-back requests still find them spinning;
        # outputs are unaffected. Builds older than the key (1.32 has it) ignore it.
        options.add_session_config_entry("session.intra_op.spin_duration_us", "2000")
        self.manifest = manifest
        wanted = resolve_providers(providers, ort.get_available_providers())
        self._session = ort.InferenceSession(model_bytes, sess_options=options, providers=wanted)
        active = self._session.get_providers()
        failed = [p for p in wanted if p not in active]
        if failed:  # present in the build but not usable here (no device, missing CUDA libraries)
            _fall_back(wanted, failed, "onnxruntime could not start it on this machine")
        self.providers: list[str] = list(active)
        self.device = next((DEVICE_OF[p] for p in active if p in DEVICE_OF), "cpu")
        self.io_binding = self.device != "cpu" if io_binding is None else io_binding
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
        results = self._run(wanted, self.validate(feeds))
        return dict(zip(wanted, results, strict=True))

    def _run(self, wanted: list[str], feeds: Mapping[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        """``session.run``, or the IO-binding run: one host-to-device copy in, one device-to-host copy out."""
        if not self.io_binding or any(a.dtype.kind == "O" for a in feeds.values()):
            return list(self._session.run(wanted, dict(feeds)))
        return self._run_bound(wanted, feeds)

    def _run_bound(self, wanted: list[str], feeds: Mapping[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        """One run through an IO binding: inputs bound from host arrays, outputs on ``self.device``."""
        import numpy as np

        binding = self._session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name in wanted:
            binding.bind_output(name, self.device)
        self._session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def warm_up(self) -> None:
        """One run on zeros shaped from the schema (dynamic dims = 1) so the first request is warm."""
        import numpy as np

        feeds = {
            s.name: np.zeros([d if d > 0 else 1 for d in s.shape], dtype=numpy_dtype(s.dtype))
            for s in self.manifest.inputs
        }
        self._run(list(self.output_names), feeds)
