"""A tiny CNN packaged with a declared image pipeline and labels: parity against a torchvision-style reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from modelfn.bundle.manifest import Manifest
from modelfn.cli import app
from modelfn.errors import PackagingError, ParityError
from modelfn.packaging import package
from modelfn.packaging_processing import ProcessingRequest
from modelfn.packaging_samples import ImageSamples, read_sample
from tests.packaging.images import SPEC, reference, tiny_cnn, write_images

pytestmark = [pytest.mark.slow, pytest.mark.framework]

LABELS: list[str | int] = ["cat", "dog", "owl"]
REFERENCE = "tests.packaging.images:reference"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images") / "samples"
    write_images(folder, 12)
    return folder


@pytest.fixture(scope="module")
def packaged(images: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Path]:
    """The CNN packaged once with the image pipeline, labels and the reference function."""
    out = tmp_path_factory.mktemp("cnn") / "bundle"
    request = ProcessingRequest(preprocess=SPEC, labels=LABELS, reference_preprocess=REFERENCE)
    manifest = package(tiny_cnn(), read_sample(images), out, name="cnn", processing=request)
    return manifest, out


def test_pipeline_labels_and_parity_are_declared(packaged: tuple[Manifest, Path]) -> None:
    # GIVEN the CNN packaged with --preprocess image:..., --labels and --reference-preprocess (fixture)
    manifest, out = packaged
    # THEN the signed manifest declares the pipeline on the model's only 4-D input, and the labels
    processing = manifest.processing
    assert processing is not None and processing.image is not None and processing.output is not None
    assert processing.image.input == "image" and processing.image.size == [32, 32] and processing.image.resize == 36
    assert processing.image.mean == pytest.approx([0.485, 0.456, 0.406])
    assert manifest.labels == LABELS
    # AND the logits got softmax, decided from the sample outputs and said so in the notes
    assert processing.output.activation == "softmax" and processing.output.top_k == 3
    assert "not probabilities" in (manifest.preprocessing or "")
    # AND the parity report covers the pipeline: same tensors as the reference, same top-1 on all 12 images
    parity = manifest.parity
    assert parity is not None and parity.samples == 12 and parity.preprocessing_samples == 12
    assert parity.preprocessing_reference == REFERENCE
    assert parity.preprocessing_max_abs_diff is not None and parity.preprocessing_max_abs_diff <= 1e-5
    assert parity.preprocessing_top1_agreement == 1.0
    assert parity.label_agreement == 1.0  # native torch vs ONNX on the pipeline's tensors
    written = json.loads((out / "manifest.json").read_text())
    assert written["processing"]["image"]["resize"] == 36


def test_a_reference_with_another_mean_is_refused(images: Path, tmp_path: Path) -> None:
    # GIVEN a reference function normalizing with a different mean than the declared pipeline
    request = ProcessingRequest(preprocess=SPEC, labels=LABELS, reference_preprocess="tests.packaging.images:tampered")
    # WHEN packaging
    with pytest.raises(ParityError) as caught:
        package(tiny_cnn(), read_sample(images), tmp_path / "out", name="cnn", processing=request)
    # THEN it is refused naming the flag and the difference, and nothing is written
    assert caught.value.field == "reference_preprocess"
    assert "differ by" in caught.value.message and "allowed 0.0001" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_the_pipeline_tensor_is_what_the_reference_computes(images: Path) -> None:
    # GIVEN the declared pipeline as the packaged bundle will apply it
    from PIL import Image

    from modelfn.packaging_samples import image_tensor

    spec = ProcessingRequest(preprocess=SPEC).image_spec()
    assert spec is not None
    samples = read_sample(images)
    assert isinstance(samples, ImageSamples)
    # WHEN the sample images go through it and through the reference function one by one
    tensor = image_tensor(samples, spec)
    expected = [reference(Image.open(images / name)) for name in samples.names]
    # THEN they agree (RGB, RGBA and grayscale PNGs and JPEGs alike)
    assert tensor.shape == (12, 3, 32, 32) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, np.stack(expected), atol=1e-5)


def test_sample_images_without_image_preprocessing_are_refused(images: Path, tmp_path: Path) -> None:
    with pytest.raises(PackagingError) as caught:
        package(tiny_cnn(), read_sample(images), tmp_path / "out", name="cnn")
    assert caught.value.field == "sample" and "--preprocess image" in caught.value.message


def test_cli_packages_weights_with_pipeline_labels_and_reference(images: Path, tmp_path: Path) -> None:
    # GIVEN safetensors weights of the CNN, its class path, a labels file and a folder of sample images
    from safetensors.torch import save_file

    weights = tmp_path / "cnn.safetensors"
    save_file(tiny_cnn().state_dict(), str(weights))
    labels = tmp_path / "classes.txt"
    labels.write_text("cat\ndog\nowl\n")
    # WHEN `modelfn package` runs with the processing flags
    result = CliRunner().invoke(
        app,
        ["package", str(weights), "--out", str(tmp_path / "b"), "--name", "cnn", "--option",
         "model_class=tests.packaging.images:TinyCNN", "--sample", str(images), "--preprocess", SPEC,
         "--labels", str(labels), "--top-k", "2", "--reference-preprocess", REFERENCE],
    )  # fmt: skip
    # THEN it reports the pipeline parity and writes the declared processing
    assert result.exit_code == 0, result.output
    assert "preprocessing parity vs tests.packaging.images:reference on 12 images" in result.output
    assert "top-1 agreement 1.000" in result.output
    manifest = Manifest.from_json((tmp_path / "b" / "manifest.json").read_bytes())
    assert manifest.processing is not None and manifest.processing.output is not None
    assert manifest.processing.output.top_k == 2 and manifest.labels == LABELS


def test_help_explains_every_processing_flag() -> None:
    result = CliRunner().invoke(app, ["package", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    for flag in ("--preprocess", "--feature-names", "--labels", "--top-k", "--threshold", "--softmax", "--sigmoid",
                 "--classify", "--no-classify", "--reference-preprocess"):  # fmt: skip
        assert flag in text
    assert "mean=imagenet" in text and "PIL image" in text
