"""Tensor codecs: JSON and V2 binary bytes in, numpy arrays out, and back.

Every decode error is a 4xx naming the tensor (``field``): malformed structure is 400, data that
does not fit the declared datatype or shape is 422. Sizes are checked with Python integers
before any allocation, so a hostile ``shape`` cannot make the process allocate gigabytes.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, UnprocessableInput
from modelfn.runtime.base import fitting_cast
from modelfn.serving.typed_json import DecodedData, TensorRows

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Array = npt.NDArray[Any]

MAX_RANK = 32

# Open Inference Protocol V2 datatypes -> numpy dtype names ("object" holds BYTES as str)
V2_TO_NUMPY: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
# manifest / numpy dtype names -> V2 datatypes
NUMPY_TO_V2: dict[str, str] = {v: k for k, v in V2_TO_NUMPY.items()} | {"string": "BYTES", "bfloat16": "BF16"}

_V2_OF: dict[Any, str] = {}
"""``v2_datatype`` by numeric dtype or manifest name: a handful of entries, one per dtype the models use."""

# which JSON-decoded numpy kinds may become which target kinds without losing meaning
_ACCEPTED_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf", "O": "U"}


def loads(data: bytes | memoryview, *, field: str = "body") -> Any:
    """Parse JSON; malformed → 400 naming ``field``."""
    import orjson

    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{field} is not valid JSON: {exc.msg} at position {exc.pos}", field=field) from exc


def v2_datatype(dtype: Any) -> str:
    """The V2 datatype for a numpy dtype or manifest dtype name (cached: numpy's ``dtype.name`` takes ~2 µs)."""
    found = _V2_OF.get(dtype)
    if found is None:
        if not isinstance(dtype, str) and dtype.kind in "OUS":
            return NUMPY_TO_V2["object"]  # text of any length: not cached, so the table stays small
        name = dtype if isinstance(dtype, str) else dtype.name
        found = _V2_OF[dtype] = NUMPY_TO_V2.get(name, name.upper())
    return found


def numpy_dtype(datatype: Any, *, field: str) -> np.dtype[Any]:
    """The numpy dtype for a V2 datatype; unknown → 400 listing the valid ones."""
    import numpy as np

    if not isinstance(datatype, str) or datatype not in V2_TO_NUMPY:
        raise InvalidRequest(
            f"tensor {field!r} has datatype {datatype!r}; supported: {', '.join(V2_TO_NUMPY)}", field=field
        )
    return np.dtype(V2_TO_NUMPY[datatype])


def check_shape(shape: Any, *, field: str) -> tuple[int, ...]:
    """A V2 shape: a list of non-negative integers of bounded rank."""
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_RANK
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InvalidRequest(f"tensor {field!r} shape must be a list of non-negative integers", field=field)
    return tuple(shape)


def decode_json_data(data: Any, datatype: str, shape: tuple[int, ...], *, field: str) -> Array:
    """Flat or nested JSON ``data`` → array of ``shape``; the element count must match exactly."""
    import numpy as np

    target = numpy_dtype(datatype, field=field)
    expected = math.prod(shape)
    if datatype == "BYTES":
        return _json_strings(data, shape, expected, field=field)
    if isinstance(data, DecodedData) and data.datatype == datatype:
        array = data.array  # decoded by typed_json straight into the datatype, with this path's values
    else:
        try:
            array = np.asarray(data if isinstance(data, list) else [data])
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise UnprocessableInput(f"tensor {field!r} data is ragged or not {datatype}", field=field) from exc
    if expected == 0 or array.size == 0:
        if array.size != expected:
            raise UnprocessableInput(
                f"tensor {field!r} has {array.size} elements but shape {list(shape)} needs {expected}", field=field
            )
        return np.empty(shape, dtype=target)
    array = _checked_cast(array, target, datatype, field=field)
    if array.size != expected:
        raise UnprocessableInput(
            f"tensor {field!r} has {array.size} elements but shape {list(shape)} needs {expected}", field=field
        )
    return array.reshape(shape)


def _json_strings(data: Any, shape: tuple[int, ...], expected: int, *, field: str) -> Array:
    """BYTES as JSON: strings kept exactly as sent (an object array: numpy's ``str`` arrays drop trailing NULs)."""
    import numpy as np

    items = flat_items(data if isinstance(data, list) else [data], field=field)
    if not all(isinstance(item, str) for item in items):
        raise UnprocessableInput(f"tensor {field!r} data is not BYTES: every element must be a string", field=field)
    if len(items) != expected:
        raise UnprocessableInput(
            f"tensor {field!r} has {len(items)} elements but shape {list(shape)} needs {expected}", field=field
        )
    array = np.empty(expected, dtype=object)
    array[:] = items
    return array.reshape(shape)


def flat_items(data: list[Any], *, field: str) -> list[Any]:
    """Nested JSON lists flattened in row-major order (V2 allows flat or nested data)."""
    out: list[Any] = []
    stack: list[tuple[list[Any], int]] = [(data, 0)]
    while stack:
        items, at = stack.pop()
        for index in range(at, len(items)):
            item = items[index]
            if isinstance(item, list):
                if len(stack) >= MAX_RANK:
                    raise UnprocessableInput(f"tensor {field!r} data is nested too deeply", field=field)
                stack.append((items, index + 1))
                stack.append((item, 0))
                break
            out.append(item)
    return out


def decode_binary_data(raw: memoryview, datatype: str, shape: tuple[int, ...], *, field: str) -> Array:
    """Little-endian raw bytes (BYTES: 4-byte length-prefixed items) → array of ``shape``."""
    import numpy as np

    target = numpy_dtype(datatype, field=field)
    expected = math.prod(shape)
    if datatype == "BYTES":
        return np.array(deserialize_bytes(raw, expected, field=field), dtype=object).reshape(shape)
    if len(raw) != expected * target.itemsize:
        raise UnprocessableInput(
            f"tensor {field!r} has {len(raw)} bytes but {datatype} shape {list(shape)} needs "
            f"{expected * target.itemsize}",
            field=field,
        )
    array = np.frombuffer(raw, dtype=target.newbyteorder("<")).reshape(shape)
    if not array.flags.aligned or array.dtype.byteorder == ">":
        array = array.astype(target)
    return array


def deserialize_bytes(raw: memoryview, count: int, *, field: str) -> list[str]:
    """Triton's BYTES wire format: per element a little-endian uint32 length then the bytes (UTF-8 here)."""
    try:
        return [item.decode() for item in deserialize_raw_bytes(raw, count, field=field)]
    except UnicodeDecodeError as exc:
        raise UnprocessableInput(f"tensor {field!r} BYTES element is not UTF-8 text", field=field) from exc


def deserialize_raw_bytes(raw: memoryview, count: int, *, field: str) -> list[bytes]:
    """The BYTES wire format's elements as bytes (encoded images are not text)."""
    items: list[bytes] = []
    offset = 0
    try:
        while offset < len(raw):
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise UnprocessableInput(f"tensor {field!r} BYTES element overruns the data", field=field)
            items.append(bytes(raw[offset : offset + length]))
            offset += length
    except struct.error as exc:
        raise UnprocessableInput(f"tensor {field!r} BYTES data is truncated", field=field) from exc
    if len(items) != count:
        raise UnprocessableInput(f"tensor {field!r} has {len(items)} BYTES elements, shape needs {count}", field=field)
    return items


def serialize_bytes(array: Array) -> bytes:
    """The inverse of ``deserialize_bytes``."""
    parts: list[bytes] = []
    for item in array.reshape(-1).tolist():
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def encode_binary(array: Array) -> bytes:
    """Raw little-endian bytes of an output tensor (BYTES length-prefixed)."""
    import numpy as np

    if array.dtype.kind in "OUS":
        return serialize_bytes(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def json_data(array: Array, *, flat: bool = True) -> Any:
    """Output tensor data in a form orjson serializes: a (flattened) array, or a list for text."""
    import numpy as np

    if array.dtype.kind in "OUS":
        items = array.reshape(-1).tolist() if flat else array.tolist()
        return _text_items(items) if isinstance(items, list) else items
    if array.ndim == 0 and not flat:
        return array.item()
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array.reshape(-1) if flat else array)


def as_input(value: Any, dtype: str, *, field: str) -> Array:
    """A JSON value for a /predict input, as an array of the manifest ``dtype`` family (string → object)."""
    import numpy as np

    if isinstance(value, TensorRows) and value.dtype == dtype:
        return value.array  # decoded by typed_json straight into the input's dtype
    try:
        if dtype == "string":
            array = np.asarray(value, dtype=object)
            if array.size and not all(isinstance(v, str) for v in array.reshape(-1).tolist()):
                raise UnprocessableInput(f"input {field!r} must hold strings", field=field)
            return array
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise UnprocessableInput(f"input {field!r} is ragged or not {dtype}", field=field) from exc


def _checked_cast(array: Array, target: np.dtype[Any], datatype: str, *, field: str) -> Array:
    """Cast JSON-decoded data to ``target`` only when no value changes meaning (no 1.5 → 1, no 300 → uint8 44)."""
    accepted = _ACCEPTED_KINDS.get(target.kind, target.kind)
    if array.dtype.kind not in accepted:
        raise UnprocessableInput(f"tensor {field!r} data is not {datatype}", field=field)
    if target.kind == "O":
        return array.astype(object)
    if target.kind in "iuf" and array.dtype != target:
        return fitting_cast(array, target, field)  # 422 for 300 as INT8 or 70000 as FP16, never a wrap or inf
    return array.astype(target, copy=False)


def _text_items(items: list[Any]) -> list[Any]:
    return [i.decode(errors="replace") if isinstance(i, bytes) else i for i in items]
