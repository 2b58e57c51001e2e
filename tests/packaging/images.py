"""Sample images and a torchvision-style reference preprocessing, written with numpy and Pillow.

``reference`` is what a TorchVision user writes (``Resize(36)``, ``CenterCrop(32)``, ``ToTensor()``,
``Normalize(imagenet)``) on an image opened with ``PIL.Image.open``; ``tampered`` uses another mean.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

RESIZE, CROP = 36, 32
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SPEC = f"image:size={CROP},resize={RESIZE},mean=imagenet,std=imagenet,layout=NCHW"


def write_images(folder: Path, count: int, *, seed: int = 0) -> list[Path]:
    """``count`` generated images of assorted sizes: PNG (RGB, RGBA, grayscale) and JPEG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        height, width = int(rng.integers(32, 90)), int(rng.integers(32, 90))
        base = rng.integers(0, 256, size=3)
        gradient = np.linspace(0, 1, width)[None, :, None] * rng.integers(-120, 120, size=3)
        noise = rng.normal(0, 25, size=(height, width, 3))
        pixels = np.clip(base + gradient + noise, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        kind = i % 4
        if kind == 1:
            image = image.convert("L")
        elif kind == 2:
            image = image.convert("RGBA")
        suffix, fmt = (".jpg", "JPEG") if kind == 3 else (".png", "PNG")
        path = folder / f"img{i:03d}{suffix}"
        image.save(path, format=fmt)
        paths.append(path)
    return paths


def _torchvision_style(image: Image.Image, mean: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    image = image.convert("RGB")  # what torchvision's ImageFolder loader does
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(RESIZE * long / short)
    size = (RESIZE, new_long) if width <= height else (new_long, RESIZE)
    image = image.resize(size, Image.Resampling.BILINEAR)
    width, height = image.size
    top, left = int(round((height - CROP) / 2.0)), int(round((width - CROP) / 2.0))
    image = image.crop((left, top, left + CROP, top + CROP))
    array = np.asarray(image, dtype=np.float32) / 255.0
    return ((array - mean) / STD).transpose(2, 0, 1)


def reference(image: Image.Image) -> Any:
    """Resize(36) → CenterCrop(32) → ToTensor → Normalize(ImageNet), as torchvision computes it."""
    return _torchvision_style(image, MEAN)


def tampered(image: Image.Image) -> Any:
    """The same with another mean: a pipeline declared differently from what the model was trained with."""
    return _torchvision_style(image, np.array([0.5, 0.5, 0.5], dtype=np.float32))


def png_bytes(seed: int) -> bytes:
    """One small PNG."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_cnn(classes: int = 3) -> Any:
    """An untrained 3x32x32 → ``classes`` logits CNN (seeded: the same weights every run)."""
    import torch

    torch.manual_seed(0)
    return TinyCNN(classes)


def _module_base() -> Any:
    import torch

    return torch.nn.Module


class TinyCNN(_module_base()):  # type: ignore[misc]
    """Conv → ReLU → global average pool → linear: logits for 3x32x32 images."""

    def __init__(self, classes: int = 3) -> None:
        import torch

        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)
        self.head = torch.nn.Linear(6, classes)

    def forward(self, image: Any) -> Any:
        return self.head(self.conv(image).relu().mean(dim=(2, 3)))
