"""Warm Lambda-path overhead: HTTP API v2 event → modelfn handler → response, beside raw session.run.

Same process, same model, same input (batch 1): (a) ``session.run`` on a ready numpy array (the
floor); (b) the lean router alone (``routes.dispatch``: JSON decode, validate, run, encode);
(c) the whole Lambda path (``Mangum(create_app(state))`` with an HTTP API v2 event, as
``modelfn.handlers.http.handler`` runs it). Overhead = p50(variant) − p50(raw). Goal for the MLP at
batch 1: ≤ 0.1 ms for (c).

Usage: python bench/bench_handler.py [--models mlp,cnn] [--budget 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import INPUT_SHAPES, ensure_models, publish_onnx, save


def timeit(fn: Callable[[], object], budget_s: float, min_iters: int = 200) -> list[float]:
    for _ in range(20):
        fn()
    samples: list[float] = []
    end = time.perf_counter() + budget_s
    while len(samples) < min_iters or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if len(samples) >= 20000:
            break
    return samples


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples) * 1e3, 4),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1e3, 4),
    }


def measure(name: str, workdir: Path, budget_s: float) -> dict[str, object]:
    """Publish one model, load it like the handler does, and time the three variants."""
    import numpy as np
    from mangum import Mangum

    from modelfn.config import Settings
    from modelfn.invoke import LocalLambdaContext, http_api_event
    from modelfn.serving.asgi import create_app
    from modelfn.serving.routes import dispatch
    from modelfn.serving.state import ModelState

    env = publish_onnx(name, str(workdir / "store"), workdir / "keys")
    state = ModelState.load(Settings.load(environ=env, threads=1))
    bundle = state.require()
    x = np.random.default_rng(0).standard_normal((1, *INPUT_SHAPES[name])).astype(np.float32)
    session = bundle.model._session
    feed = {bundle.manifest.inputs[0].name: x}
    body = json.dumps({"instances": x.tolist()}).encode()
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    handler = Mangum(create_app(state), lifespan="off")
    event = http_api_event(body)
    event["body"], event["isBase64Encoded"] = body.decode(), False
    context = LocalLambdaContext(timeout_s=3600)
    assert handler(event, context)["statusCode"] == 200
    assert dispatch(state, "POST", "/predict", headers, body).status == 200

    raw = stats(timeit(lambda: session.run(None, feed), budget_s))
    router = stats(timeit(lambda: dispatch(state, "POST", "/predict", headers, body), budget_s))
    lambda_path = stats(timeit(lambda: handler(event, context), budget_s))
    return {
        "raw_session_run": raw,
        "lean_router": router,
        "lambda_handler": lambda_path,
        "router_overhead_ms": round(router["p50_ms"] - raw["p50_ms"], 4),
        "handler_overhead_ms": round(lambda_path["p50_ms"] - raw["p50_ms"], 4),
        "body_bytes": len(body),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--budget", type=float, default=5.0)
    args = parser.parse_args()
    names = args.models.split(",")
    ensure_models(names)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            row = measure(name, Path(tmp) / name, args.budget)
            results[name] = row
            raw = row["raw_session_run"]["p50_ms"]  # type: ignore[index]
            print(f"{name:4s} raw {raw:.4f} ms  router +{row['router_overhead_ms']:.4f} ms"
                  f"  lambda handler +{row['handler_overhead_ms']:.4f} ms  (p50)", flush=True)  # fmt: skip
    save("handler", results)


if __name__ == "__main__":
    main()
