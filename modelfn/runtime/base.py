"""What serving needs from a loaded model, whatever runs it (onnxruntime, custom Python code).

One small Protocol so the front doors (HTTP, storage events) never care which runtime the
manifest chose, and one input check shared by every runtime so a request is judged against the
signed schema the same way everywhere (4xx naming the field).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from modelfn.errors import UnprocessableInput

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest, TensorSpec


class Model(Protocol):
    """A verified, ready-to-run model: what ``LoadedBundle.model`` holds."""

    @property
    def manifest(self) -> Manifest:
        """The signed manifest describing inputs, outputs and labels."""
        ...

    @property
    def output_names(self) -> list[str]:
        """Every output this model can return, in order."""
        ...

    def predict(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        """Validate ``feeds`` against the schema and run; every (or the requested) output by name."""
        ...

    def warm_up(self) -> None:
        """One run before the first request, so it is not the one paying for lazy initialisation."""
        ...


def validate_feeds(feeds: Mapping[str, Any], specs: Mapping[str, TensorSpec]) -> dict[str, npt.NDArray[Any]]:
    """Names, dtypes and shapes checked against the schema (safe numeric casts applied); 422 on mismatch."""
    import numpy as np

    unknown = feeds.keys() - specs.keys()
    if unknown:
        first = sorted(unknown)[0]
        raise UnprocessableInput(f"unknown input {first!r}; this model takes {sorted(specs)}", field=first)
    out: dict[str, npt.NDArray[Any]] = {}
    for name, spec in specs.items():
        if name not in feeds:
            raise UnprocessableInput(f"missing input {name!r}", field=name)
        out[name] = conform(np.asarray(feeds[name]) if spec.dtype != "string" else feeds[name], spec)
    return out


def check_output_names(wanted: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The requested outputs (all when none asked), each one the model has; 422 naming an unknown one."""
    names = list(wanted) if wanted else list(available)
    for name in names:
        if name not in available:
            raise UnprocessableInput(f"unknown output {name!r}; outputs are {list(available)}", field=name)
    return names


_DTYPES: dict[str, Any] = {}


def numpy_dtype(name: str) -> Any:
    """The numpy dtype of a manifest dtype name (strings as object arrays); built once per name."""
    found = _DTYPES.get(name)
    if found is None:
        import numpy as np

        found = _DTYPES[name] = np.dtype(object) if name == "string" else np.dtype(name)
    return found


def conform(array: np.ndarray[Any, Any], spec: TensorSpec) -> np.ndarray[Any, Any]:
    """``array`` cast to the spec's dtype when that is safe, with a fitting shape; 422 naming the input otherwise."""
    import numpy as np

    target = numpy_dtype(spec.dtype)
    if spec.dtype == "string":
        array = _strings(array, spec.name)
    elif array.dtype != target:
        same_kind = np.can_cast(array.dtype, target, casting="same_kind")
        int_to_number = array.dtype.kind in "iub" and target.kind in "iuf"
        if not (same_kind or int_to_number) or array.dtype.kind == "O":
            raise UnprocessableInput(
                f"input {spec.name!r} has dtype {array.dtype}, expected {spec.dtype}", field=spec.name
            )
        array = fitting_cast(array, target, spec.name)
    if len(spec.shape) == 2 and spec.shape[1] == 1 and array.ndim == 1:
        array = array.reshape(-1, 1)  # a column for a [?, 1] input (Spark bundles): 1-D, or one scalar per row
    if not spec.is_compatible(array.shape):
        shown = ["?" if d == -1 else d for d in spec.shape]
        raise UnprocessableInput(
            f"input {spec.name!r} has shape {list(array.shape)}, expected {shown}", field=spec.name
        )
    return array


def _strings(array: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    """A string input takes text only: numbers or booleans are refused, never turned into their text."""

    if array.dtype.kind == "U":
        return array.astype(object)
    if array.dtype.kind != "O" or (array.size and not all(isinstance(v, str) for v in array.reshape(-1).tolist())):
        raise UnprocessableInput(f"input {name!r} must hold strings, got {array.dtype} values", field=name)
    return array


def fitting_cast(array: np.ndarray[Any, Any], target: np.dtype[Any], name: str) -> np.ndarray[Any, Any]:
    """``array`` as ``target`` unless a value does not fit: no silent wrap (300 -> int8 44) nor overflow to inf."""
    import numpy as np

    if array.size and target.kind in "iu" and array.dtype.kind in "iub":
        info = np.iinfo(target)
        if int(array.min()) < info.min or int(array.max()) > info.max:
            raise UnprocessableInput(
                f"input {name!r} has values outside the {target.name} range [{info.min}, {info.max}]", field=name
            )
        return array.astype(target)
    if target.kind == "f" and array.dtype.kind == "f":  # a finite value that overflows sets the FP flag; inf does not
        try:
            with np.errstate(over="raise"):
                return array.astype(target)
        except FloatingPointError:
            raise _out_of_float_range(name, target) from None
    with np.errstate(over="ignore"):
        cast = array.astype(target)
    if (
        target.kind == "f"
        and array.size
        and not np.isfinite(cast).all()
        and (np.isinf(cast) & np.isfinite(array)).any()
    ):
        raise _out_of_float_range(name, target)
    return cast


def _out_of_float_range(name: str, target: np.dtype[Any]) -> UnprocessableInput:
    import numpy as np

    return UnprocessableInput(
        f"input {name!r} has values outside the {target.name} range (±{float(np.finfo(target).max):.6g})", field=name
    )
