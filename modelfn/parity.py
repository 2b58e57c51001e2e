"""Prove the converted model answers like the native one before it becomes a bundle.

The sample runs through onnxruntime (the same engine the run time uses) and through the
framework's own predict; float outputs must agree within ``np.allclose`` tolerances, label-like
outputs (integers, strings, booleans) must be equal. The report lands in the manifest; a failure
names the worst element so a conversion bug is easy to find.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelfn.bundle.manifest import ParityReport
from modelfn.errors import PackagingError, ParityError

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import TensorSpec

    Array = npt.NDArray[Any]

DEFAULT_ATOL = 1e-4
DEFAULT_MIN_AGREEMENT = 0.99
"""Quantization: the lowest label agreement on the sample that packaging accepts."""
DEFAULT_RTOL = 1e-3
SYNTHETIC_BATCH = 2
"""Rows in a synthesized sample: more than one, so batching is exercised."""


@dataclasses.dataclass(frozen=True)
class _Worst:
    output: str
    index: tuple[int, ...]
    native: Any
    onnx: Any
    excess: float
    """How far past tolerance (diff / allowed); ``inf`` for a label mismatch."""
    label: bool = False


def check_parity(
    onnx_bytes: bytes,
    native: Mapping[str, Any],
    feeds: Mapping[str, Array],
    *,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    classifier: bool = False,
    data_files: Mapping[str, bytes] | None = None,
) -> ParityReport:
    """Run ``feeds`` through onnxruntime and compare with ``native``; raise ``ParityError`` beyond tolerance."""
    onnx = run_onnx(onnx_bytes, feeds, data_files=data_files)
    return compare(native, onnx, atol=atol, rtol=rtol, samples=_rows(feeds), classifier=classifier)


def run_onnx(
    onnx_bytes: bytes, feeds: Mapping[str, Array], *, data_files: Mapping[str, bytes] | None = None
) -> dict[str, Array]:
    """Every output of the model on ``feeds``, by name, on the CPU provider (external data from memory)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if data_files:
        names = sorted(data_files)
        buffers = [memoryview(data_files[n]) for n in names]
        options.add_external_initializers_from_files_in_memory(names, buffers, [len(b) for b in buffers])
    try:
        session = ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        results = session.run(names, dict(feeds))
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise PackagingError(f"onnxruntime cannot run the exported model on the sample: {exc}") from exc
    return dict(zip(names, results, strict=True))


def compare(
    native: Mapping[str, Any],
    onnx: Mapping[str, Array],
    *,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    samples: int = 1,
    classifier: bool = False,
) -> ParityReport:
    """Compare the outputs ``native`` names with the same-named ONNX outputs (``np.allclose`` semantics).

    Label agreement covers integer/string outputs; for a ``classifier`` whose only outputs are
    ``[N, classes]`` scores, it is the top-1 (argmax) agreement, recorded but judged by the tolerances.
    """
    import numpy as np

    per_output: dict[str, float] = {}
    max_abs, max_rel = 0.0, 0.0
    agreements: list[float] = []
    worst: _Worst | None = None
    for name, value in native.items():
        if name not in onnx:
            raise PackagingError(
                f"native output {name!r} is not an output of the ONNX model; its outputs are {sorted(onnx)}",
                field=name,
            )
        got = np.asarray(onnx[name])
        want = _align(name, np.asarray(value), got)
        if want.size == 0:
            continue
        if want.dtype.kind in "fc" or got.dtype.kind in "fc":
            abs_diff, rel_diff, candidate = _numeric(name, want, got, atol=atol, rtol=rtol)
            per_output[name] = abs_diff
            max_abs, max_rel = max(max_abs, abs_diff), max(max_rel, rel_diff)
        else:
            agreement, candidate = _labels(name, want, got)
            agreements.append(agreement)
        if candidate is not None and (worst is None or candidate.excess > worst.excess):
            worst = candidate
    if worst is not None:
        raise ParityError(_describe(worst, atol=atol, rtol=rtol, max_abs=max_abs), field=worst.output)
    if classifier and not agreements:
        agreements = _top1_agreements(native, onnx)
    return ParityReport(
        samples=samples,
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        atol=atol,
        rtol=rtol,
        label_agreement=min(agreements) if agreements else None,
        outputs=per_output,
    )


def _top1_agreements(native: Mapping[str, Any], onnx: Mapping[str, Array]) -> list[float]:
    """Argmax agreement of every ``[N, classes]`` float output (class scores or probabilities)."""
    import numpy as np

    found = []
    for name, value in native.items():
        got = np.asarray(onnx[name])
        want = np.asarray(value).reshape(got.shape) if np.asarray(value).size == got.size else None
        if want is not None and got.ndim == 2 and got.shape[1] > 1 and got.dtype.kind == "f":
            found.append(float(np.mean(want.argmax(axis=1) == got.argmax(axis=1))))
    return found


def to_feeds(sample: Any, inputs: Sequence[TensorSpec]) -> dict[str, Array]:
    """Turn a sample (one array, or arrays by name) into feeds that fit the schema's names and dtypes."""
    import numpy as np

    names = [s.name for s in inputs]
    if isinstance(sample, Mapping):
        if sorted(sample) != sorted(names):
            raise PackagingError(
                f"sample inputs {sorted(sample)} do not match the model inputs {names}", field="sample"
            )
        raw = dict(sample)
    elif len(inputs) == 1:
        raw = {names[0]: sample}
    elif isinstance(sample, tuple | list) and len(sample) == len(inputs):
        raw = dict(zip(names, sample, strict=True))  # positional, in the model's input order
    else:
        raise PackagingError(
            f"the model takes {len(inputs)} inputs {names}: pass the sample as a dict by name or a tuple in that order",
            field="sample",
        )
    feeds: dict[str, Array] = {}
    for spec in inputs:
        array = np.asarray(raw[spec.name], dtype=object if spec.dtype == "string" else None)
        if spec.dtype != "string" and array.dtype != np.dtype(spec.dtype):
            array = array.astype(spec.dtype)
        if not spec.is_compatible(array.shape):
            raise PackagingError(
                f"sample {spec.name!r} has shape {list(array.shape)}, the model expects {spec.shape} (-1 = any)",
                field=spec.name,
            )
        feeds[spec.name] = array
    return feeds


def synthesize_sample(inputs: Sequence[TensorSpec], *, seed: int = 0) -> dict[str, Array]:
    """A small deterministic sample from the schema: dynamic batch = 2, other dynamic dims = 1."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sample: dict[str, Array] = {}
    for spec in inputs:
        if spec.dtype == "string":
            raise PackagingError(f"cannot synthesize string input {spec.name!r}; pass a sample", field=spec.name)
        shape = [d if d > 0 else (SYNTHETIC_BATCH if i == 0 else 1) for i, d in enumerate(spec.shape)]
        dtype = np.dtype(spec.dtype)
        sample[spec.name] = rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else np.zeros(shape, dtype)
    return sample


def _rows(feeds: Mapping[str, Array]) -> int:
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _align(name: str, want: Array, got: Array) -> Array:
    """Native frameworks often drop a trailing unit dim (``(n,)`` vs ``(n, 1)``); same size means same values."""
    if want.shape == got.shape:
        return want
    if want.size == got.size:
        return want.reshape(got.shape)
    raise ParityError(f"output {name!r}: native shape {list(want.shape)} vs ONNX shape {list(got.shape)}", field=name)


def _numeric(name: str, want: Array, got: Array, *, atol: float, rtol: float) -> tuple[float, float, _Worst | None]:
    import numpy as np

    try:
        w, g = want.astype(np.float64), got.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ParityError(f"output {name!r}: native dtype {want.dtype} vs ONNX dtype {got.dtype}", field=name) from exc
    with np.errstate(invalid="ignore"):
        same = (w == g) | (np.isnan(w) & np.isnan(g))  # equal infinities and shared NaNs agree
        diff = np.where(same, 0.0, np.abs(g - w))
    diff = np.where(np.isnan(diff), np.inf, diff)
    magnitude = np.where(np.isfinite(w), np.abs(w), 0.0)
    rel = np.divide(diff, magnitude, out=np.zeros_like(diff), where=magnitude > 0)
    allowed = atol + rtol * magnitude
    excess = np.divide(diff, allowed, out=np.where(diff > 0, np.inf, 0.0), where=allowed > 0)
    worst = None
    if bool(np.any(diff > allowed)):
        unbounded = np.isinf(excess)
        flat = int(np.argmax(np.where(unbounded, diff, -1.0))) if unbounded.any() else int(np.argmax(excess))
        index = tuple(int(i) for i in np.unravel_index(flat, w.shape))
        worst = _Worst(name, index, _scalar(want[index]), _scalar(got[index]), float(excess.flat[flat]))
    return float(diff.max()), float(rel.max()), worst


def _labels(name: str, want: Array, got: Array) -> tuple[float, _Worst | None]:
    import numpy as np

    equal = np.asarray(want == got, dtype=bool).reshape(want.shape)
    rows = equal.reshape(len(equal), -1).all(axis=1) if equal.ndim else equal.reshape(1)
    agreement = float(rows.mean())
    if bool(equal.all()):
        return agreement, None
    index = tuple(int(i) for i in np.argwhere(~equal)[0])
    return agreement, _Worst(name, index, _scalar(want[index]), _scalar(got[index]), float("inf"), label=True)


def _scalar(value: Any) -> Any:
    """A plain Python value for messages (object arrays already hold Python objects)."""
    return value.item() if hasattr(value, "item") else value


def _describe(worst: _Worst, *, atol: float, rtol: float, max_abs: float) -> str:
    where = f"output {worst.output!r} at index {list(worst.index)}: native {worst.native!r}, onnx {worst.onnx!r}"
    if worst.label:
        return f"parity check failed: labels differ at {where}"
    return (
        f"parity check failed: {where} (allowed |onnx - native| <= atol {atol:g} + rtol {rtol:g} * |native|;"
        f" max abs diff {max_abs:.3g})"
    )
