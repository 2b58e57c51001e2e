"""Example requests for the OpenAPI document, built from a manifest (input names, shapes, dtypes, features, images).

These are candidates: ``openapi_document`` sends each through the served routes once and keeps
the ones the model answers, with that answer as the response example, so /docs only shows
requests that work. Without a loaded model the same builders run over stand-in manifests.
Binary bodies (pictures, raw tensors, forms) go in ``externalValue`` as ``data:`` URIs, the one
self-contained way OpenAPI has to carry bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import struct
import zlib
from typing import TYPE_CHECKING, Any

from modelfn.serving.multipart import MULTIPART
from modelfn.serving.responses import dumps

if TYPE_CHECKING:
    from modelfn.bundle.manifest import Manifest, TensorSpec

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
NPY = "application/x-npy"
CSV = "text/csv"
TEXT = "text/plain"
PNG = "image/png"
BOUNDARY = "modelfn-example"
MAX_JSON_VALUES = 256
"""Tensors with more values per request get no JSON example (a page of numbers helps nobody): send them binary."""
MAX_BINARY_BYTES = 64 * 1024
IMAGE_SIZE = (32, 24)
"""Width and height of the example picture; the bundle's pipeline resizes it like any upload."""
V2_HEADER_LENGTH = "Inference-Header-Content-Length"
SHAPE_HEADER = "X-Tensor-Shape"


@dataclasses.dataclass(frozen=True)
class Example:
    """One example request body for one operation."""

    name: str
    """Key in the operation's ``examples`` maps (request and response share it)."""
    summary: str
    media_type: str
    """The requestBody content key it is listed under."""
    body: bytes
    value: Any = None
    """What the document shows; None for bytes, which go out as a ``data:`` URI."""
    content_type: str | None = None
    """The Content-Type sent, when it carries more than ``media_type`` (a multipart boundary)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Request headers the example needs besides Content-Type (documented as header parameters)."""
    form_field: str | None = None
    """For multipart examples: the file field, for the curl line."""

    @property
    def request_content_type(self) -> str:
        """The Content-Type header to send."""
        return self.content_type or self.media_type

    def document(self) -> dict[str, Any]:
        """The OpenAPI Example Object."""
        if self.value is not None:
            return {"summary": self.summary, "value": self.value}
        return {"summary": self.summary, "externalValue": data_uri(self.request_content_type, self.body)}


def data_uri(media_type: str, body: bytes) -> str:
    """RFC 2397 ``data:`` URI; the media type's parameters (a multipart boundary) are kept."""
    return f"data:{media_type.replace(' ', '')};base64,{base64.b64encode(body).decode()}"


def json_example(name: str, summary: str, value: Any) -> Example:
    return Example(name, summary, JSON, dumps(value), value)


def bytes_example(name: str, summary: str, media_type: str, body: bytes, *headers: tuple[str, str]) -> Example:
    return Example(name, summary, media_type, body, headers=headers)


def form_example(name: str, summary: str, field: str, filename: str, media_type: str, data: bytes) -> Example:
    """A multipart form with one file field."""
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {media_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    content_type = f"{MULTIPART}; boundary={BOUNDARY}"
    return Example(name, summary, MULTIPART, body, content_type=content_type, form_field=field)


def example_shape(spec: TensorSpec) -> list[int]:
    """The spec's shape for one request: dynamic dimensions 1."""
    return [d if d > 0 else 1 for d in spec.shape]


def tensor_value(spec: TensorSpec) -> Any:
    """A nested-list tensor of the spec's dtype and example shape, or None when it has too many values."""
    shape = example_shape(spec)
    if math.prod(shape) > MAX_JSON_VALUES:
        return None
    return _array(spec, shape).tolist()


def tensor_bytes(spec: TensorSpec) -> bytes | None:
    """The example tensor as raw little-endian bytes (numeric inputs), or None when too large or text."""
    shape = example_shape(spec)
    if spec.dtype == "string" or math.prod(shape) * 8 > MAX_BINARY_BYTES:
        return None
    array = _array(spec, shape)
    return bytes(array.astype(array.dtype.newbyteorder("<")).tobytes())


def npy_bytes(spec: TensorSpec) -> bytes | None:
    """The example tensor as a ``.npy`` file (numeric inputs), or None."""
    import io

    import numpy as np

    shape = example_shape(spec)
    if spec.dtype == "string" or math.prod(shape) * 8 > MAX_BINARY_BYTES:
        return None
    out = io.BytesIO()
    np.save(out, _array(spec, shape), allow_pickle=False)
    return out.getvalue()


def _array(spec: TensorSpec, shape: list[int]) -> Any:
    """Small, varied values of the spec's dtype (0.5, 1.0, 1.5, ... for floats)."""
    import numpy as np

    count = math.prod(shape)
    index = np.arange(count)
    if spec.dtype == "string":
        return np.array(["text"] * count, dtype=object).reshape(shape)
    if spec.dtype == "bool":
        return (index % 2 == 0).reshape(shape)
    if spec.dtype.startswith(("float", "bfloat")):
        dtype = "float32" if spec.dtype == "bfloat16" else spec.dtype
        return ((index % 7 + 1) * 0.5).astype(dtype).reshape(shape)
    return (index % 3).astype(spec.dtype).reshape(shape)


def row_value(spec: TensorSpec) -> Any:
    """One row (the tensor without its batch dimension), or None when too large."""
    value = tensor_value(spec)
    if value is None or not spec.shape:
        return value
    return value[0]


def record(manifest: Manifest) -> dict[str, Any] | None:
    """One named-feature record, typed like the inputs the features feed."""
    processing = manifest.processing
    if processing is None or processing.records is None:
        return None
    records = processing.records
    out: dict[str, Any] = {}
    for index, feature in enumerate(records.features):
        spec = manifest.input(records.input or feature)
        dtype = spec.dtype if spec is not None else "float32"
        out[feature] = _scalar(dtype, index)
    return out


def _scalar(dtype: str, index: int) -> Any:
    if dtype == "string":
        return f"value{index}"
    if dtype == "bool":
        return index % 2 == 0
    if dtype.startswith(("float", "bfloat")):
        return (index % 7 + 1) * 0.5
    return index % 3


def csv_body(row: dict[str, Any]) -> str:
    """A CSV header and one row."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(row))
    writer.writerow(["true" if v is True else "false" if v is False else v for v in row.values()])
    return out.getvalue()


def png(width: int = IMAGE_SIZE[0], height: int = IMAGE_SIZE[1]) -> bytes:
    """A small RGB gradient PNG, written with zlib alone (no image library on the docs path)."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 128))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def image_input(manifest: Manifest) -> str | None:
    """The input an image pipeline feeds, when the bundle declares one that takes PNG."""
    processing = manifest.processing
    if processing is None or processing.image is None or "PNG" not in processing.image.formats:
        return None
    return processing.image.input


def tensor_rows(manifest: Manifest) -> tuple[list[Any], Any] | None:
    """``(instances, inputs)`` for /predict and TF Serving: one row, and the same as columns; None when too large."""
    values = {spec.name: tensor_value(spec) for spec in manifest.inputs}
    if any(v is None for v in values.values()):
        return None
    rows = {spec.name: row_value(spec) for spec in manifest.inputs}
    if len(values) == 1:
        name = manifest.inputs[0].name
        return [rows[name]], values[name]
    return [rows], values
