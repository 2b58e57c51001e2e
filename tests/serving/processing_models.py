"""Tiny ONNX models with declared processing, built with ``onnx.helper``; pictures made by Pillow.

``image``: image float32 [-1, 3, 8, 8] → GlobalAveragePool → Flatten → Gemm (10·identity) → logits
[-1, 3], labels red/green/blue: a picture's dominant colour is its top label. ``iris``: the
``linear`` model (x float32 [-1, 4] → y [-1, 3], label) fed by four named features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelfn.bundle.manifest import Manifest, TensorSpec
from modelfn.bundle.processing import ImageProcessing, OutputProcessing, Processing, RecordProcessing
from modelfn.loader import LoadedBundle
from tests.processing.images_util import encode
from tests.serving.tiny_models import LABELS, _bundle, linear_onnx, manifest

COLOURS = ["red", "green", "blue"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IMAGE = ImageProcessing(input="image", size=[8, 8], resize=10, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])


def image_onnx() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "b"], ["logits"]),
        ],
        "colour",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [
            numpy_helper.from_array(np.eye(3, dtype=np.float32) * 10, "W"),
            numpy_helper.from_array(np.zeros(3, dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return bytes(model.SerializeToString())


def image_manifest(*, top_k: int = 2) -> Manifest:
    return manifest(
        "colour",
        [TensorSpec(name="image", dtype="float32", shape=[-1, 3, 8, 8])],
        [TensorSpec(name="logits", dtype="float32", shape=[-1, 3])],
        labels=list(COLOURS),
    ).replace(
        processing=Processing(image=IMAGE, output=OutputProcessing(output="logits", activation="softmax", top_k=top_k))
    )


def image_bundle() -> LoadedBundle:
    return _bundle(image_onnx(), image_manifest())


def iris_manifest() -> Manifest:
    return manifest(
        "iris",
        [TensorSpec(name="x", dtype="float32", shape=[-1, 4])],
        [TensorSpec(name="y", dtype="float32", shape=[-1, 3]), TensorSpec(name="label", dtype="int64", shape=[-1])],
        labels=list(LABELS),
    ).replace(
        processing=Processing(
            records=RecordProcessing(input="x", features=FEATURES),
            output=OutputProcessing(output="y", activation="softmax"),
        )
    )


def iris_bundle() -> LoadedBundle:
    return _bundle(linear_onnx(), iris_manifest())


def write_image_bundle(out: Path) -> Path:
    """An unsigned bundle directory of the colour model (for ``tests.fixtures.bundles.publish``)."""
    out.mkdir(parents=True)
    (out / "model.onnx").write_bytes(image_onnx())
    (out / "manifest.json").write_bytes(image_manifest().to_json())
    return out


def solid(colour: str, fmt: str = "PNG", size: tuple[int, int] = (40, 30)) -> bytes:
    """A picture mostly of one colour (with a little texture), encoded."""
    from PIL import Image

    rgb = {"red": (220, 40, 30), "green": (30, 200, 40), "blue": (20, 40, 210)}[colour]
    pixels = np.empty((size[1], size[0], 3), dtype=np.uint8)
    pixels[:] = rgb
    pixels[::4, ::4] = 128
    return encode(Image.fromarray(pixels), fmt, quality=90)
