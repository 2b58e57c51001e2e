"""Cold start: fresh process → first verified prediction, model on moto S3, beside the floor script.

For each model, alternates runs of (a) the floor (bench/floor_child.py: import onnxruntime + boto3,
one S3 GET, sha256, Ed25519 verify, InferenceSession, one run) and (b) modelfn's Lambda HTTP handler
in a fresh interpreter, with the environment of an on-demand Lambda cold start (import = init phase:
resolve latest, fetch + verify the P-256 model-signing bundle, build the session, no warm-up run since
the first request waits for init; then one HTTP API v2 /predict event). The request
body (JSON zeros of the model's input shape) is written here, once, and read by the child: building it
is the client's work, not the function's. Reports median spawn-to-exit wall times and the ratio
modelfn / floor (goal ≤ 1.1). With --phases, further alternated rounds run both children with
per-phase timing (wall and process CPU: fetch, verify, guard, session, warm-up, first request...) and
print the two breakdowns. With --check-against-reference the reference bench's floor child
(../shared/reference-bench, when present) runs alternately too. Resolving latest against many
versions: bench_latest_versions.py.

Usage: python bench/bench_coldstart.py [--runs 7] [--models rf,mlp,cnn] [--phases] [--check-against-reference]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import INPUT_SHAPES, MODELS, REFERENCE, ensure_models, median_ms, publish_onnx, save, wall_of
from _moto import moto_server, s3_client
from floor import prepare, reference_args

CHILD = Path(__file__).resolve().parent / "coldstart_child.py"
LAMBDA_ON_DEMAND = {"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}
"""What Lambda sets for the init of an on-demand cold start, the case measured here."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--models", default="rf,mlp,cnn")
    parser.add_argument("--phases", action="store_true", help="also time each phase of both (alternated rounds)")
    parser.add_argument("--check-against-reference", action="store_true")
    args = parser.parse_args()
    names = args.models.split(",")
    ensure_models(names)
    results: dict[str, object] = {"runs": args.runs, "models": {}}
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket="bench")
        for name in names:
            floor_args = prepare(s3, endpoint, name)
            reference = reference_args(floor_args) if args.check_against_reference else None
            body = Path(tmp) / f"{name}-request.json"
            body.write_text(json.dumps({"instances": [_zeros(INPUT_SHAPES[name])]}))
            env = {**os.environ, **publish_onnx(name, "s3://bench/modelfn", Path(tmp) / "keys"), **LAMBDA_ON_DEMAND}
            ours_args = [sys.executable, str(CHILD), str(body)]
            wall_of(floor_args), wall_of(ours_args, env)  # warm the page cache
            floor, ours, phases, ref = [], [], [], []
            for _ in range(args.runs):
                floor.append(wall_of(floor_args)[0])
                wall, line = wall_of(ours_args, env)
                ours.append(wall)
                phases.append(json.loads(line))
                if reference:
                    ref.append(wall_of(reference)[0])
            row = {
                "model_bytes": (MODELS / f"{name}.onnx").stat().st_size,
                "floor_ms_p50": median_ms(floor),
                "modelfn_ms_p50": median_ms(ours),
                "ratio": round(median_ms(ours) / median_ms(floor), 3),
                "modelfn_init_ms_p50": round(sorted(p["init_ms"] for p in phases)[len(phases) // 2], 1),
                "modelfn_first_request_ms_p50": round(
                    sorted(p["first_request_ms"] for p in phases)[len(phases) // 2], 1
                ),
            }
            if ref:
                row["reference_floor_ms_p50"] = median_ms(ref)
                row["floor_vs_reference"] = round(median_ms(floor) / median_ms(ref), 3)
            if args.phases:
                row["phases"] = phase_breakdown(floor_args, ours_args, env, args.runs)
                print_phases(name, row["phases"])
            results["models"][name] = row  # type: ignore[index]
            if ref:
                print(f"{name:4s} reference floor {row['reference_floor_ms_p50']:8.1f} ms (own floor / reference"
                      f" {row['floor_vs_reference']:.2f})", flush=True)  # fmt: skip
            print(f"{name:4s} floor {row['floor_ms_p50']:8.1f} ms   modelfn {row['modelfn_ms_p50']:8.1f} ms"
                  f"   ratio {row['ratio']:.2f}   (init {row['modelfn_init_ms_p50']} ms,"
                  f" first request {row['modelfn_first_request_ms_p50']} ms)", flush=True)  # fmt: skip
    if args.check_against_reference and not REFERENCE.is_dir():
        print(f"no reference bench at {REFERENCE}: own floor only", flush=True)
    save("coldstart", results)


def _zeros(shape: tuple[int, ...]) -> Any:
    """Nested lists of 0.0 of ``shape`` (one row of the request body)."""
    return [0.0] * shape[-1] if len(shape) == 1 else [_zeros(shape[1:]) for _ in range(shape[0])]


def phase_breakdown(floor_args: list[str], ours_args: list[str], env: dict[str, str], runs: int) -> dict[str, Any]:
    """Median wall and process-CPU milliseconds per phase of both children, alternated round by round."""
    floors, ours = [], []
    for _ in range(runs):
        line = json.loads(wall_of(floor_args)[1])
        floors.append({k: [v, line["steps_cpu_ms"][k]] for k, v in line["steps_ms"].items()})
        ours.append(json.loads(wall_of([*ours_args, "--phases"], env)[1])["phases"])

    def medians(samples: list[dict[str, list[float]]]) -> dict[str, list[float]]:
        names = [n for n in samples[0] if all(n in s for s in samples)]
        return {n: [round(statistics.median(s[n][i] for s in samples), 1) for i in (0, 1)] for n in names}

    return {"floor": medians(floors), "modelfn": medians(ours)}


def print_phases(name: str, phases: dict[str, Any]) -> None:
    for side in ("floor", "modelfn"):
        steps = phases[side]
        print(f"{name:4s} {side} phases (median ms: wall / process CPU)", flush=True)
        for step, (wall, cpu) in steps.items():
            print(f"       {step:52s} {wall:8.1f} {cpu:8.1f}", flush=True)
        total = [round(sum(v[i] for v in steps.values()), 1) for i in (0, 1)]
        print(f"       {'sum':52s} {total[0]:8.1f} {total[1]:8.1f}", flush=True)


if __name__ == "__main__":
    main()
