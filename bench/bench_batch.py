"""Batch rows/s through the storage-event handler (S3 GET/PUT on moto, CSV), beside a raw onnxruntime loop.

Per model: the same rows (a) already in memory as one float32 array, run through ``session.run`` in
chunks of ``--chunk`` rows (the floor: no parsing, no I/O), and (b) as a CSV object on moto_server,
announced by an S3 ObjectCreated event to ``build_storage_handler`` (what
``modelfn.handlers.storage_event.handler`` is): GET, parse, predict, format, conditional PUT or
multipart upload. Ratio = rows/s(b) / rows/s(a); goal ≥ 0.8. The handler's own phase timings
(read = GET + parse, predict, write = format + upload) show where the time goes.

Also: peak RSS growth while one object of 10 chunks is scored, in a fresh process (VmHWM after
resetting the load phase's peak, as tests/batch/test_memory.py measures it).

Usage: python bench/bench_batch.py [--rf-rows 100000] [--mlp-rows 10000] [--chunk 10000] [--runs 5]
The MLP takes 784 features: 100k rows of it is a ~270 MB CSV, so its default row count is lower.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODELS, ensure_models, publish_onnx, reference_module, save

RSS_CHILD = """
import json, sys
from modelfn.batch.job import score_object
from modelfn.batch.sink import output_for
from modelfn.config import Settings
from modelfn.loader import load_bundle
from modelfn.store.registry import store_for

def status(field):
    return 1024 * int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])

bundle = load_bundle(Settings.load())
store, out = store_for(sys.argv[1]), output_for(sys.argv[3])
store.list(sys.argv[2]), out.exists("warm-up")
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")
outcome = score_object(bundle, store, sys.argv[2], out, chunk_rows=int(sys.argv[4]))
print(json.dumps({"rss_before": before, "peak": status("VmHWM:"), "rows": outcome.rows}))
"""


def rows_for(name: str, count: int) -> Any:
    """Input rows: the digits images for the RF (64 features), 0-255 pixels for the MLP (784)."""
    import numpy as np

    if name == "rf":
        digits = np.load(MODELS / "digits_X.npy").astype(np.float32)
        return digits[np.arange(count) % len(digits)]
    return np.random.default_rng(0).integers(0, 256, size=(count, 784)).astype(np.float32)


def to_csv(x: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    header = ",".join(f"f{i}" for i in range(x.shape[1]))
    np.savetxt(buffer, x, delimiter=",", header=header, comments="", fmt="%.6g")
    return buffer.getvalue()


def raw_session(onnx_path: Path) -> Any:
    """The floor: an onnxruntime session with default threads, like the handler's."""
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def raw_pass(session: Any, x: Any, chunk: int) -> float:
    """Seconds for one session.run pass over in-memory chunks of ``x``."""
    name = session.get_inputs()[0].name
    t0 = time.perf_counter()
    for start in range(0, len(x), chunk):
        session.run(None, {name: x[start : start + chunk]})
    return time.perf_counter() - t0


def s3_event(bucket: str, key: str, size: int, etag: str) -> dict[str, Any]:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "eTag": etag}},
    }
    return {"Records": [record]}


def measure(name: str, rows: int, chunk: int, runs: int, work: Path, endpoint: str) -> dict[str, Any]:
    import boto3

    from modelfn.batch.trigger import build_storage_handler
    from modelfn.config import Settings

    client = boto3.client("s3")
    x = rows_for(name, rows)
    data = to_csv(x)
    env = publish_onnx(name, "s3://bench-models/models", work / "keys")
    settings = Settings.load(environ=env, output_url="s3://bench-out/results", input_url="s3://bench-in/incoming",
                             chunk_rows=chunk, model_version="1")  # fmt: skip
    handler = build_storage_handler(settings)
    session = raw_session(MODELS / f"{name}.onnx")
    raw_pass(session, x[:chunk], chunk)
    walls: list[float] = []
    raws: list[float] = []
    phases: list[dict[str, float]] = []
    for run in range(runs):  # interleaved, best of each: the machine's other load hits both alike
        raws.append(raw_pass(session, x, chunk))
        key = f"incoming/{name}-{run}.csv"
        etag = client.put_object(Bucket="bench-in", Key=key, Body=data)["ETag"].strip('"')
        t0 = time.perf_counter()
        answer = handler(s3_event("bench-in", key, len(data), etag), None)
        walls.append(time.perf_counter() - t0)
        out_key = answer["results"][0]["output"].removeprefix("s3://bench-out/")
        meta = json.loads(client.get_object(Bucket="bench-out", Key=out_key + ".meta.json")["Body"].read())
        phases.append(meta["timings"])
    handler_rps = rows / min(walls)
    raw_rps = rows / min(raws)
    best = phases[walls.index(min(walls))]
    return {
        "rows": rows,
        "csv_mb": round(len(data) / 1e6, 2),
        "chunk_rows": chunk,
        "handler_rows_per_s": round(handler_rps),
        "raw_ort_rows_per_s": round(raw_rps),
        "ratio": round(handler_rps / raw_rps, 3),
        "handler_wall_s": [round(w, 3) for w in walls],
        "best_run_phases_s": {k: round(v, 3) for k, v in best.items()},
    }


def peak_rss(rows_per_chunk: int, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Peak RSS growth scoring an RF CSV of 10 chunks from and to S3, in a fresh process."""
    import boto3

    data = to_csv(rows_for("rf", 10 * rows_per_chunk))
    boto3.client("s3").put_object(Bucket="bench-in", Key="incoming/rss.csv", Body=data)
    args = ["s3://bench-in/incoming", "rss.csv", "s3://bench-out/rss", str(rows_per_chunk)]
    child = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, *args], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    report = json.loads(child.stdout.splitlines()[-1])
    return {
        "rows": report["rows"],
        "chunk_rows": rows_per_chunk,
        "input_mb": round(len(data) / 2**20, 2),
        "rss_before_mb": round(report["rss_before"] / 2**20, 1),
        "peak_mb": round(report["peak"] / 2**20, 1),
        "growth_mb": round((report["peak"] - report["rss_before"]) / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rf-rows", type=int, default=100_000)
    ap.add_argument("--mlp-rows", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    ensure_models(["rf", "mlp"])
    moto = reference_module("_moto")
    results: dict[str, Any] = {"models": {}}
    with moto.moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        import boto3

        client = boto3.client("s3")
        for bucket in ("bench-models", "bench-in", "bench-out"):
            client.create_bucket(Bucket=bucket)
        work = Path(tmp)
        for name, rows in (("rf", args.rf_rows), ("mlp", args.mlp_rows)):
            results["models"][name] = measure(name, rows, args.chunk, args.runs, work, endpoint)
            print(name, json.dumps(results["models"][name]))
        env = {"MODELFN_STORE_URL": "s3://bench-models/models", "MODELFN_MODEL_NAME": "rf",
               "MODELFN_TRUSTED_KEYS": str(work / "keys" / "bench.pub"), "AWS_ENDPOINT_URL": endpoint}  # fmt: skip
        results["peak_rss_10_chunks"] = peak_rss(args.chunk, work, env)
        print("peak rss", json.dumps(results["peak_rss_10_chunks"]))
    results["cpus"] = os.cpu_count()
    results["median_ratio"] = statistics.median(m["ratio"] for m in results["models"].values())
    save("bench_batch", results)


if __name__ == "__main__":
    main()
