"""Float tensors in JSON requests decoded straight to arrays, with exactly the general path's result.

The general path parses with ``orjson`` into Python objects, lets numpy discover dtype and shape
from them (``np.asarray``: float64) and then casts to the input's dtype: for a 3×224×224 image that
is ~1.5× the parse alone. Here a large request is decoded by a msgspec decoder typed for the common
request shape (tensor data as JSON numbers only, so strings, nulls, booleans and objects are refused
while parsing; at these sizes the parse itself is faster than orjson's, see ``MIN_BODY_BYTES``), then
numpy builds the array in the tensor's float dtype at once. Whenever the typed decoder refuses the
body, or an array holds a value whose float form could differ from the general path's (non-finite;
magnitude ≥ 2**53, where an integer's float32 could round differently), the caller parses the body
the general way, so answers and errors stay exactly as they were.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest

EXACT_LIMIT = 2.0**53
"""Below this magnitude an integer is exact as a float64, so its float32/16 is what a direct cast gives."""
FLOAT_TYPES = {"FP16": "float16", "FP32": "float32", "FP64": "float64"}
MIN_BODY_BYTES = 11 << 18
"""Smaller bodies (under 2.75 MiB) take the general path. Measured with CPython 3.11 and glibc's default
malloc settings, the typed decode is 10-20 % slower than orjson + numpy up to 2.75 MB. Above ~2.8 MB,
orjson's parse page-faults its working memory back in on every call (~1,500 faults at 2.9 MB against
~130 at 2.7 MB; msgspec ~180), and the typed decode is 10-20 % faster."""
MAX_RANK = 32

Dim = Annotated[int, msgspec.Meta(ge=0, le=2**62)]
Unset = msgspec.UnsetType


class TensorRows(list[Any]):
    """A /predict tensor value as decoded (a list, which the request checks read) with its array."""

    __slots__ = ("array", "dtype")

    def __init__(self, rows: list[Any], array: npt.NDArray[Any], dtype: str) -> None:
        super().__init__(rows)
        self.array = array
        self.dtype = dtype


class DecodedData:
    """A tensor's JSON ``data`` already decoded to an array (what ``codecs.decode_json_data`` takes as is)."""

    __slots__ = ("array", "datatype")

    def __init__(self, array: npt.NDArray[Any], datatype: str) -> None:
        self.array = array
        self.datatype = datatype


class _V2Tensor(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    shape: list[Dim]
    datatype: Literal["FP16", "FP32", "FP64"]
    data: list[float]
    parameters: dict[str, str | bool] | Unset = msgspec.UNSET


class _V2Output(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    parameters: dict[str, str | bool] | Unset = msgspec.UNSET


class _V2Request(msgspec.Struct, forbid_unknown_fields=True):
    inputs: list[_V2Tensor]
    id: str | Unset = msgspec.UNSET
    parameters: dict[str, str | bool] | Unset = msgspec.UNSET
    outputs: list[_V2Output] | Unset = msgspec.UNSET


@functools.cache
def _v2_decoder() -> msgspec.json.Decoder[_V2Request]:
    return msgspec.json.Decoder(_V2Request)


def v2_request(body: bytes | memoryview) -> dict[str, Any] | None:
    """A V2 JSON inference request with flat FP16/32/64 ``data``, each as ``DecodedData``; None otherwise.

    The dict has the keys and values ``orjson.loads`` gives, except each input's ``data``.
    """
    if len(body) < MIN_BODY_BYTES:
        return None
    try:
        decoded = _v2_decoder().decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    inputs: list[dict[str, Any]] = []
    for tensor in decoded.inputs:
        array = float_array(tensor.data, FLOAT_TYPES[tensor.datatype])
        if array is None:
            return None
        item: dict[str, Any] = {"name": tensor.name, "shape": tensor.shape, "datatype": tensor.datatype}
        item["data"] = DecodedData(array, tensor.datatype)
        if tensor.parameters is not msgspec.UNSET:
            item["parameters"] = tensor.parameters
        inputs.append(item)
    request: dict[str, Any] = {"inputs": inputs}
    if decoded.id is not msgspec.UNSET:
        request["id"] = decoded.id
    if decoded.parameters is not msgspec.UNSET:
        request["parameters"] = decoded.parameters
    if decoded.outputs is not msgspec.UNSET:
        request["outputs"] = [_output(out) for out in decoded.outputs]
    return request


def _output(out: _V2Output) -> dict[str, Any]:
    found: dict[str, Any] = {"name": out.name}
    if out.parameters is not msgspec.UNSET:
        found["parameters"] = out.parameters
    return found


def float_array(values: Any, dtype: str) -> np.ndarray[Any, Any] | None:
    """Python floats (nested lists of one rank) as an array of float ``dtype``; None where the general
    path could differ (ragged lists, a non-finite result, a magnitude ≥ 2**53)."""
    import numpy as np

    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(values, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        return None
    if array.size and not (-EXACT_LIMIT < float(array.min()) and float(array.max()) < EXACT_LIMIT):  # NaN, inf too
        return None
    return array


def predict_request(body: bytes, manifest: Manifest) -> dict[str, Any] | None:
    """A ``/predict`` JSON body for a bundle whose one input is a float tensor (no image or records
    processing), with the tensor as ``TensorRows``; None when the general path must decode it.

    The dict has the keys and values ``orjson.loads`` gives (``codecs.as_input`` takes the array).
    """
    processing = manifest.processing
    if len(body) < MIN_BODY_BYTES or len(manifest.inputs) != 1:
        return None
    if processing is not None and (processing.image is not None or processing.records is not None):
        return None
    spec = manifest.inputs[0]
    if spec.dtype not in FLOAT_TYPES.values() or not 0 < len(spec.shape) <= MAX_RANK:
        return None
    try:
        decoded = _predict_decoder(len(spec.shape)).decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    request: dict[str, Any] = {}
    for key in decoded.__struct_fields__:
        value = getattr(decoded, key)
        if value is msgspec.UNSET:
            continue
        if key == "instances" or (key == "inputs" and isinstance(value, list)):
            value = _rows(value, spec.dtype)
        elif key == "inputs":
            value = {name: _rows(item, spec.dtype) for name, item in value.items()}
            if any(item is None for item in value.values()):
                return None
        if value is None:
            return None
        request[key] = value
    return request


def _rows(value: list[Any], dtype: str) -> TensorRows | None:
    array = float_array(value, dtype)
    return None if array is None else TensorRows(value, array, dtype)


@functools.lru_cache(maxsize=MAX_RANK)
def _predict_decoder(rank: int) -> msgspec.json.Decoder[Any]:
    """``{"instances" | "inputs": tensor, "return_labels"?, "signature_name"?}``, the tensor ``rank`` lists deep."""
    tensor: Any = float
    for _ in range(rank):
        tensor = list[tensor]
    fields = [
        ("instances", tensor | Unset, msgspec.UNSET),
        ("inputs", tensor | dict[str, tensor] | Unset, msgspec.UNSET),
        ("return_labels", bool | Unset, msgspec.UNSET),
        ("signature_name", str | Unset, msgspec.UNSET),
    ]
    struct = msgspec.defstruct("PredictRequest", fields, forbid_unknown_fields=True)
    return msgspec.json.Decoder(struct)
