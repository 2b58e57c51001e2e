"""Declared pre/post-processing: what turns what people send into tensors, and tensors into answers.

A pipeline is data, never code: it is recorded in the manifest (so the signature covers it) and
applied at run time by ``modelfn.processing``. Three parts, each optional:

- ``image``: encoded JPEG/PNG/WebP bytes → one input tensor (decode, RGB, resize the shorter
  side, center crop, scale, mean/std, layout, dtype), with size limits against decompression bombs;
- ``records``: named features (JSON objects, CSV with a header) → the model's inputs, in order;
- ``output``: class scores → labels (``Manifest.labels``), softmax/sigmoid, top-k, threshold.

Imports only msgspec: it is read on the cold path with the manifest.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

NonEmpty = Annotated[str, Meta(min_length=1)]
Positive = Annotated[int, Meta(ge=1)]

DEFAULT_MAX_IMAGE_PIXELS = 25_000_000
"""Decoded pixels above this are refused (413) before decoding: a 50 kB PNG can declare 2 gigapixels."""
DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 * 1024
ImageFormat = Literal["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]
IMAGE_FORMATS: tuple[ImageFormat, ...] = ("JPEG", "PNG", "WEBP")
CHANNELS = {"RGB": 3, "BGR": 3, "L": 1}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Part(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Frozen, keyword-only, unknown fields refused (like the manifest it lives in)."""


class ImageProcessing(_Part, frozen=True, kw_only=True):
    """Encoded image bytes → the tensor for ``input``, the way torchvision / Keras pipelines do it.

    Order: decode → convert to ``color`` → resize (shorter side to ``resize``, or straight to
    ``size`` when ``resize`` is None) → center crop to ``size`` → ``x * scale`` → ``(x - mean) / std``
    per channel → ``layout`` → ``dtype``.
    """

    input: NonEmpty
    """The model input the image feeds (rank 4: a batch of images)."""
    size: Annotated[list[Positive], Meta(min_length=2, max_length=2)]
    """Final ``[height, width]`` of each image."""
    resize: Positive | None = None
    """Shorter side after resizing, before the center crop; None resizes straight to ``size``."""
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] = "bilinear"
    color: Literal["RGB", "BGR", "L"] = "RGB"
    scale: float = 1 / 255
    mean: list[float] = field(default_factory=list)
    """Per channel, after scaling; empty means 0."""
    std: list[float] = field(default_factory=list)
    """Per channel, after scaling; empty means 1."""
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: Literal["float32", "float16", "float64", "uint8"] = "float32"
    max_pixels: Positive = DEFAULT_MAX_IMAGE_PIXELS
    max_bytes: Positive = DEFAULT_MAX_IMAGE_BYTES
    formats: Annotated[list[ImageFormat], Meta(min_length=1)] = field(default_factory=lambda: list(IMAGE_FORMATS))
    """Pillow format names accepted; anything else is a 415."""

    def __post_init__(self) -> None:
        channels = CHANNELS[self.color]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values and len(values) != channels:
                raise ValueError(f"image.{name} has {len(values)} values; {self.color} has {channels} channels")
        if any(value <= 0 for value in self.std):
            raise ValueError("image.std values must be > 0")
        if self.scale <= 0:
            raise ValueError("image.scale must be > 0")
        if self.resize is not None and self.resize < min(self.size):
            raise ValueError(f"image.resize ({self.resize}) is smaller than the crop size {self.size}")

    @property
    def channels(self) -> int:
        """Channels of the produced tensor."""
        return CHANNELS[self.color]

    def tensor_shape(self) -> list[int]:
        """The shape the model input must accept, ``-1`` for the batch."""
        height, width = self.size
        if self.layout == "NCHW":
            return [-1, self.channels, height, width]
        return [-1, height, width, self.channels]


class RecordProcessing(_Part, frozen=True, kw_only=True):
    """Named features → the model's inputs, in the order the model was trained on.

    ``input`` set: every feature is one column of that 2-D input (scikit-learn
    ``feature_names_in_``, ``--feature-names``). ``input`` None: each feature is the model input of
    the same name (Spark pipelines, multi-input graphs).
    """

    features: Annotated[list[NonEmpty], Meta(min_length=1)]
    input: NonEmpty | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for name in self.features:
            if name in seen:
                raise ValueError(f"records.features names {name!r} twice")
            seen.add(name)


class OutputProcessing(_Part, frozen=True, kw_only=True):
    """Class scores → answers: labels from ``Manifest.labels``, probabilities, top-k, a threshold."""

    output: NonEmpty
    """The output holding one score per class (``[batch, classes]``), or one score for a binary model."""
    activation: Literal["none", "softmax", "sigmoid"] = "none"
    """Applied to the scores first: ``softmax`` for logits, ``sigmoid`` for a binary logit."""
    top_k: Positive = 5
    threshold: Annotated[float, Meta(ge=0, le=1)] | None = None
    """Binary classifiers: the probability of the positive (last) label at or above which it is chosen."""


class Processing(_Part, frozen=True, kw_only=True):
    """The declared pipeline; every part optional."""

    image: ImageProcessing | None = None
    records: RecordProcessing | None = None
    output: OutputProcessing | None = None

    def __post_init__(self) -> None:
        if self.image is not None and self.records is not None:
            raise ValueError("a bundle declares image or records preprocessing, not both")
