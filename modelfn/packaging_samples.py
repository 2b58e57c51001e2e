"""Samples that go through the bundle's own pipeline at packaging, and the check against the user's preprocessing.

``--sample`` may be a folder of images or one image (for a bundle with image preprocessing: the
sample tensor is what the declared pipeline makes of them, so the parity check covers the
pipeline), or a CSV file with a header (records: its columns are picked by feature name).

``--reference-preprocess module:function`` names the user's own preprocessing: it receives each
sample image as a ``PIL.Image.Image`` exactly as Pillow opened it from the file (convert it
yourself, as torchvision's ``ImageFolder`` loader does with ``.convert("RGB")``) and returns that
one image's tensor (numpy array or torch tensor, without or with a batch dimension of 1). The
pipeline's tensors and the reference's are compared (max abs diff, refused beyond ``--atol``), and
so are the model's top-1 classes on both.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfn.errors import ModelfnError, PackagingError, ParityError

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import ParityReport
    from modelfn.bundle.processing import ImageProcessing, Processing
    from modelfn.packaging_processing import ProcessingRequest

    Array = npt.NDArray[Any]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MAX_SAMPLE_IMAGES = 1000
"""More sample images than this are refused: parity runs them all through the model at once."""


@dataclasses.dataclass(frozen=True)
class ImageSamples:
    """Encoded sample images (file names for messages), turned into a tensor by the declared pipeline."""

    names: list[str]
    blobs: list[bytes]


@dataclasses.dataclass(frozen=True)
class RecordSamples:
    """A CSV sample with a header: text columns by name, picked and typed once feature names are known."""

    columns: dict[str, list[str]]


def read_sample(path: Path) -> Any:
    """``--sample``: ``.npy``/``.npz`` arrays, a ``.csv`` with a header, one image, or a folder of images."""
    import numpy as np

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise PackagingError(f"--sample {path} holds no {'/'.join(IMAGE_SUFFIXES)} images", field="sample")
        if len(files) > MAX_SAMPLE_IMAGES:
            raise PackagingError(f"--sample {path} holds {len(files)} images; at most {MAX_SAMPLE_IMAGES}",
                                 field="sample")  # fmt: skip
        return ImageSamples([p.name for p in files], [p.read_bytes() for p in files])
    suffix = path.suffix.lower()
    try:
        if suffix in IMAGE_SUFFIXES:
            return ImageSamples([path.name], [path.read_bytes()])
        if suffix == ".csv":
            return _read_csv(path)
        if suffix in (".npy", ".npz"):
            loaded = np.load(path, allow_pickle=False)
            return dict(loaded) if suffix == ".npz" else loaded
    except (OSError, ValueError) as exc:
        raise PackagingError(f"--sample {path}: cannot read: {exc}", field="sample") from exc
    raise PackagingError(
        f"--sample {path.name}: expected .npy, .npz, .csv, an image ({', '.join(IMAGE_SUFFIXES)}) or an image folder",
        field="sample",
    )


def _read_csv(path: Path) -> RecordSamples:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    rows = [row for row in rows if row]
    if len(rows) < 2:
        raise PackagingError(f"--sample {path.name}: a header and at least one row are required", field="sample")
    header = rows[0]
    if len(set(header)) != len(header) or not all(header):
        raise PackagingError(f"--sample {path.name}: empty or repeated column names {header}", field="sample")
    for number, row in enumerate(rows[1:], start=1):
        if len(row) != len(header):
            raise PackagingError(
                f"--sample {path.name}: row {number} has {len(row)} fields, the header {len(header)}", field="sample"
            )
    return RecordSamples({name: [row[i] for row in rows[1:]] for i, name in enumerate(header)})


def pipeline_sample(sample: Any, request: ProcessingRequest) -> tuple[Any, ImageSamples | None]:
    """The sample the adapter gets (sample images become the pipeline's tensor), and the images, if any."""
    image_spec = request.image_spec()
    images = sample if isinstance(sample, ImageSamples) else None
    if images is not None and image_spec is None:
        raise PackagingError("sample images need image preprocessing: --preprocess image:...", field="sample")
    if request.reference_preprocess and (images is None or image_spec is None):
        raise PackagingError(
            "--reference-preprocess compares the image pipeline on sample images: give --preprocess image:..."
            " and --sample with an image or a folder of images",
            field="reference_preprocess",
        )
    if images is None or image_spec is None:
        return sample, None
    return image_tensor(images, image_spec), images


def pipeline_report(
    parity: ParityReport,
    declared: Processing | None,
    images: ImageSamples | None,
    request: ProcessingRequest,
    onnx_bytes: bytes,
    feeds: Mapping[str, Array],
    *,
    atol: float,
    data_files: Mapping[str, bytes] | None = None,
) -> ParityReport:
    """The parity report with the pipeline's figures: samples, and the comparison with the reference function."""
    if declared is None or declared.image is None or images is None:
        return parity
    parity = parity.replace(preprocessing_samples=len(images.blobs))
    if not request.reference_preprocess:
        return parity
    score_output = declared.output.output if declared.output is not None else None
    return parity.replace(**pipeline_parity(
        onnx_bytes, declared.image, images, feeds[declared.image.input], request.reference_preprocess,
        atol=atol, score_output=score_output, data_files=data_files,
    ))  # fmt: skip


def image_tensor(samples: ImageSamples, spec: ImageProcessing) -> Array:
    """The batch tensor the declared pipeline makes of the sample images (what the served function will see)."""
    from modelfn.processing.images import images_to_tensor

    try:
        return images_to_tensor(samples.blobs, spec, field="sample")
    except ModelfnError as exc:
        raise PackagingError(f"--sample: {exc.message} ({', '.join(samples.names[:3])}...)", field="sample") from exc


def records_sample(samples: RecordSamples, names: list[str] | None, *, by_column: bool) -> Any:
    """The sample's feature columns in feature order: a float32 matrix, or (``by_column``) arrays by name."""
    import numpy as np

    names = names or list(samples.columns)
    missing = [name for name in names if name not in samples.columns]
    if missing:
        raise PackagingError(
            f"--sample: the CSV has no column {missing[0]!r}; its columns are {list(samples.columns)}",
            field=missing[0],
        )
    columns: dict[str, Array] = {}
    for name in names:
        values = samples.columns[name]
        try:
            columns[name] = np.asarray([float(v) for v in values], dtype=np.float32)
        except ValueError:
            if not by_column:
                raise PackagingError(f"--sample: column {name!r} holds non-numbers", field=name) from None
            columns[name] = np.asarray(values, dtype=object)
    if by_column:
        return columns
    return np.column_stack([columns[name] for name in names])


def pipeline_parity(
    onnx_bytes: bytes,
    spec: ImageProcessing,
    samples: ImageSamples,
    pipeline: Array,
    reference: str,
    *,
    atol: float,
    score_output: str | None,
    data_files: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """Compare the pipeline's tensors and the model's top-1 on them with the reference function's; ParityReport fields.

    Raises ``ParityError`` when the tensors differ by more than ``atol``.
    """
    import numpy as np

    from modelfn.parity import run_onnx

    function = load_function(reference)
    tensors = [_reference_tensor(function, blob, name, reference) for name, blob in zip(samples.names, samples.blobs,
                                                                                         strict=True)]  # fmt: skip
    expected = pipeline.shape[1:]
    for name, tensor in zip(samples.names, tensors, strict=True):
        if tensor.shape != expected:
            raise ParityError(
                f"--reference-preprocess {reference} made a {list(tensor.shape)} tensor of {name};"
                f" the pipeline makes {list(expected)} ({spec.layout})",
                field="reference_preprocess",
            )
    ref = np.stack(tensors).astype(pipeline.dtype)
    diff = float(np.max(np.abs(ref.astype(np.float64) - pipeline.astype(np.float64)))) if ref.size else 0.0
    agreement = None
    on_pipeline = run_onnx(onnx_bytes, {spec.input: pipeline}, data_files=data_files)
    on_reference = run_onnx(onnx_bytes, {spec.input: ref}, data_files=data_files)
    scores = score_output or next((n for n, v in on_pipeline.items() if v.ndim == 2 and v.shape[1] > 1), None)
    if scores is not None and np.asarray(on_pipeline[scores]).ndim == 2:
        agreement = float(np.mean(on_pipeline[scores].argmax(axis=1) == on_reference[scores].argmax(axis=1)))
    if not diff <= atol:
        shown = "" if agreement is None else f"; top-1 agreement {agreement:.3f}"
        raise ParityError(
            f"preprocessing parity failed: the declared image pipeline and {reference} differ by {diff:.3g}"
            f" (max abs diff, allowed {atol:g}) on {len(tensors)} sample images{shown}",
            field="reference_preprocess",
        )
    return {
        "preprocessing_samples": len(tensors),
        "preprocessing_reference": reference,
        "preprocessing_max_abs_diff": diff,
        "preprocessing_top1_agreement": agreement,
    }


def load_function(path: str) -> Callable[..., Any]:
    """``module:function`` imported (the working directory is searched too, as ``python -m`` would)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise PackagingError(
            f"--reference-preprocess takes module:function, got {path!r}", field="reference_preprocess"
        )
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            if "" in sys.path or str(Path.cwd()) in sys.path:
                raise
            sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
        function = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise PackagingError(
            f"--reference-preprocess {path} cannot be imported: {exc}", field="reference_preprocess"
        ) from exc
    if not callable(function):
        raise PackagingError(f"--reference-preprocess {path} is not callable", field="reference_preprocess")
    return function  # type: ignore[no-any-return]


def _reference_tensor(function: Callable[..., Any], blob: bytes, name: str, reference: str) -> Array:
    """One image through the user's function, as a numpy array without the batch dimension."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(io.BytesIO(blob)) as image:
            image.load()
            result = function(image)
    except Exception as exc:  # the user's function raises whatever it raises
        raise PackagingError(
            f"--reference-preprocess {reference} failed on {name}: {exc}", field="reference_preprocess"
        ) from exc
    if hasattr(result, "detach"):  # a torch tensor
        result = result.detach().cpu().numpy()
    array = np.asarray(result)
    return array[0] if array.ndim == 4 and array.shape[0] == 1 else array
