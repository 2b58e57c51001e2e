"""Warm Lambda-path overhead: HTTP API v2 event → modelfn handler → response, beside raw session.run.

Same process, same model, same input (batch 1): (a) ``session.run`` on a ready numpy array (the
floor); (b) the lean router alone (``routes.dispatch``: JSON decode, validate, run, encode);
(c) the whole Lambda path (``lambda_http_handler(create_app(state))`` with an HTTP API v2 event,
as ``modelfn.handlers.http.handler`` runs it); (c') the same app through Mangum's own ASGI cycle
(what the handler ran before, for comparison); (d) (c) with Lambda observability on (Powertools JSON
logger, one EMF line per invocation written to /dev/null); (e) (c) with the container's Prometheus
mirror installed. (a), (b), (c) and (c') are timed interleaved, in rounds of up to 200 calls each, so a
busy machine slows them alike. Overhead = p50(variant) − p50(raw). Goal for the MLP at batch 1:
≤ 0.1 ms for (c).

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
from typing import Any

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


def interleaved(
    variants: dict[str, Callable[[], object]], budget_s: float, rounds_min: int = 10
) -> dict[str, list[float]]:
    """Samples per variant, timed in alternating rounds (up to 200 calls) until ``budget_s`` per variant is spent."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    per_round = 200
    for fn in variants.values():
        t0 = time.perf_counter()
        for _ in range(20):
            fn()
        per_round = min(per_round, max(5, int(0.05 / max((time.perf_counter() - t0) / 20, 1e-9))))
    end = time.perf_counter() + budget_s * len(variants)
    rounds = 0
    while rounds < rounds_min or time.perf_counter() < end:
        for name, fn in variants.items():
            out = samples[name]
            for _ in range(per_round):  # 200 calls of a fast model, fewer of a slow one (~50 ms a round)
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
        rounds += 1
        if rounds >= 100:
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
    from modelfn.handlers._base64_body import HANDLERS
    from modelfn.handlers.lambda_http import lambda_http_handler
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
    app = create_app(state)
    handler = lambda_http_handler(app)
    mangum_cycle = Mangum(app, lifespan="off", custom_handlers=HANDLERS)
    event = http_api_event(body)
    event["body"], event["isBase64Encoded"] = body.decode(), False
    context = LocalLambdaContext(timeout_s=3600)
    assert handler(event, context) == mangum_cycle(event, context)
    assert handler(event, context)["statusCode"] == 200
    assert dispatch(state, "POST", "/predict", headers, body).status == 200

    timed = interleaved(
        {
            "raw": lambda: session.run(None, feed),
            "router": lambda: dispatch(state, "POST", "/predict", headers, body),
            "handler": lambda: handler(event, context),
            "mangum": lambda: mangum_cycle(event, context),
        },
        budget_s,
    )
    raw, router, lambda_path, mangum_path = (stats(timed[k]) for k in ("raw", "router", "handler", "mangum"))
    emf_path, prometheus_path = observed(handler, state, event, context, budget_s)
    return {
        "raw_session_run": raw,
        "lean_router": router,
        "lambda_handler": lambda_path,
        "router_overhead_ms": round(router["p50_ms"] - raw["p50_ms"], 4),
        "handler_overhead_ms": round(lambda_path["p50_ms"] - raw["p50_ms"], 4),
        "mangum_cycle": mangum_path,
        "mangum_cycle_overhead_ms": round(mangum_path["p50_ms"] - raw["p50_ms"], 4),
        "lambda_handler_emf_logs": emf_path,
        "observability_emf_overhead_ms": round(emf_path["p50_ms"] - lambda_path["p50_ms"], 4),
        "asgi_app_prometheus": prometheus_path,
        "observability_prometheus_overhead_ms": round(prometheus_path["p50_ms"] - lambda_path["p50_ms"], 4),
        "body_bytes": len(body),
    }


def observed(
    handler: Callable[[Any, Any], Any], state: Any, event: Any, context: Any, budget_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """The Lambda path with EMF + JSON logs on (stdout to /dev/null), then with the Prometheus mirror."""
    import contextlib
    import os

    from modelfn.serving.metrics import METRICS
    from modelfn.serving.observability import LambdaObservability
    from modelfn.serving.observability_prometheus import install

    lambda_env = {
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "POWERTOOLS_SERVICE_NAME": "bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }  # as deployed: no X-Ray SDK in the zip
    obs = LambdaObservability(state.settings.replace(emf_metrics="on"), environ=lambda_env)
    obs.serve(state)
    wrapped = obs.wrap(handler)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        emf = stats(timeit(lambda: wrapped(event, context), budget_s))
    METRICS.remove_sink(obs._to_emf)
    install()
    prometheus = stats(timeit(lambda: handler(event, context), budget_s))
    return emf, prometheus


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
                  f"  lambda handler +{row['handler_overhead_ms']:.4f} ms  (p50)"
                  f"  mangum cycle +{row['mangum_cycle_overhead_ms']:.4f} ms"
                  f"  EMF+logs +{row['observability_emf_overhead_ms']:.4f} ms"
                  f"  prometheus +{row['observability_prometheus_overhead_ms']:.4f} ms", flush=True)  # fmt: skip
    save("handler", results)


if __name__ == "__main__":
    main()
