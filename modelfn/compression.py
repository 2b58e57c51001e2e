"""Int8 dynamic quantization, accepted only when the compressed model still gives the same answers.

Weights of MatMul/Gemm/Conv-style nodes become 8-bit integers (activations are quantized on the
fly), which shrinks a float model about four times and often speeds it up on CPU. Rounding moves
the outputs, so the compressed model runs on the packaging sample next to the float ONNX model
and the native outputs: the deltas go into the manifest, and a model whose predicted class
changes on more than ``1 - min_agreement`` of the sample rows is refused. The predicted class is
a label output, or the arg-max of class scores: any ``[N, classes]`` float output (probabilities
or logits), whether or not labels were named, since a PyTorch or Keras classifier rarely names
them. Build time only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelfn.adapters.base import import_extra
from modelfn.errors import PackagingError, ParityError
from modelfn.parity import DEFAULT_MIN_AGREEMENT

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import CompressionReport

    Array = npt.NDArray[Any]

WEIGHT_TYPES = ("int8", "uint8")
_QUANT_HINT = "pre-processing before quantization"
"""The quantizer's root-logger hint, printed when its own pre-processing step could not run."""


@dataclasses.dataclass(frozen=True)
class CompressionResult:
    """The compressed model and the report that goes into the manifest's ``compression`` field."""

    onnx_bytes: bytes
    report: CompressionReport


@dataclasses.dataclass(frozen=True)
class _Agreement:
    value: float
    output: str
    row: int | None
    """First disagreeing row, if any."""
    want: Any = None
    got: Any = None
    compared: tuple[str, ...] = ()
    """Every output the agreement was measured on."""


def quantize_int8(
    onnx_bytes: bytes,
    *,
    sample_feeds: Mapping[str, Array],
    native_outputs: Mapping[str, Any] | None = None,
    labels: Sequence[str | int] | None = None,
    classifier: bool | None = None,
    weight_type: str = "int8",
    per_channel: bool | str = False,
    reduce_range: bool | str = False,
    min_agreement: float | str = DEFAULT_MIN_AGREEMENT,
) -> CompressionResult:
    """Quantize ``onnx_bytes`` (onnxruntime ``quantize_dynamic``) and measure it on ``sample_feeds``.

    ``native_outputs`` are the framework's own outputs on the sample, keyed by ONNX output name.
    Label agreement is measured for integer/string outputs, and for ``[N, classes]`` float outputs
    (arg-max) unless ``classifier`` is False (a multi-output regressor: no outputs are class scores).
    ``labels`` only confirm a classifier; without them every ``[N, C >= 2]`` float output counts.
    ``reduce_range`` uses 7-bit weights, which avoids int8 x uint8 overflow on x86 CPUs without VNNI
    (AVX2) at some precision cost. Raises ``ParityError`` when agreement with the float ONNX model or
    the native outputs falls below ``min_agreement``, ``PackagingError`` when nothing can be quantized.
    """
    from modelfn.bundle.manifest import CompressionReport
    from modelfn.parity import run_onnx

    wtype = _weight_type(weight_type)
    channel = _as_bool(per_channel, "per_channel")
    reduced = _as_bool(reduce_range, "reduce_range")
    floor = _as_fraction(min_agreement, "min_agreement")
    quantized = _quantize(onnx_bytes, wtype, per_channel=channel, reduce_range=reduced)
    weights = _quantized_weight_count(onnx_bytes, quantized)
    if weights == 0:
        raise PackagingError(
            "quantize int8: no weight in this model can be quantized (onnxruntime quantizes MatMul, Gemm, Conv,"
            f" LSTM, Attention, ... weights; this graph has {', '.join(_op_types(onnx_bytes))}). Package it"
            " without quantization",
            field="quantize",
        )
    _refuse_unsafe(quantized)
    as_classifier = classifier is not False or labels is not None
    fp32 = run_onnx(onnx_bytes, sample_feeds)
    got = run_onnx(quantized, sample_feeds)
    vs_onnx = _agreement(fp32, got, classifier=as_classifier)
    vs_native = _agreement(native_outputs, got, classifier=as_classifier) if native_outputs is not None else None
    for reference, found in (("float ONNX model", vs_onnx), ("native model", vs_native)):
        if found is not None and found.value < floor:
            raise ParityError(_refusal(found, reference, floor), field="min_agreement")
    report = CompressionReport(
        weight_type=wtype,
        per_channel=channel,
        reduce_range=reduced,
        size_before=len(onnx_bytes),
        size_after=len(quantized),
        quantized_weights=weights,
        samples=_rows(sample_feeds),
        max_abs_diff_onnx=_max_abs(fp32, got),
        max_abs_diff_native=_max_abs(native_outputs, got) if native_outputs is not None else None,
        label_agreement_onnx=vs_onnx.value if vs_onnx else None,
        label_agreement_native=vs_native.value if vs_native else None,
        compared_outputs=sorted({*(vs_onnx.compared if vs_onnx else ()), *(vs_native.compared if vs_native else ())}),
        min_agreement=floor,
    )
    return CompressionResult(onnx_bytes=quantized, report=report)


def _quantize(onnx_bytes: bytes, weight_type: str, *, per_channel: bool, reduce_range: bool) -> bytes:
    """Pre-process (shape inference + basic fusions) then ``quantize_dynamic``, in a private temp dir."""
    import_extra("onnx", extra="onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from modelfn.onnx_optimize import drop_unused_opsets

    qtype = QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8
    with tempfile.TemporaryDirectory(prefix="modelfn-quant-") as tmp:
        source, prepared, target = Path(tmp, "model.onnx"), Path(tmp, "prepared.onnx"), Path(tmp, "int8.onnx")
        source.write_bytes(onnx_bytes)
        chosen = source
        # Symbolic shape inference helps transformer graphs but gives up on ai.onnx.ml nodes; then try without it.
        for skip_symbolic in (False, True):
            try:
                quant_pre_process(source, prepared, skip_symbolic_shape=skip_symbolic)
            except Exception:  # pre-processing is an optimization: quantizing the raw model is still valid
                continue
            chosen = prepared
            break
        try:
            with _quiet_quantizer_hint():
                quantize_dynamic(chosen, target, weight_type=qtype, per_channel=per_channel, reduce_range=reduce_range)
        except Exception as exc:  # the quantizer raises plain Exception/ValueError/RuntimeError
            raise PackagingError(f"quantize int8: onnxruntime cannot quantize the model: {exc}") from exc
        return drop_unused_opsets(target.read_bytes())


class _DropQuantizerHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _QUANT_HINT not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer_hint() -> Iterator[None]:
    """Drop the quantizer's root-logger hint without letting ``logging.warning`` configure the root logger."""
    root = logging.getLogger()
    drop = _DropQuantizerHint()
    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder is not None:
        root.addHandler(placeholder)
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        if placeholder is not None:
            root.removeHandler(placeholder)


def _quantized_weight_count(before: bytes, after: bytes) -> int:
    """Float initializers the quantizer replaced by 8-bit copies (it removes the originals)."""
    import onnx

    def floats(data: bytes) -> set[str]:
        graph = onnx.load_model_from_string(data).graph
        kinds = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)
        return {t.name for t in graph.initializer if t.data_type in kinds}

    return len(floats(before) - floats(after))


def _op_types(data: bytes) -> list[str]:
    import onnx

    return sorted({n.op_type for n in onnx.load_model_from_string(data).graph.node})


def _refuse_unsafe(data: bytes) -> None:
    """The compressed artifact passes the run-time guard (no external data, a real graph)."""
    from modelfn.errors import UnsafeBundleError
    from modelfn.runtime.onnx_guard import inspect_onnx, refuse_external_data

    try:
        refuse_external_data(inspect_onnx(data, artifact="model.onnx"), artifact="model.onnx")
    except UnsafeBundleError as exc:
        raise PackagingError(f"quantize int8 produced an unsafe artifact: {exc.message}") from exc


def _agreement(reference: Mapping[str, Any], got: Mapping[str, Array], *, classifier: bool) -> _Agreement | None:
    """Lowest row agreement over the label-like outputs (labels, or argmax of class scores); None if none."""
    import numpy as np

    worst: _Agreement | None = None
    compared: list[str] = []
    for name, value in reference.items():
        if name not in got:
            raise PackagingError(f"native output {name!r} is not an output of the ONNX model", field=name)
        quant = np.asarray(got[name])
        want = _aligned(np.asarray(value), quant)
        if want is None or want.size == 0:
            continue
        if want.dtype.kind not in "fc" and quant.dtype.kind not in "fc":
            rows_want, rows_got = want.reshape(len(want), -1), quant.reshape(len(quant), -1)
        elif classifier and quant.ndim == 2 and quant.shape[1] > 1:
            rows_want, rows_got = want.argmax(axis=1)[:, None], quant.argmax(axis=1)[:, None]
        else:
            continue
        compared.append(name)
        same = np.asarray(rows_want == rows_got, dtype=bool).all(axis=1)
        bad = np.flatnonzero(~same)
        row = int(bad[0]) if bad.size else None
        found = _Agreement(
            value=float(same.mean()),
            output=name,
            row=row,
            want=None if row is None else rows_want[row].tolist(),
            got=None if row is None else rows_got[row].tolist(),
        )
        if worst is None or found.value < worst.value:
            worst = found
    return dataclasses.replace(worst, compared=tuple(compared)) if worst is not None else None


def _max_abs(reference: Mapping[str, Any], got: Mapping[str, Array]) -> float:
    """Largest |compressed - reference| over the float outputs both sides share."""
    import numpy as np

    largest = 0.0
    for name, value in reference.items():
        quant = np.asarray(got.get(name))
        want = _aligned(np.asarray(value), quant)
        if want is None or want.size == 0 or want.dtype.kind not in "fc" or quant.dtype.kind not in "fc":
            continue
        largest = max(largest, float(np.max(np.abs(want.astype(np.float64) - quant.astype(np.float64)))))
    return largest


def _aligned(want: Array, got: Array) -> Array | None:
    """Native outputs may drop a unit dimension (``(n,)`` vs ``(n, 1)``): same size, same values."""
    if want.shape == got.shape:
        return want
    return want.reshape(got.shape) if want.size == got.size else None


def _refusal(found: _Agreement, reference: str, floor: float) -> str:
    return (
        f"quantize int8: the predicted class changes on {1 - found.value:.1%} of the sample rows vs the {reference}"
        f" (agreement {found.value:.4f} < min_agreement {floor:g}); first at row {found.row} of output"
        f" {found.output!r}: {reference} {found.want}, int8 {found.got}. Try weight_type='uint8',"
        " reduce_range=True or per_channel=True, package without quantization, or lower min_agreement if that"
        f" loss is acceptable (or if {found.output!r} is not class scores, e.g. a multi-output regression)"
    )


def _rows(feeds: Mapping[str, Array]) -> int:
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _weight_type(value: str) -> Literal["int8", "uint8"]:
    normal = str(value).strip().lower().removeprefix("q")
    if normal == "int8":
        return "int8"
    if normal == "uint8":
        return "uint8"
    raise PackagingError(f"weight_type must be one of {', '.join(WEIGHT_TYPES)}, got {value!r}", field="weight_type")


def _as_bool(value: bool | str, option: str) -> bool:
    if isinstance(value, bool):
        return value
    normal = str(value).strip().lower()
    if normal in ("1", "true", "yes", "on"):
        return True
    if normal in ("0", "false", "no", "off", ""):
        return False
    raise PackagingError(f"{option} must be true or false, got {value!r}", field=option)


def _as_fraction(value: float | str, option: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise PackagingError(f"{option} must be a number between 0 and 1, got {value!r}", field=option) from exc
    if not 0.0 <= number <= 1.0:
        raise PackagingError(f"{option} must be between 0 and 1, got {number:g}", field=option)
    return number
