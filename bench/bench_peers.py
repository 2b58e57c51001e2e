"""``modelfn serve`` beside FastAPI+uvicorn+onnxruntime, MLServer and BentoML, in one run (bench/peers/).

Each peer is installed on first use into its own virtual environment under bench/.venvs/ (pinned
versions: bench/peers/envs.py). Per model, every server is cold-started ``--repeats`` times in
alternating rounds (spawn → first good answer); in the first round each also gets warm latency
(``--n`` sequential keep-alive requests) and throughput at 1/8/32/128 concurrent clients for
``--seconds`` each. A server that cannot be installed or started is reported with its error, never
dropped. Ratios in bench/results/latest.md: modelfn ÷ peer, same model, same run.

Usage: python bench/bench_peers.py [--quick] [--models rf,mlp] [--systems modelfn,fastapi,mlserver,bento]
                                   [--n 500] [--repeats 3] [--seconds 3] [--concurrency 1,8,32,128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ensure_models, save
from peers.load import measure
from peers.servers import BUILDERS, SYSTEMS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="modelfn and FastAPI on the MLP, 1 round, short load")
    parser.add_argument("--models", default="rf,mlp")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", default="1,8,32,128")
    args = parser.parse_args()
    if args.quick:
        args.models, args.systems, args.n, args.repeats, args.seconds = "mlp", "modelfn,fastapi", 100, 1, 1.0
    models, systems = args.models.split(","), args.systems.split(",")
    levels = tuple(int(c) for c in args.concurrency.split(","))
    ensure_models(models)
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / "peers-servers.log"
    results: dict[str, Any] = {"n": args.n, "repeats": args.repeats, "seconds": args.seconds, "servers": {}}
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        for round_ in range(args.repeats):
            for model in models:
                for system in systems:
                    name = f"{system}-{model}"
                    if round_ and not runs.get(name):
                        continue  # failed in the first round: reported once
                    try:
                        server = BUILDERS[system](model, Path(tmp))
                        first = round_ == 0
                        row = measure(server, log, n=args.n if first else 0, seconds=args.seconds if first else 0,
                                      levels=levels)  # fmt: skip
                    except Exception as exc:  # one broken peer must not hide the others
                        results["servers"][name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                        print(f"{name:14s} FAILED {exc}", flush=True)
                        runs[name] = []
                        continue
                    runs.setdefault(name, []).append(row)
                    warm = row.get("warm", {})
                    rps = {c: t["requests_per_s"] for c, t in row.get("throughput", {}).items()}
                    print(f"{name:14s} round {round_}: cold {row['cold_ms']:8.1f} ms"
                          + (f"   warm p50 {warm['p50_ms']:.3f} ms p99 {warm['p99_ms']:.3f} ms" if warm else "")
                          + (f"   req/s {rps}" if rps else ""), flush=True)  # fmt: skip
    for name, rows in runs.items():
        if rows:
            colds = sorted(r["cold_ms"] for r in rows)
            results["servers"][name] = {**rows[0], "cold_ms_all": colds, "cold_ms_p50": statistics.median(colds)}
    save("peers", results)


if __name__ == "__main__":
    main()
