"""Cold start: fresh process → first verified prediction, model on moto S3, beside the floor script.

For each model, alternates runs of (a) the reference floor script
(reference-bench/coldstart_child.py: import onnxruntime + boto3, S3 GET, sha256, Ed25519 verify,
InferenceSession, one run) and (b) modelfn's Lambda HTTP handler in a fresh interpreter (import
= init phase: resolve latest, fetch + verify the P-256 model-signing bundle, build + warm the
session; then one HTTP API v2 /predict event through Mangum). Reports median spawn-to-exit wall
times and the ratio modelfn / floor (goal ≤ 1.1). Resolving latest against many versions: bench_latest_versions.py.

Usage: python bench/bench_coldstart.py [--runs 7] [--models rf,mlp,cnn]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    INPUT_SHAPES,
    MODELS,
    REFERENCE,
    ensure_models,
    median_ms,
    publish_onnx,
    reference_module,
    save,
    wall_of,
)

CHILD = Path(__file__).resolve().parent / "coldstart_child.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--models", default="rf,mlp,cnn")
    args = parser.parse_args()
    names = args.models.split(",")
    ensure_models(names)
    moto = reference_module("_moto")
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ed_key = ed25519.Ed25519PrivateKey.generate()
    pub_hex = ed_key.public_key().public_bytes_raw().hex()
    results: dict[str, object] = {"runs": args.runs, "models": {}}
    with moto.moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        s3 = moto.s3_client(endpoint)
        s3.create_bucket(Bucket="bench")
        for name in names:
            blob = (MODELS / f"{name}.onnx").read_bytes()
            s3.put_object(Bucket="bench", Key=f"floor/{name}.onnx", Body=blob)
            sha = hashlib.sha256(blob).hexdigest()
            shape = ",".join(map(str, INPUT_SHAPES[name]))
            floor_args = [sys.executable, str(REFERENCE / "coldstart_child.py"), endpoint, "bench",
                          f"floor/{name}.onnx", sha, ed_key.sign(bytes.fromhex(sha)).hex(), pub_hex, shape]  # fmt: skip
            env = {**os.environ, **publish_onnx(name, "s3://bench/modelfn", Path(tmp) / "keys")}
            ours_args = [sys.executable, str(CHILD), shape]
            wall_of(floor_args), wall_of(ours_args, env)  # warm the page cache
            floor, ours, phases = [], [], []
            for _ in range(args.runs):
                floor.append(wall_of(floor_args)[0])
                wall, line = wall_of(ours_args, env)
                ours.append(wall)
                phases.append(json.loads(line))
            row = {
                "model_bytes": len(blob),
                "floor_ms_p50": median_ms(floor),
                "modelfn_ms_p50": median_ms(ours),
                "ratio": round(median_ms(ours) / median_ms(floor), 3),
                "modelfn_init_ms_p50": round(sorted(p["init_ms"] for p in phases)[len(phases) // 2], 1),
                "modelfn_first_request_ms_p50": round(
                    sorted(p["first_request_ms"] for p in phases)[len(phases) // 2], 1
                ),
            }
            results["models"][name] = row  # type: ignore[index]
            print(f"{name:4s} floor {row['floor_ms_p50']:8.1f} ms   modelfn {row['modelfn_ms_p50']:8.1f} ms"
                  f"   ratio {row['ratio']:.2f}   (init {row['modelfn_init_ms_p50']} ms,"
                  f" first request {row['modelfn_first_request_ms_p50']} ms)", flush=True)  # fmt: skip
    save("coldstart", results)


if __name__ == "__main__":
    main()
