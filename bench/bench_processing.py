"""Image preprocessing cost, and an image request vs a JSON float body vs a raw tensor body on the Lambda path.

One process, one 640x480 JPEG (q90, a smooth picture with noise), ImageNet preprocessing
(Resize(256) + CenterCrop(224) + ToTensor + Normalize) and a small model on [N, 3, 224, 224]
(GlobalAveragePool → Gemm → 10 logits, softmax + labels declared). Variants, alternated round by
round so machine load hits them alike: (a) ``decode_image`` alone; (b) raw ``session.run`` on the
preprocessed tensor (the floor); (c) the whole Lambda path (Mangum + HTTP API v2 event, base64
body) with the JPEG; (d) the same with the 150,528 floats as JSON ``instances``; (e) the same with
the float32 tensor as an ``application/octet-stream`` body. Reports request bytes and p50/p90.

Usage: python bench/bench_processing.py [--rounds 15] [--per-round 10]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _jpeg() -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (32, 42, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((640, 480), Image.Resampling.BICUBIC)).astype(np.int16)
    noisy = np.clip(smooth + rng.integers(-12, 12, smooth.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _bundle() -> Any:
    import datetime as dt

    from onnx import TensorProto, helper, numpy_helper

    from modelfn.bundle.manifest import FrameworkInfo, Manifest, TensorSpec
    from modelfn.bundle.processing import IMAGENET_MEAN, IMAGENET_STD, ImageProcessing, OutputProcessing, Processing
    from modelfn.loader import LoadedBundle
    from modelfn.runtime.onnx_session import OnnxModel

    weights = np.random.default_rng(1).normal(size=(3, 10)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W"], ["logits"]),
        ],
        "bench",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(weights, "W")],
    )
    onnx_bytes = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()
    image = ImageProcessing(
        input="image", size=[224, 224], resize=256, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)
    )
    manifest = Manifest(
        name="bench", version=1, framework=FrameworkInfo(name="onnx"),
        inputs=[TensorSpec(name="image", dtype="float32", shape=[-1, 3, 224, 224])],
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[-1, 10])],
        labels=[f"class{i}" for i in range(10)],
        processing=Processing(image=image, output=OutputProcessing(output="logits", activation="softmax")),
        created_at=dt.datetime.now(dt.UTC), modelfn_version="bench",
    )  # fmt: skip
    model = OnnxModel(bytes(onnx_bytes), manifest, threads=1, providers=["CPUExecutionProvider"])
    now = dt.datetime.now(dt.UTC)
    return LoadedBundle(manifest=manifest, model=model, root_digest="ab" * 32, key_hint="k", verified_at=now)


def _event(body: bytes, content_type: str) -> dict[str, Any]:
    from modelfn.invoke import http_api_event

    event = http_api_event(body)
    event["headers"]["content-type"] = content_type
    return event


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=10)
    args = parser.parse_args()

    from mangum import Mangum

    from modelfn.config import Settings
    from modelfn.invoke import LocalLambdaContext
    from modelfn.processing.images import decode_image
    from modelfn.serving.asgi import create_app
    from modelfn.serving.state import ModelState

    bundle = _bundle()
    spec = bundle.manifest.processing.image
    jpeg = _jpeg()
    tensor = decode_image(jpeg, spec, field="image")[None]
    handler = Mangum(create_app(ModelState(Settings(model_name="bench"), bundle=bundle)), lifespan="off")
    json_body = json.dumps({"instances": tensor.tolist()}).encode()
    raw_body = tensor.tobytes()
    events = {
        "lambda_jpeg": _event(jpeg, "image/jpeg"),
        "lambda_json_floats": _event(json_body, "application/json"),
        "lambda_octet_stream": _event(raw_body, "application/octet-stream"),
    }
    sizes = {"lambda_jpeg": len(jpeg), "lambda_json_floats": len(json_body), "lambda_octet_stream": len(raw_body)}

    def invoke(name: str) -> Callable[[], object]:
        def call() -> object:
            response = handler(events[name], LocalLambdaContext())
            assert response["statusCode"] == 200, response["body"][:200]
            return response

        return call

    variants: dict[str, Callable[[], object]] = {
        "decode_image": lambda: decode_image(jpeg, spec, field="image"),
        "session_run": lambda: bundle.model.predict({"image": tensor}),
        **{name: invoke(name) for name in events},
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            for _ in range(args.per_round):
                start = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - start)
    floor = statistics.median(timings["session_run"])
    report = {
        name: {
            "p50_ms": round(statistics.median(values) * 1e3, 3),
            "p90_ms": round(sorted(values)[int(len(values) * 0.9)] * 1e3, 3),
            "over_session_run_ms": round((statistics.median(values) - floor) * 1e3, 3),
            **(
                {"request_bytes": sizes[name], "event_bytes": len(base64.b64encode(b"x" * sizes[name]))}
                if name in sizes
                else {}
            ),
        }  # fmt: skip
        for name, values in timings.items()
    }
    print(
        json.dumps({"jpeg": "640x480 q90", "preprocess": "Resize(256)+CenterCrop(224)+Normalize", **report}, indent=2)
    )


if __name__ == "__main__":
    main()
