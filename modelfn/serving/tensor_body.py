"""Raw tensor bodies: ``application/octet-stream`` and ``application/x-npy`` in, JSON or ``.npy`` out.

Large inputs (images, audio) cost more to parse as JSON than to run, so a single-input model also
takes the tensor's bytes as they are. ``application/octet-stream`` is the input's dtype in
little-endian order, shaped by ``X-Tensor-Shape: 1,3,224,224`` or, without it, by the manifest's
fixed dimensions with the one dynamic dimension inferred from the byte count. ``application/x-npy``
is a ``.npy`` file whose header (read with ``numpy.lib.format``, never unpickled) gives dtype and
shape. The array is a read-only view of the request bytes (no copy); onnxruntime takes it as is.
Replies are JSON unless ``Accept`` asks for ``application/x-npy`` or ``application/octet-stream``
(single-output models; the raw form carries ``X-Tensor-Shape`` and ``X-Tensor-Dtype``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, UnprocessableInput, UnsupportedMediaType
from modelfn.serving.inference import media_type, run_model
from modelfn.serving.predict import answer
from modelfn.serving.responses import Response, json_response

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest, TensorSpec
    from modelfn.serving.state import ModelState

    Array = npt.NDArray[Any]

OCTET_STREAM = "application/octet-stream"
NPY = "application/x-npy"
JSON = "application/json"
SHAPE_HEADER = "x-tensor-shape"
DTYPE_HEADER = "x-tensor-dtype"
V2_HEADER_LENGTH = "inference-header-content-length"
MAX_RANK = 32
MAX_NPY_HEADER = 10_000
"""numpy's own default bound on a .npy header (its dict is parsed with ``ast.literal_eval``)."""


class NotAcceptable(InvalidRequest):
    """Raise when ``Accept`` names only reply forms this model cannot give (.npy for several outputs)."""

    status_code = 406
    code = "not_acceptable"


def is_tensor_body(headers: Mapping[str, str]) -> bool:
    """True for a raw tensor body: ``.npy``, or octet-stream that is not the V2 binary extension."""
    media = media_type(headers.get("content-type"))
    return media == NPY or (media == OCTET_STREAM and V2_HEADER_LENGTH not in headers)


def decode(body: bytes, headers: Mapping[str, str], manifest: Manifest) -> tuple[str, Array]:
    """The single input's name and array, viewed straight over ``body``."""
    spec = _single_input(manifest)
    if media_type(headers.get("content-type")) == NPY:
        return spec.name, read_npy(body, field=spec.name)
    if media_type(headers.get("content-type")) != OCTET_STREAM:
        raise UnsupportedMediaType(f"send {OCTET_STREAM} or {NPY}", field="content-type")
    return spec.name, read_raw(body, spec, headers.get(SHAPE_HEADER))


def _single_input(manifest: Manifest) -> TensorSpec:
    if len(manifest.inputs) != 1:
        names = [s.name for s in manifest.inputs]
        raise UnprocessableInput(
            f"a raw tensor body feeds a single-input model; this one takes {names}: send JSON or V2 binary tensors",
            field="content-type",
        )
    spec = manifest.inputs[0]
    if spec.dtype == "string":
        raise UnsupportedMediaType(
            f"input {spec.name!r} holds strings, which have no raw byte form: send JSON", field="content-type"
        )
    return spec


def read_raw(body: bytes, spec: TensorSpec, shape_header: str | None) -> Array:
    """Little-endian bytes of the input's dtype, shaped by the header or by the manifest."""
    import numpy as np

    try:
        dtype = np.dtype(spec.dtype).newbyteorder("<")
    except TypeError as exc:  # bfloat16: no numpy dtype to view the bytes as
        raise UnsupportedMediaType(
            f"input {spec.name!r} is {spec.dtype}, which has no raw byte form here: send JSON", field="content-type"
        ) from exc
    if len(body) % dtype.itemsize:
        raise UnprocessableInput(
            f"input {spec.name!r}: {len(body)} bytes is not a whole number of {spec.dtype} values", field=spec.name
        )
    count = len(body) // dtype.itemsize
    shape = _parse_shape(shape_header) if shape_header is not None else _inferred_shape(spec, count)
    if math.prod(shape) != count:
        raise UnprocessableInput(
            f"input {spec.name!r}: shape {list(shape)} needs {math.prod(shape) * dtype.itemsize} bytes of "
            f"{spec.dtype}, got {len(body)}",
            field=SHAPE_HEADER if shape_header is not None else spec.name,
        )
    return _native(np.frombuffer(body, dtype=dtype).reshape(shape))


def _parse_shape(text: str) -> tuple[int, ...]:
    """``1,3,224,224`` (brackets and spaces allowed): non-negative ASCII integers of bounded rank."""
    parts = [p.strip() for p in text.strip().strip("[]").split(",")]
    if not parts or len(parts) > MAX_RANK or not all(p and len(p) <= 18 and p.isascii() and p.isdigit() for p in parts):
        raise InvalidRequest(
            f"X-Tensor-Shape must be comma-separated non-negative integers (at most {MAX_RANK}), got {text[:60]!r}",
            field=SHAPE_HEADER,
        )
    return tuple(int(p) for p in parts)


def _inferred_shape(spec: TensorSpec, count: int) -> tuple[int, ...]:
    """The manifest's shape with its one dynamic dimension taken from the element count."""
    dynamic = [i for i, d in enumerate(spec.shape) if d < 0]
    fixed = math.prod(d for d in spec.shape if d >= 0)
    if len(dynamic) > 1 or (dynamic and fixed == 0):
        raise UnprocessableInput(
            f"input {spec.name!r} has shape {list(spec.shape)}: name the shape in X-Tensor-Shape", field=SHAPE_HEADER
        )
    if not dynamic:
        return tuple(spec.shape)
    if count % fixed:
        raise UnprocessableInput(
            f"input {spec.name!r}: {count} values do not fill whole items of shape {list(spec.shape)}",
            field=spec.name,
        )
    shape = list(spec.shape)
    shape[dynamic[0]] = count // fixed
    return tuple(shape)


def read_npy(body: bytes, *, field: str) -> Array:
    """A ``.npy`` file's array over ``body``: header parsed without pickle; object or record dtypes refused."""
    import numpy as np

    start = _npy_data_offset(body, field=field)
    shape, fortran, dtype = npy_header(bytes(body[:start]), field)
    needed = math.prod(shape) * dtype.itemsize
    if len(body) - start != needed:
        raise UnprocessableInput(
            f"input {field!r}: .npy header says {list(shape)} {dtype.name} ({needed} bytes), the file holds "
            f"{len(body) - start}",
            field=field,
        )
    flat = np.frombuffer(body, dtype=dtype, offset=start, count=math.prod(shape))
    array = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    return _native(array)


def _npy_data_offset(body: bytes, *, field: str) -> int:
    """Where the data starts: magic, version, header length (2 bytes in 1.0, 4 in 2.0), header."""
    if len(body) < 12 or body[:6] != b"\x93NUMPY":
        raise InvalidRequest(f"input {field!r} is not a valid .npy file (no .npy magic)", field=field)
    version = (body[6], body[7])
    if version not in ((1, 0), (2, 0)):
        raise InvalidRequest(f"input {field!r}: .npy format version {version} is not read here", field=field)
    size = 2 if version == (1, 0) else 4
    length = int.from_bytes(body[8 : 8 + size], "little")
    if length > MAX_NPY_HEADER or 8 + size + length > len(body):
        raise InvalidRequest(f"input {field!r}: .npy header length {length} does not fit", field=field)
    return 8 + size + length


@functools.lru_cache(maxsize=64)
def npy_header(header: bytes, field: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """``(shape, fortran_order, dtype)`` of a .npy header, read by numpy (``ast.literal_eval``, no pickle).

    Cached: a client sends the same header with every request, and parsing it is most of the decode.
    """
    import io
    import tokenize

    from numpy.lib import format as npy_format

    stream = io.BytesIO(header)
    try:
        version = npy_format.read_magic(stream)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = read(stream, max_header_size=MAX_NPY_HEADER)
    except (ValueError, TypeError, KeyError, SyntaxError, OverflowError, EOFError, tokenize.TokenError) as exc:
        raise InvalidRequest(f"input {field!r} is not a valid .npy file: {exc}", field=field) from exc
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
        raise UnsupportedMediaType(
            f"input {field!r}: .npy dtype {dtype.str!r} is refused; send plain numeric or boolean arrays",
            field=field,
        )
    if len(shape) > MAX_RANK:
        raise UnprocessableInput(f"input {field!r}: .npy rank {len(shape)} is over {MAX_RANK}", field=field)
    return tuple(shape), bool(fortran), dtype


def _native(array: Array) -> Array:
    """Big-endian or misaligned views become a native copy; everything else stays a view."""
    if not array.dtype.isnative or not array.flags.aligned:
        return array.astype(array.dtype.newbyteorder("="))
    return array


# --- replies ------------------------------------------------------------------------------------


def reply_form(headers: Mapping[str, str]) -> str:
    """The first of JSON, .npy or raw bytes that ``Accept`` lists (JSON when none or ``*/*``)."""
    for item in headers.get("accept", "").split(","):
        media = media_type(item)
        if media in (NPY, OCTET_STREAM, JSON):
            return media
        if media in ("*/*", "application/*"):
            return JSON
    return JSON


def tensor_reply(results: Mapping[str, Array], form: str) -> tuple[bytes, str, tuple[tuple[str, str], ...]]:
    """The single output as ``.npy`` or raw little-endian bytes (body, content type, headers)."""
    check_reply_form(form, list(results))
    array = next(iter(results.values()))
    if array.dtype.kind not in "biuf":
        raise NotAcceptable(f"a {array.dtype} output has no {form} form: accept application/json", field="accept")
    if form == NPY:
        return npy_bytes(array), NPY, ()
    import numpy as np

    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    shape = ",".join(str(d) for d in array.shape)
    return data, OCTET_STREAM, ((SHAPE_HEADER, shape), (DTYPE_HEADER, array.dtype.name))


def npy_bytes(array: Array) -> bytes:
    """``array`` as a version 1.0 ``.npy`` file."""
    import io

    import numpy as np

    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def check_reply_form(form: str, output_names: list[str]) -> None:
    """406 before running when a tensor reply is asked of a model with several outputs."""
    if form != JSON and len(output_names) != 1:
        raise NotAcceptable(
            f"{form} replies carry one output; this model returns {output_names}: accept application/json",
            field="accept",
        )


# --- routes -------------------------------------------------------------------------------------


def predict(state: ModelState, body: bytes, headers: Mapping[str, str]) -> Response:
    """``POST /predict`` with a raw tensor body: the JSON answer of ``/predict`` (labels and top-k when the
    bundle declares output processing), or the tensor itself."""
    bundle = state.require()
    form = reply_form(headers)
    check_reply_form(form, bundle.model.output_names)
    name, array = decode(body, headers, bundle.manifest)
    results = run_model(bundle.model, {name: array})
    if form != JSON:
        return tensor_response(results, form)
    return json_response(answer(bundle.manifest, results, return_labels=False))


def tensor_response(results: Mapping[str, Array], form: str) -> Response:
    """The single output as a ``.npy`` or raw-bytes response."""
    data, content_type, extra = tensor_reply(results, form)
    return Response(status=200, body=data, content_type=content_type, headers=extra)
