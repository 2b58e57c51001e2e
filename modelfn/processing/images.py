"""Encoded image bytes → the model's input tensor, as the manifest's ``ImageProcessing`` declares.

The steps and their rounding follow torchvision's ``Resize(int)`` + ``CenterCrop`` + ``ToTensor``
+ ``Normalize`` on PIL images, so a model trained behind those transforms sees the same numbers
(float32 arithmetic, Pillow resampling). Limits are checked before any pixel is decoded: the byte
size, then the pixel count read from the header (decompression bombs), then the format.
JPEGs are decoded at full scale: Pillow's ``draft`` (DCT downscaling) is 5-8x faster on
multi-megapixel photos but moves values by ~1/255, which would break parity with training.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelfn.errors import ConfigError, PayloadTooLarge, UnprocessableInput, UnsupportedMediaType

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

    from modelfn.bundle.processing import ImageProcessing

MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
"""Leading bytes of the formats people send, to tell a refused format (415) from a broken file (422)."""


def sniff_format(data: bytes) -> str | None:
    """The image format the leading bytes announce (Pillow's name), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in MAGIC if data.startswith(magic)), None)


def decode_image(data: bytes, spec: ImageProcessing, *, field: str) -> npt.NDArray[Any]:
    """One encoded image → an array of shape ``spec.tensor_shape()[1:]`` and dtype ``spec.dtype``."""
    image = _open(data, spec, field=field)
    try:
        picture = _prepared(image, spec, field=field)
    finally:
        image.close()
    return _to_array(picture, spec)


def images_to_tensor(blobs: Sequence[bytes], spec: ImageProcessing, *, field: str) -> npt.NDArray[Any]:
    """Several encoded images → one batch tensor (``field[i]`` names the image an error is about)."""
    import numpy as np

    if not blobs:
        raise UnprocessableInput(f"{field} holds no image", field=field)
    names = [field] if len(blobs) == 1 else [f"{field}[{i}]" for i in range(len(blobs))]
    return np.stack([decode_image(blob, spec, field=name) for blob, name in zip(blobs, names, strict=True)])


def _open(data: bytes, spec: ImageProcessing, *, field: str) -> Image.Image:
    """Read the header only, and refuse what is too big or not an accepted format."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # a deployment built without the images extra: logged, a generic 500 to clients
        raise ConfigError(
            "this bundle declares image preprocessing, which needs Pillow: install modelfn[images]",
            field="processing.image",
        ) from exc

    if len(data) > spec.max_bytes:
        raise PayloadTooLarge(f"{field} is {len(data)} bytes, over the image limit of {spec.max_bytes}", field=field)
    sniffed = sniff_format(data)
    if sniffed is not None and sniffed not in spec.formats:
        raise UnsupportedMediaType(f"{field} is a {sniffed} image; this model accepts {spec.formats}", field=field)
    try:  # Pillow's own bomb check: an error above 2x Image.MAX_IMAGE_PIXELS, a warning (an error in tests) above it
        image = Image.open(io.BytesIO(data), formats=list(spec.formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"{field} declares too many pixels to decode safely: {exc}", field=field) from exc
    except UnidentifiedImageError as exc:
        if sniffed is None:
            raise UnsupportedMediaType(f"{field} is not a {' / '.join(spec.formats)} image", field=field) from exc
        raise UnprocessableInput(f"{field} is not a decodable {sniffed} image", field=field) from exc
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        Warning,
    ) as exc:  # Pillow on bad headers (warnings: when errors)
        raise UnprocessableInput(f"{field} is not a decodable image", field=field) from exc
    width, height = image.size
    if width * height > spec.max_pixels:
        image.close()
        raise PayloadTooLarge(
            f"{field} is {width}x{height} = {width * height} pixels, over the limit of {spec.max_pixels}", field=field
        )
    return image


def _prepared(image: Image.Image, spec: ImageProcessing, *, field: str) -> Image.Image:
    """Decode, orient, convert, resize and crop: a PIL image of exactly ``spec.size``."""
    from PIL import ImageOps

    try:
        image.load()
        oriented = ImageOps.exif_transpose(image)
        converted = oriented.convert("L" if spec.color == "L" else "RGB")
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        SystemError,
        Warning,
    ) as exc:  # a corrupt-data warning made an error
        raise UnprocessableInput(f"{field} is truncated or not a decodable {image.format} image", field=field) from exc
    target = _resized_size(converted.size, spec)
    resized = converted if converted.size == target else converted.resize(target, _resample(spec))
    return _center_crop(resized, spec.size[0], spec.size[1])


def _resized_size(size: tuple[int, int], spec: ImageProcessing) -> tuple[int, int]:
    """(width, height) after the resize step, rounded as torchvision's ``Resize(int)`` does."""
    height, width = spec.size
    if spec.resize is None:
        return width, height
    w, h = size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = spec.resize, int(spec.resize * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def _center_crop(image: Image.Image, height: int, width: int) -> Image.Image:
    """torchvision's ``CenterCrop``: offsets rounded half to even, zero padding where the image is smaller."""
    w, h = image.size
    if (w, h) == (width, height):
        return image
    top = int(round((h - height) / 2.0)) if height <= h else -((height - h) // 2)
    left = int(round((w - width) / 2.0)) if width <= w else -((width - w) // 2)
    return image.crop((left, top, left + width, top + height))


def _resample(spec: ImageProcessing) -> Image.Resampling:
    from PIL import Image

    return {
        "nearest": Image.Resampling.NEAREST,
        "bilinear": Image.Resampling.BILINEAR,
        "bicubic": Image.Resampling.BICUBIC,
        "lanczos": Image.Resampling.LANCZOS,
    }[spec.interpolation]


def _to_array(image: Image.Image, spec: ImageProcessing) -> npt.NDArray[Any]:
    """Pixels → scaled, normalized values in the declared layout and dtype (float32 math, like torch)."""
    import numpy as np

    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if spec.color == "BGR":
        pixels = pixels[:, :, ::-1]
    plain = spec.scale == 1 and not spec.mean and not spec.std
    if spec.dtype == "uint8" and plain:
        values: np.ndarray[Any, Any] = pixels
    else:
        values = _normalized(pixels, spec)
        if spec.dtype == "uint8":
            values = np.clip(np.rint(values), 0, 255)
    if spec.layout == "NCHW":
        values = values.transpose(2, 0, 1)
    return np.ascontiguousarray(values, dtype=spec.dtype)


def _normalized(pixels: npt.NDArray[Any], spec: ImageProcessing) -> npt.NDArray[Any]:
    """``x * scale``, then ``(x - mean) / std`` per channel; a 1/n scale divides by n as ``ToTensor`` does."""
    import numpy as np

    work = np.dtype(np.float64 if spec.dtype == "float64" else np.float32)
    values: npt.NDArray[np.floating[Any]] = pixels.astype(work)
    inverse = 1 / spec.scale
    if abs(inverse - round(inverse)) < 1e-9:
        np.divide(values, np.asarray(round(inverse), dtype=work), out=values)
    else:
        np.multiply(values, np.asarray(spec.scale, dtype=work), out=values)
    if spec.mean:
        np.subtract(values, np.asarray(spec.mean, dtype=work), out=values)
    if spec.std:
        np.divide(values, np.asarray(spec.std, dtype=work), out=values)
    return values
