"""Large tensors over the Lambda path: JSON, V2 binary, octet-stream and .npy bodies beside raw session.run.

Two CNNs on a 3×224×224 float32 input (602,112 bytes), batch 1: a ResNet-18-shaped one (4 stages ×
2 basic blocks, 64-512 channels, ~11.7M parameters) and a small 4-conv one (~6 ms here). Both are
built with torch (seeded), exported to ONNX with a dynamic batch dimension and cached under
bench/results/models/. For each model, in one process: (a) ``session.run`` on a ready array (the
floor); the Lambda path, ``lambda_http_handler(create_app(state))`` as ``modelfn.handlers.http.handler``
runs it, fed API Gateway HTTP API v2 events with (b) a JSON ``/predict`` body (text, as API Gateway
passes JSON), (c) a V2 binary-extension body, (d) an ``application/octet-stream`` body, (e) an
``application/x-npy`` body, (c-e) base64-encoded as API Gateway and Function URLs pass binary; (f) (d)
through stock Mangum and its stdlib base64 decode. (c-e) also go straight to ``routes.dispatch`` with
the decoded body (``dispatch_*``: the serving modules' own cost, without the Lambda front door).
Variants are timed interleaved (one call of each in turn) so machine load hits them alike. Also: the
JSON routers (``routes.dispatch`` minus raw) ÷ ``orjson.loads`` of the same body, for ``/predict``
(``json``) and for a V2 JSON request with flat data (``json_v2``). Goals: (d)/(c)/(e) ≤ 5 % over raw
for the ResNet-18-sized CNN, ≤ 10 % for the ~6 ms one; JSON router ≤ 1.3× orjson.loads. A third
model, ``probe`` (a per-channel mean, ~0.05 ms), shows each path's own cost in ms with little
run time around it, the figure least disturbed by a loaded machine.

Usage: python bench/bench_large_tensors.py [--rounds 5] [--iters 20] [--threads 1] [--providers cpu] [--build-only]
On a GPU machine: bench/gpu_check.sh (the same with --providers cuda: raw is onnxruntime-gpu's session.run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODELS, save

SHAPE = (3, 224, 224)
MODEL_FILES = {"resnet18": "large_resnet18.onnx", "cnn6ms": "large_cnn6ms.onnx", "probe": "large_probe.onnx"}


def torch_model(name: str) -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x: Any) -> Any:
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.down(x))

    torch.manual_seed(0)
    if name == "resnet18":
        stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        layers: list[nn.Module] = list(stem)
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    else:
        layers, cin = [], 3
        for cout in (48, 96, 192, 320):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.ReLU()]
            cin = cout
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers, *head).eval()  # fmt: skip


def ensure_model(name: str) -> Path:
    """Build, export and cache one CNN (dynamic batch, input ``input``, output ``logits``)."""
    path = MODELS / MODEL_FILES[name]
    if path.exists():
        return path
    if name == "probe":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(probe_onnx())
        return path
    import torch

    MODELS.mkdir(parents=True, exist_ok=True)
    module = torch_model(name)
    sample = torch.zeros(1, *SHAPE)
    torch.onnx.export(
        module, (sample,), str(path), input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    return path


def probe_onnx() -> bytes:
    """A per-channel mean over the same input: a ~0.05 ms run, so what remains is the path's own cost."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["logits"], axes=[2, 3], keepdims=0)],
        "probe",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *SHAPE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", SHAPE[0]])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return bytes(model.SerializeToString())


def served_state(path: Path, threads: int, providers: tuple[str, ...]) -> Any:
    """A ModelState over the ONNX file, built in memory (the warm path does not depend on signing)."""
    import onnxruntime as ort

    from modelfn.bundle.manifest import FrameworkInfo, Manifest, TensorSpec
    from modelfn.config import Settings
    from modelfn.loader import LoadedBundle
    from modelfn.runtime.onnx_session import OnnxModel
    from modelfn.serving.state import ModelState

    data = path.read_bytes()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    classes = session.get_outputs()[0].shape[1]
    manifest = Manifest(
        name="cnn", version=1, framework=FrameworkInfo(name="onnx"),
        inputs=[TensorSpec(name="input", dtype="float32", shape=[-1, *SHAPE])],
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[-1, classes])],
        created_at=dt.datetime.now(dt.UTC), modelfn_version="bench",
    )  # fmt: skip
    model = OnnxModel(data, manifest, threads=threads, providers=providers)
    model.warm_up()
    now = dt.datetime.now(dt.UTC)
    bundle = LoadedBundle(manifest=manifest, model=model, root_digest="0" * 64, key_hint="bench", verified_at=now)
    return ModelState(Settings(model_name="cnn", threads=threads, max_body_bytes=64 << 20), bundle=bundle)


def event(path: str, body: bytes, content_type: str, *, binary: bool, headers: dict[str, str] | None = None) -> Any:
    from modelfn.invoke import http_api_event

    out = http_api_event(body, path=path)
    out["headers"].update({"content-type": content_type, **(headers or {})})
    if not binary:  # API Gateway passes JSON (text) bodies as they are
        out["body"], out["isBase64Encoded"] = body.decode(), False
    return out


def variants(state: Any, x: Any) -> tuple[dict[str, Callable[[], object]], dict[str, int], Callable[[], object]]:
    """The timed callables, their request sizes, and orjson.loads of the JSON body."""
    import io

    import numpy as np
    import orjson
    from mangum import Mangum

    from modelfn.handlers.lambda_http import lambda_http_handler
    from modelfn.invoke import LocalLambdaContext
    from modelfn.serving.asgi import LeanApp, create_app
    from modelfn.serving.routes import dispatch

    bundle = state.require()
    session = bundle.model._session
    feed = {"input": x}
    json_body = orjson.dumps({"instances": x.tolist()})  # float64 digits, as clients holding lists send
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
    header = orjson.dumps({"inputs": [tensor]})
    npy = io.BytesIO()
    np.save(npy, x)
    events = {
        "json": event("/predict", json_body, "application/json", binary=False),
        "v2_binary": event(
            "/v2/models/cnn/infer",
            header + x.tobytes(),
            "application/octet-stream",
            binary=True,
            headers={"inference-header-content-length": str(len(header))},
        ),  # fmt: skip
        "octet_stream": event("/predict", x.tobytes(), "application/octet-stream", binary=True),
        "npy": event("/predict", npy.getvalue(), "application/x-npy", binary=True),
    }
    app = create_app(state)
    assert isinstance(app, LeanApp)
    fast = lambda_http_handler(app)
    stock = Mangum(create_app(state), lifespan="off")
    context = LocalLambdaContext(timeout_s=24 * 3600)
    expected = session.run(None, feed)[0]
    for name, ev in events.items():
        response = fast(ev, context)
        assert response["statusCode"] == 200, (name, response["body"][:300])
        payload = orjson.loads(response["body"])
        got = payload["predictions"] if "predictions" in payload else payload["outputs"][0]["data"]
        got = np.asarray(got, dtype=np.float32).reshape(expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    headers = {"content-type": "application/json", "content-length": str(len(json_body))}
    v2_tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
    v2_json = orjson.dumps({"inputs": [v2_tensor]})  # flat data, as tritonclient sends JSON tensors
    response = dispatch(state, "POST", "/v2/models/cnn/infer", headers, v2_json)
    got = np.asarray(orjson.loads(response.body)["outputs"][0]["data"], dtype=np.float32)
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)
    direct = {  # the decoded bodies and headers the routes see
        "v2_binary": ("/v2/models/cnn/infer", header + x.tobytes(), events["v2_binary"]["headers"]),
        "octet_stream": ("/predict", x.tobytes(), events["octet_stream"]["headers"]),
        "npy": ("/predict", npy.getvalue(), events["npy"]["headers"]),
    }
    timed: dict[str, Callable[[], object]] = {
        "raw_session_run": lambda: session.run(None, feed),
        "model_run_io_binding": lambda: bundle.model._run_bound(["logits"], feed),
        "json_router": lambda: dispatch(state, "POST", "/predict", headers, json_body),
        "json_v2_router": lambda: dispatch(state, "POST", "/v2/models/cnn/infer", headers, v2_json),
        "json_v2_router_general": lambda: general_decode(
            dispatch, state, "POST", "/v2/models/cnn/infer", headers, v2_json
        ),
        "orjson_loads_v2": lambda: orjson.loads(v2_json),
        **{f"lambda_{name}": (lambda ev=ev: fast(ev, context)) for name, ev in events.items()},
        "lambda_octet_stream_mangum": lambda: stock(events["octet_stream"], context),
        **{
            f"dispatch_{name}": (lambda p=p, b=b, h=h: dispatch(state, "POST", p, h, b))
            for name, (p, b, h) in direct.items()
        },
    }
    sizes = {f"lambda_{n}": len(ev["body"]) for n, ev in events.items()}
    sizes |= {f"dispatch_{n}": len(b) for n, (_, b, _) in direct.items()}
    sizes["json_router"], sizes["json_v2_router"] = len(json_body), len(v2_json)
    sizes["json_v2_router_general"] = len(v2_json)
    sizes["lambda_octet_stream_mangum"] = sizes["lambda_octet_stream"]
    return timed, sizes, lambda: orjson.loads(json_body)


def general_decode(fn: Callable[..., object], *args: Any) -> object:
    """``fn(*args)`` with typed_json's decoders off: the general path (orjson, numpy's discovery, a cast)."""
    from modelfn.serving import typed_json

    kept, typed_json.MIN_BODY_BYTES = typed_json.MIN_BODY_BYTES, 1 << 62
    try:
        return fn(*args)
    finally:
        typed_json.MIN_BODY_BYTES = kept


def measure(name: str, rounds: int, iters: int, threads: int, providers: tuple[str, ...]) -> dict[str, Any]:
    import numpy as np

    state = served_state(ensure_model(name), threads, providers)
    x = np.random.default_rng(0).standard_normal((1, *SHAPE)).astype(np.float32)
    timed, sizes, parse = variants(state, x)
    timed["orjson_loads"] = parse
    samples: dict[str, list[float]] = {k: [] for k in timed}
    for fn in timed.values():
        for _ in range(3):
            fn()
    order = list(timed)
    shuffle = random.Random(0).shuffle
    for _ in range(rounds * iters):  # interleaved: one call of every variant in turn, so load hits them alike,
        shuffle(order)  # in a new order each time: a call right after a 3 MB JSON parse finds the caches cold
        for key in order:
            fn = timed[key]
            t0 = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - t0)
    p50 = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    raw = p50["raw_session_run"]
    out: dict[str, Any] = {
        "raw_session_run_p50_ms": round(raw, 3),
        "io_binding_run_p50_ms": round(p50["model_run_io_binding"], 3),
        "providers": list(state.require().model.providers),
        "io_binding_on_the_lambda_path": state.require().model.io_binding,
    }
    for key in timed:
        if key.startswith(("lambda_", "dispatch_")):
            out[key] = {
                "p50_ms": round(p50[key], 3),
                "overhead_ms": round(p50[key] - raw, 3),
                "overhead_pct": round((p50[key] - raw) / raw * 100, 2),
                "ratio_to_raw": round(p50[key] / raw, 4),
                "request_bytes": sizes[key],
            }
    router_added = p50["json_router"] - raw
    out["json"] = {
        "body_bytes": sizes["json_router"],
        "router_p50_ms": round(p50["json_router"], 3),
        "orjson_loads_p50_ms": round(p50["orjson_loads"], 3),
        "router_added_ms": round(router_added, 3),
        "router_added_over_orjson_loads": round(router_added / p50["orjson_loads"], 3),
        "decode_options_p50_ms": json_options(x, rounds),
    }
    v2_added = p50["json_v2_router"] - raw
    out["json_v2"] = {
        "body_bytes": sizes["json_v2_router"],
        "router_p50_ms": round(p50["json_v2_router"], 3),
        "orjson_loads_p50_ms": round(p50["orjson_loads_v2"], 3),
        "router_added_ms": round(v2_added, 3),
        "router_added_over_orjson_loads": round(v2_added / p50["orjson_loads_v2"], 3),
        "general_router_p50_ms": round(p50["json_v2_router_general"], 3),
        "general_router_added_over_orjson_loads": round(
            (p50["json_v2_router_general"] - raw) / p50["orjson_loads_v2"], 3
        ),
    }
    return out


def json_options(x: Any, rounds: int) -> dict[str, float]:
    """Ways to turn the same JSON body into a float32 array, each timed interleaved with the others."""
    import itertools

    import msgspec
    import numpy as np
    import orjson

    body = orjson.dumps({"instances": x.tolist()})
    typed = msgspec.json.Decoder(dict[str, list[list[list[list[float]]]]])

    def rows(data: Any) -> list[Any]:
        return [r for a in data["instances"] for b in a for r in b]

    options: dict[str, Callable[[], object]] = {
        "orjson_loads": lambda: orjson.loads(body),
        "orjson_then_asarray_float64_then_cast": lambda: np.asarray(orjson.loads(body)["instances"]).astype(np.float32),
        "orjson_then_asarray_float32": lambda: np.asarray(orjson.loads(body)["instances"], dtype=np.float32),
        "msgspec_typed_then_asarray_float32": lambda: np.asarray(typed.decode(body)["instances"], dtype=np.float32),
        "orjson_then_fromiter_rows": lambda: np.fromiter(
            itertools.chain.from_iterable(rows(orjson.loads(body))), np.float32, x.size
        ),
        "fromstring_text": lambda: np.fromstring(body[13:-1].translate(None, b"[]"), dtype=np.float32, sep=","),
    }
    samples: dict[str, list[float]] = {k: [] for k in options}
    for _ in range(max(3, rounds)):
        for key, fn in options.items():
            t0 = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - t0)
    return {k: round(statistics.median(v) * 1e3, 3) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,cnn6ms,probe")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--providers", default="cpu", help="MODELFN_PROVIDERS for the served model (e.g. cuda)")
    parser.add_argument("--out", default="large_tensors")
    parser.add_argument("--build-only", action="store_true", help="build and cache the ONNX models, then stop")
    args = parser.parse_args()
    if args.build_only:
        for name in args.models.split(","):
            print("built", ensure_model(name))
        return
    goals = {"resnet18": 5.0, "cnn6ms": 10.0}
    results: dict[str, Any] = {"threads": args.threads, "rounds": args.rounds, "iters": args.iters}
    for name in args.models.split(","):
        row = measure(name, args.rounds, args.iters, args.threads, tuple(args.providers.split(",")))
        row["goal_overhead_pct"] = goals.get(name)
        results[name] = row
        print(f"{name}: raw {row['raw_session_run_p50_ms']:.3f} ms on {row['providers'][0]}"
              f" (IO binding run {row['io_binding_run_p50_ms']:.3f} ms)", flush=True)  # fmt: skip
        for key, value in row.items():
            if key.startswith(("lambda_", "dispatch_")):
                print(f"  {key:36s} p50 {value['p50_ms']:8.3f} ms  +{value['overhead_ms']:7.3f} ms"
                      f"  ({value['overhead_pct']:6.2f} %, {value['ratio_to_raw']:.3f}x)"
                      f"  {value['request_bytes']:>9,d} B", flush=True)  # fmt: skip
        j = row["json"]
        print(f"  JSON router adds {j['router_added_ms']:.3f} ms = {j['router_added_over_orjson_loads']:.3f}× "
              f"orjson.loads ({j['orjson_loads_p50_ms']:.3f} ms, {j['body_bytes']:,d} B)", flush=True)  # fmt: skip
        j2 = row["json_v2"]
        print(f"  V2 JSON router adds {j2['router_added_ms']:.3f} ms = {j2['router_added_over_orjson_loads']:.3f}× "
              f"orjson.loads ({j2['orjson_loads_p50_ms']:.3f} ms, {j2['body_bytes']:,d} B); with the general decode "
              f"{j2['general_router_added_over_orjson_loads']:.3f}×", flush=True)  # fmt: skip
        print("  JSON decode options (p50 ms):", j["decode_options_p50_ms"], flush=True)
    save(args.out, results)


if __name__ == "__main__":
    main()
