"""Requests → model feeds, applying the bundle's declared processing; shared by every HTTP front door.

An image bundle takes encoded pictures (a raw ``image/*`` body, a form file, or TF Serving's
``{"b64": "..."}`` values); a records bundle takes objects keyed by feature name and ``text/csv``
bodies. Anything else is read as tensors, exactly as before a bundle declared processing, so old
clients keep working. ``modelfn.processing`` (and Pillow) is imported only when a bundle declares it.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, UnprocessableInput, UnsupportedMediaType
from modelfn.serving import codecs
from modelfn.serving.inference import media_type
from modelfn.serving.typed_json import FLOAT_TYPES, float_array

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest
    from modelfn.bundle.processing import ImageProcessing, RecordProcessing

Feeds = dict[str, "npt.NDArray[Any]"]
B64 = "b64"
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
CSV = "text/csv"
FLOAT_DTYPES = frozenset(FLOAT_TYPES.values())
NUMBERS_ONLY_MAX_BYTES = 64 * 1024
"""Scanning a body for quotes and nulls costs ~1 µs per KiB; the float64 pass it saves, less above this."""


def is_image(data: bytes, content_type: str | None) -> bool:
    """True for ``image/*`` media types and for bytes that start like a JPEG, PNG, GIF, BMP, TIFF or WebP file."""
    if media_type(content_type).startswith("image/"):
        return True
    return data.startswith(IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def refuse_image(field: str) -> UnsupportedMediaType:
    """The 415 for an encoded image sent to a bundle that cannot decode one."""
    return UnsupportedMediaType(
        "this bundle declares no image preprocessing: send the model's input tensor as JSON", field=field
    )


def image_spec(manifest: Manifest) -> ImageProcessing | None:
    """The declared image preprocessing, if any."""
    return manifest.processing.image if manifest.processing is not None else None


def records_spec(manifest: Manifest) -> RecordProcessing | None:
    """The declared records preprocessing, if any."""
    return manifest.processing.records if manifest.processing is not None else None


def image_feeds(blobs: Sequence[bytes], manifest: Manifest, *, field: str) -> Feeds:
    """Encoded images → the image input's batch (415 when the bundle declares no image preprocessing)."""
    spec = image_spec(manifest)
    if spec is None:
        raise refuse_image(field)
    from modelfn.processing.images import images_to_tensor

    return {spec.input: images_to_tensor(blobs, spec, field=field)}


def csv_feeds(body: bytes, manifest: Manifest, *, field: str) -> Feeds:
    """A ``text/csv`` body with a header → the model's inputs (415 unless the bundle declares records)."""
    spec = records_spec(manifest)
    if spec is None:
        raise UnsupportedMediaType("this bundle declares no records preprocessing: send JSON", field=field)
    from modelfn.processing.records import parse_csv, records_to_feeds

    return records_to_feeds(parse_csv(body, field=field), spec, manifest, field=field, from_text=True)


def body_feeds(body: bytes, content_type: str | None, manifest: Manifest, *, field: str) -> Feeds | None:
    """A raw image or CSV body → feeds; None for anything else (JSON, text)."""
    if is_image(body, content_type):
        return image_feeds([body], manifest, field=field)
    if media_type(content_type) == CSV:
        return csv_feeds(body, manifest, field=field)
    return None


def request_feeds(request: Mapping[str, Any], manifest: Manifest, *, numbers_only: bool = False) -> Feeds:
    """``{"instances": ...}`` or ``{"inputs": ...}`` → feeds: b64 images, named features, or plain tensors.

    ``numbers_only`` (``numbers_only(body, request)`` held) lets float inputs decode straight to their
    dtype, in one pass.
    """
    if ("instances" in request) == ("inputs" in request):
        raise InvalidRequest('send exactly one of "instances" or "inputs"', field="instances")
    image = image_spec(manifest)
    if image is not None:
        found = b64_images(request, image)
        if found is not None:
            blobs, field = found
            return image_feeds(blobs, manifest, field=field)
    records = records_spec(manifest)
    if records is not None:
        rows = named_rows(request, records)
        if rows is not None:
            from modelfn.processing.records import records_to_feeds

            return records_to_feeds(rows[0], records, manifest, field=rows[1])
    dtypes = {spec.name: spec.dtype for spec in manifest.inputs}
    feeds: Feeds = {}
    for name, value in columns(request, manifest).items():
        dtype = dtypes.get(name, "float32")
        typed = float_array(value, dtype) if numbers_only and dtype in FLOAT_DTYPES else None
        feeds[name] = typed if typed is not None else codecs.as_input(value, dtype, field=name)
    return feeds


def numbers_only(body: bytes, request: Mapping[str, Any]) -> bool:
    """True when no value in the JSON ``body`` (decoded as ``request``) is a string, an object or ``null``.

    Each top-level key costs two quote characters; any string value or nested key would add more,
    and a ``null`` shows as its literal. Then every leaf is a number or a boolean, which numpy
    converts to a float dtype exactly as the general path (float64, then a checked cast) would.
    Bodies over ``NUMBERS_ONLY_MAX_BYTES`` are not scanned: there the scan costs more than it saves,
    and the largest ones are ``typed_json``'s.
    """
    if len(body) > NUMBERS_ONLY_MAX_BYTES:
        return False
    return body.count(b'"') == 2 * len(request) and b"null" not in body


def b64_images(request: Mapping[str, Any], spec: ImageProcessing) -> tuple[list[bytes], str] | None:
    """The images of a request in TF Serving's binary convention, or None when it holds none.

    Rows (``instances``) or the ``inputs`` value are ``{"b64": "..."}`` or ``{name: {"b64": "..."}}``
    where ``name`` is the image input or ends in ``_bytes`` (TF Serving's ``image_bytes``).
    """
    key = "instances" if "instances" in request else "inputs"
    value = request.get(key)
    items = value if isinstance(value, list) else [value]
    if isinstance(value, dict) and len(value) == 1 and _is_named(next(iter(value)), spec):
        inner = next(iter(value.values()))
        items = inner if isinstance(inner, list) else [inner]
    if not items or _b64_text(items[0], spec) is None:
        return None
    blobs = []
    for index, item in enumerate(items):
        where = f"{key}[{index}]"
        text = _b64_text(item, spec)
        if text is None:
            raise UnprocessableInput(f'{where} is not an image: send every row as {{"b64": "..."}}', field=where)
        blobs.append(decode_b64(text, field=f"{where}.b64"))
    return blobs, key


def decode_b64(text: str, *, field: str) -> bytes:
    """Strict base64 (an encoded picture in JSON); anything else is a 400 naming ``field``."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{field} is not valid base64", field=field) from exc


def _b64_text(item: Any, spec: ImageProcessing) -> str | None:
    """The base64 text of ``{"b64": s}`` or ``{name: {"b64": s}}``, else None."""
    if not isinstance(item, dict) or len(item) != 1:
        return None
    name, value = next(iter(item.items()))
    if name == B64:
        return value if isinstance(value, str) else None
    return _b64_text(value, spec) if _is_named(name, spec) and isinstance(value, dict) and B64 in value else None


def _is_named(name: Any, spec: ImageProcessing) -> bool:
    return isinstance(name, str) and (name == spec.input or name.endswith("_bytes") or name == "image")


def named_rows(request: Mapping[str, Any], spec: RecordProcessing) -> tuple[list[Any], str] | None:
    """Rows of named features (``instances`` objects, or ``inputs`` columns by feature), or None for tensors."""
    if "instances" in request:
        rows = request["instances"]
        if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
            return None
        if spec.input is not None and spec.input in rows[0]:
            return None  # rows naming the model input itself: plain tensors
        return rows, "instances"
    inputs = request.get("inputs")
    if not isinstance(inputs, dict) or not inputs or (spec.input is not None and spec.input in inputs):
        return None
    lists = [value for value in inputs.values() if isinstance(value, list)]
    if not lists:
        return [inputs], "inputs"
    count = len(lists[0])
    if len(lists) != len(inputs) or any(len(value) != count for value in lists):
        raise UnprocessableInput("every feature in inputs must hold a list of the same length", field="inputs")
    return [{name: value[i] for name, value in inputs.items()} for i in range(count)], "inputs"


def columns(request: Mapping[str, Any], manifest: Manifest) -> dict[str, Any]:
    """Named input values from either request form (tensors, no processing)."""
    names = [spec.name for spec in manifest.inputs]
    if ("instances" in request) == ("inputs" in request):
        raise InvalidRequest('send exactly one of "instances" or "inputs"', field="instances")
    if "instances" in request:
        rows = request["instances"]
        if not isinstance(rows, list) or not rows:
            raise InvalidRequest('"instances" must be a non-empty list of rows', field="instances")
        if all(isinstance(row, dict) for row in rows):
            keys = set(rows[0])
            if any(set(row) != keys for row in rows):
                raise UnprocessableInput("every instance must name the same inputs", field="instances")
            return {key: [row[key] for row in rows] for key in rows[0]}
        if len(names) != 1:
            raise UnprocessableInput(
                f'this model takes {len(names)} inputs {names}: send rows as objects or use "inputs"',
                field="instances",
            )
        return {names[0]: rows}
    inputs = request["inputs"]
    if isinstance(inputs, dict):
        return dict(inputs)
    if len(names) != 1:
        raise UnprocessableInput(f'this model takes inputs {names}: "inputs" must be an object', field="inputs")
    return {names[0]: inputs}
