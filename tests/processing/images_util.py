"""Pillow-made test pictures and a torchvision-semantics reference, shared by the processing tests."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from modelfn.bundle.processing import ImageProcessing


def picture(width: int, height: int, *, seed: int = 0, mode: str = "RGB") -> Any:
    """A smooth, photo-like picture with noise (so resizing and JPEG both have work to do)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC)).astype(np.int16)
    noisy = np.clip(smooth + rng.integers(-12, 12, smooth.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy).convert(mode)


def encode(image: Any, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR declaring ``width x height`` 8-bit RGB, a tiny IDAT and IEND: a few dozen bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def reference(data: bytes, spec: ImageProcessing) -> npt.NDArray[np.float32]:
    """torchvision's Resize(int) + CenterCrop + ToTensor + Normalize on PIL, written out with numpy.

    torchvision.transforms.functional: ``new_long = int(size * long / short)``, PIL ``resize`` with the
    same resample, ``crop_top = int(round((h - th) / 2.0))``, ``ToTensor``: ``x.float().div(255)``,
    ``Normalize``: ``(x - mean) / std`` in float32.
    """
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    assert spec.resize is not None
    if w <= h:
        size = (spec.resize, int(spec.resize * h / w))
    else:
        size = (int(spec.resize * w / h), spec.resize)
    resized = image.resize(size, Image.Resampling.BILINEAR)
    th, tw = spec.size
    top, left = int(round((size[1] - th) / 2.0)), int(round((size[0] - tw) / 2.0))
    pixels = np.asarray(resized, dtype=np.uint8)[top : top + th, left : left + tw]
    tensor = torch_like_to_tensor(pixels)
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    return (tensor - mean) / std


def torch_like_to_tensor(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    return pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)  # type: ignore[no-any-return]
