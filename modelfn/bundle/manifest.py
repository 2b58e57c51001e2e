"""The bundle manifest: what the model is, where it came from, what goes in and out.

Per-file SHA-256 digests are deliberately *not* here: they live only in the signature's resource
list, so the two can never disagree.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelfn.errors import UnsafeBundleError

MANIFEST_SCHEMA_VERSION = 1

DType = Literal[
    "float16", "float32", "float64", "bfloat16",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "string",
]  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One named input or output tensor. ``-1`` in ``shape`` marks a dynamic dimension."""

    name: str = Field(min_length=1)
    dtype: DType
    shape: list[int]

    def is_compatible(self, shape: tuple[int, ...]) -> bool:
        """True when a concrete shape fits this spec (same rank, fixed dims equal)."""
        return len(shape) == len(self.shape) and all(s == -1 or s == d for s, d in zip(self.shape, shape, strict=True))


class FrameworkInfo(_Strict):
    """The framework the model came from and the converter that produced the artifact."""

    name: str
    version: str | None = None
    converter: str | None = None
    converter_version: str | None = None


class ParityReport(_Strict):
    """How close the runtime artifact is to the native framework on the sample input."""

    samples: int
    max_abs_diff: float
    max_rel_diff: float
    atol: float
    rtol: float
    label_agreement: float | None = None
    outputs: dict[str, float] = Field(default_factory=dict)
    """Per-output max abs diff."""


class CompressionReport(_Strict):
    """What quantization did to the artifact: sizes, and how far the compressed outputs moved on the sample."""

    method: Literal["int8-dynamic"] = "int8-dynamic"
    weight_type: Literal["int8", "uint8"]
    per_channel: bool = False
    reduce_range: bool = False
    size_before: int = Field(ge=0)
    size_after: int = Field(ge=0)
    quantized_weights: int = Field(ge=0)
    """Weight tensors stored as 8-bit integers."""
    samples: int
    max_abs_diff_onnx: float
    """Compressed vs the float ONNX model."""
    max_abs_diff_native: float | None = None
    """Compressed vs the native framework (None when no native outputs were given)."""
    label_agreement_onnx: float | None = None
    label_agreement_native: float | None = None
    min_agreement: float
    """The floor below which packaging refused the compressed model."""


class Manifest(_Strict):
    """Everything the run time needs to know about a bundle besides its bytes."""

    schema_version: int = MANIFEST_SCHEMA_VERSION
    name: str
    version: int = Field(ge=1)
    runtime: Literal["onnx", "python"] = "onnx"
    """``python``: the artifact is custom code (``model.py``), served only with ``allow_custom_code`` on."""
    artifact: str = "model.onnx"
    framework: FrameworkInfo
    opset: dict[str, int] = Field(default_factory=dict)
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    labels: list[str | int] | None = None
    """Class labels for classifiers, in output-index order."""
    parity: ParityReport | None = None
    compression: CompressionReport | None = None
    preprocessing: str | None = None
    created_at: dt.datetime
    modelfn_version: str

    def to_json(self) -> bytes:
        """Canonical JSON bytes (sorted keys, indented) as written into the bundle."""
        import json

        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse manifest bytes; only ever called on bytes whose digest was verified."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UnsafeBundleError(f"manifest.json is invalid at {where or 'top level'}: {first['msg']}") from exc

    def input(self, name: str) -> TensorSpec | None:
        """The input spec called ``name``, if any."""
        return next((t for t in self.inputs if t.name == name), None)
