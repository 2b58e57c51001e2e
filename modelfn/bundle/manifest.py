"""The bundle manifest: what the model is, where it came from, what goes in and out.

Per-file SHA-256 digests are deliberately *not* here: they live only in the signature's resource
list, so the two can never disagree.

The schema is declared with msgspec Structs: decoding is strict (types, constraints, unknown
fields refused) like pydantic's, but importing it costs about 5 ms on the function's cold path
against about 100 ms for the equivalent pydantic models (measured in bench/bench_coldstart.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Self

import msgspec
from msgspec import Meta, Struct, field

from modelfn.bundle.processing import Processing
from modelfn.errors import UnsafeBundleError

MANIFEST_SCHEMA_VERSION = 1

DType = Literal[
    "float16", "float32", "float64", "bfloat16",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "string",
]  # fmt: skip
NonEmpty = Annotated[str, Meta(min_length=1)]
NonNegative = Annotated[int, Meta(ge=0)]


class _Strict(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Frozen, keyword-only, unknown fields refused; validated when decoded or converted."""

    @classmethod
    def from_builtins(cls, obj: Any) -> Self:
        """Validate plain Python data (dicts, lists, str, numbers) into this type; ``ValueError`` on mismatch."""
        try:
            return msgspec.convert(obj, type=cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"{cls.__name__}: {exc}") from exc

    def to_builtins(self) -> dict[str, Any]:
        """Plain JSON-ready data (datetimes as RFC 3339 strings)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        return msgspec.structs.replace(self, **changes)


class TensorSpec(_Strict, frozen=True, kw_only=True):
    """One named input or output tensor. ``-1`` in ``shape`` marks a dynamic dimension."""

    name: NonEmpty
    dtype: DType
    shape: list[int]

    def is_compatible(self, shape: tuple[int, ...]) -> bool:
        """True when a concrete shape fits this spec (same rank, fixed dims equal)."""
        return len(shape) == len(self.shape) and all(s == -1 or s == d for s, d in zip(self.shape, shape, strict=True))


class FrameworkInfo(_Strict, frozen=True, kw_only=True):
    """The framework the model came from and the converter that produced the artifact."""

    name: str
    version: str | None = None
    converter: str | None = None
    converter_version: str | None = None


class ParityReport(_Strict, frozen=True, kw_only=True):
    """How close the runtime artifact is to the native framework on the sample input."""

    samples: int
    max_abs_diff: float
    max_rel_diff: float
    atol: float
    rtol: float
    label_agreement: float | None = None
    outputs: dict[str, float] = field(default_factory=dict)
    """Per-output max abs diff."""
    preprocessing_samples: int | None = None
    """Sample images (or records) run through the declared pipeline at packaging."""
    preprocessing_reference: str | None = None
    """The user's ``module:function`` the pipeline's tensors were compared with (``--reference-preprocess``)."""
    preprocessing_max_abs_diff: float | None = None
    """Pipeline tensors vs the reference function's, max abs diff."""
    preprocessing_top1_agreement: float | None = None
    """Share of samples whose top-1 class is the same on the pipeline's and the reference's tensors."""


class CompressionReport(_Strict, frozen=True, kw_only=True):
    """What quantization did to the artifact: sizes, and how far the compressed outputs moved on the sample."""

    method: Literal["int8-dynamic"] = "int8-dynamic"
    weight_type: Literal["int8", "uint8"]
    per_channel: bool = False
    reduce_range: bool = False
    size_before: NonNegative
    size_after: NonNegative
    quantized_weights: NonNegative
    """Weight tensors stored as 8-bit integers."""
    samples: int
    max_abs_diff_onnx: float
    """Compressed vs the float ONNX model."""
    max_abs_diff_native: float | None = None
    """Compressed vs the native framework (None when no native outputs were given)."""
    label_agreement_onnx: float | None = None
    label_agreement_native: float | None = None
    compared_outputs: list[str] = field(default_factory=list)
    """Outputs whose predicted class (a label, or the arg-max of class scores) the agreement figures compare."""
    min_agreement: float
    """The floor below which packaging refused the compressed model."""


class Encryption(_Strict, frozen=True, kw_only=True):
    """How the artifact's bytes are encrypted: AES-256-GCM under a data key wrapped by KMS or a local key file.

    The signature covers the ciphertext and this record (the manifest is signed), so both are
    verified before anything is unwrapped or decrypted (SECURITY.md rule 16).
    """

    algorithm: Literal["AES-256-GCM"] = "AES-256-GCM"
    key_source: Literal["kms", "local"]
    """``kms``: the data key is a KMS ``GenerateDataKey`` blob; ``local``: AES key wrap (RFC 3394) under a key file."""
    key_id: NonEmpty
    """The KMS key ARN, or the local wrapping key's fingerprint (``modelfn keygen --wrapping-key`` prints it)."""
    wrapped_key: NonEmpty
    """Base64 of the wrapped 256-bit data key."""
    nonce: NonEmpty
    """Base64 of the 96-bit GCM nonce; the 128-bit tag ends the ciphertext."""


class Manifest(_Strict, frozen=True, kw_only=True):
    """Everything the run time needs to know about a bundle besides its bytes."""

    schema_version: int = MANIFEST_SCHEMA_VERSION
    name: str
    version: Annotated[int, Meta(ge=1)]
    runtime: Literal["onnx", "python"] = "onnx"
    """``python``: the artifact is custom code (``model.py``), served only with ``allow_custom_code`` on."""
    artifact: str = "model.onnx"
    framework: FrameworkInfo
    opset: dict[str, int] = field(default_factory=dict)
    inputs: Annotated[list[TensorSpec], Meta(min_length=1)]
    outputs: Annotated[list[TensorSpec], Meta(min_length=1)]
    labels: list[str | int] | None = None
    """Class labels for classifiers, in output-index order."""
    parity: ParityReport | None = None
    compression: CompressionReport | None = None
    preprocessing: str | None = None
    """Free-text notes on what the caller must do to inputs (custom code, adapters); not applied."""
    processing: Processing | None = None
    """The declared pipeline applied at run time (``modelfn.processing``); signed with the manifest."""
    encryption: Encryption | None = None
    """Set when the artifact is stored encrypted; it is decrypted in memory only, after verification."""
    created_at: dt.datetime
    modelfn_version: str

    def __post_init__(self) -> None:
        if self.encryption is not None and self.runtime != "onnx":
            raise ValueError("encryption applies to onnx artifacts only")
        if self.processing is not None:
            self._check_processing(self.processing)

    def _check_processing(self, processing: Processing) -> None:
        """Every name the pipeline uses is one of the model's, and an image input can hold the images."""
        inputs = {spec.name: spec for spec in self.inputs}
        outputs = {spec.name for spec in self.outputs}
        image, records, output = processing.image, processing.records, processing.output
        if image is not None:
            spec = inputs.get(image.input)
            if spec is None:
                raise ValueError(f"processing.image.input {image.input!r} is not a model input")
            if len(spec.shape) != 4 or not spec.is_compatible(tuple(max(d, 1) for d in image.tensor_shape())):
                raise ValueError(
                    f"processing.image makes {image.layout} tensors {image.tensor_shape()};"
                    f" input {spec.name!r} takes {spec.shape}"
                )
            if spec.dtype != image.dtype:
                raise ValueError(f"processing.image makes {image.dtype}; input {spec.name!r} takes {spec.dtype}")
        if records is not None:
            wanted = [records.input] if records.input is not None else records.features
            missing = [name for name in wanted if name not in inputs]
            if missing:
                raise ValueError(f"processing.records names {missing[0]!r}, which is not a model input")
        if output is not None and output.output not in outputs:
            raise ValueError(f"processing.output.output {output.output!r} is not a model output")

    def to_json(self) -> bytes:
        """Canonical JSON bytes (sorted keys, indented) as written into the bundle."""
        return msgspec.json.format(msgspec.json.encode(self, order="sorted"), indent=2) + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse and validate manifest bytes; only ever called on bytes whose digest was verified."""
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            raise UnsafeBundleError(f"manifest.json is invalid: {exc}") from exc

    def input(self, name: str) -> TensorSpec | None:
        """The input spec called ``name``, if any."""
        return next((t for t in self.inputs if t.name == name), None)
