"""Cold-start floor: fresh process → first verified prediction with no framework (bench/floor_child.py).

``prepare`` uploads a model to a moto S3 bucket, signs its SHA-256 with a fresh Ed25519 key and
returns the child's command line; bench/bench_coldstart.py alternates it with modelfn's Lambda
handler. Run alone, this script reports the floor's spawn-to-exit median and per-step breakdown, and
with ``--check-against-reference`` also runs ../shared/reference-bench/coldstart_child.py (same
argv) alternately, when that folder exists, so the two floors can be compared in one run.

Usage: python bench/floor.py [--models rf,mlp,cnn] [--runs 7] [--check-against-reference]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import INPUT_SHAPES, MODELS, REFERENCE, ensure_models, median_ms, save, wall_of
from _moto import moto_server, s3_client

CHILD = Path(__file__).resolve().with_name("floor_child.py")
BUCKET = "bench-floor"


def prepare(s3: Any, endpoint: str, name: str) -> list[str]:
    """Put ``MODELS/<name>.onnx`` in the floor's bucket (created if needed); return the child's argv."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    blob = (MODELS / f"{name}.onnx").read_bytes()
    s3.put_object(Bucket=BUCKET, Key=f"{name}.onnx", Body=blob)
    digest = hashlib.sha256(blob).digest()
    key = Ed25519PrivateKey.generate()
    shape = ",".join(map(str, INPUT_SHAPES[name]))
    pub = key.public_key().public_bytes_raw().hex()
    return [
        sys.executable,
        str(CHILD),
        endpoint,
        BUCKET,
        f"{name}.onnx",
        digest.hex(),
        key.sign(digest).hex(),
        pub,
        shape,
    ]


def reference_args(args: list[str]) -> list[str] | None:
    """The same run with the reference bench's floor child, or None when that folder is absent."""
    child = REFERENCE / "coldstart_child.py"
    return [args[0], str(child), *args[2:]] if child.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="rf,mlp,cnn")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--check-against-reference", action="store_true")
    args = parser.parse_args()
    names = args.models.split(",")
    ensure_models(names)
    results: dict[str, Any] = {"runs": args.runs, "models": {}}
    with moto_server() as endpoint:
        s3 = s3_client(endpoint)
        for name in names:
            ours = prepare(s3, endpoint, name)
            ref = reference_args(ours) if args.check_against_reference else None
            wall_of(ours)  # warm the page cache
            walls, refs, lines = [], [], []
            for _ in range(args.runs):
                wall, line = wall_of(ours)
                walls.append(wall)
                lines.append(json.loads(line))
                if ref:
                    refs.append(wall_of(ref)[0])
            row: dict[str, Any] = {
                "floor_ms_p50": median_ms(walls),
                "steps_ms_p50": {
                    k: round(statistics.median(x["steps_ms"][k] for x in lines), 1) for k in lines[0]["steps_ms"]
                },
            }
            if refs:
                row["reference_floor_ms_p50"] = median_ms(refs)
            results["models"][name] = row
            extra = f"   reference floor {row['reference_floor_ms_p50']:8.1f} ms" if refs else ""
            print(f"{name:4s} floor {row['floor_ms_p50']:8.1f} ms{extra}   {row['steps_ms_p50']}", flush=True)
    if args.check_against_reference and not REFERENCE.is_dir():
        print(f"no reference bench at {REFERENCE}: own floor only", flush=True)
    save("floor", results)


if __name__ == "__main__":
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    main()
