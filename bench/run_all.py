"""Run the whole benchmark suite from a clone: build the models, run every benchmark, write the report.

    python bench/run_all.py                      # everything: ~15 min on 2 idle cores, more when loaded
    python bench/run_all.py --quick              # a short smoke run of every benchmark
    python bench/run_all.py --only coldstart,peers
    python bench/run_all.py --report-only        # latest.md + charts from the JSON already there

Each benchmark is ``python bench/<script> [args]`` in its own process (bench/registry.py), with its
output in results/logs/<name>.log; one that fails, times out or is not in this checkout is reported
as such in results/latest.md and the others still run. ``--check-against-reference`` also runs the
reference bench's floor script (../shared/reference-bench, when present) beside bench/floor.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT
from registry import BENCHES, Bench

HERE = Path(__file__).resolve().parent


def run_one(bench: Bench, quick: bool, reference: bool, logs: Path) -> dict[str, Any]:
    """Run one benchmark script; return its status (ok / failed / timed out / missing), seconds and log."""
    script = HERE / bench.script
    if not script.exists():
        return {"status": "missing"}
    args = [*(bench.quick if quick else bench.args)]
    if reference and bench.reference_flag:
        args.append("--check-against-reference")
    log = logs / f"{bench.name}.log"
    print(f"== {bench.name}: python bench/{bench.script} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    with log.open("w") as out:
        try:
            done = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=bench.timeout_s)  # fmt: skip
            status = "ok" if done.returncode == 0 else "failed"
            rc: int | None = done.returncode
        except subprocess.TimeoutExpired:
            status, rc = "timed out", None
    seconds = round(time.perf_counter() - t0, 1)
    tail = log.read_text(errors="replace").strip().splitlines()[-12:]
    print("\n".join(f"   {line}" for line in tail), flush=True)
    print(f"== {bench.name}: {status} in {seconds:.0f} s", flush=True)
    shown = log.relative_to(ROOT) if log.is_relative_to(ROOT) else log
    return {"status": status, "rc": rc, "seconds": seconds, "log": str(shown)}


def main() -> None:
    names = [b.name for b in BENCHES]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short smoke run of each benchmark")
    parser.add_argument("--only", action="append", default=[], help=f"comma-separated, from: {', '.join(names)}")
    parser.add_argument("--skip", action="append", default=[], help="comma-separated benchmarks to leave out")
    parser.add_argument("--report-only", action="store_true", help="only rebuild latest.md and the charts")
    parser.add_argument("--check-against-reference", action="store_true")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args()
    only = {n for item in args.only for n in item.split(",") if n}
    skip = {n for item in args.skip for n in item.split(",") if n}
    unknown = sorted((only | skip) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if args.list:
        for b in BENCHES:
            absent = "" if (HERE / b.script).exists() else "  (script absent)"
            print(f"{b.name:16s} bench/{b.script:28s} → results/{b.result}{absent}")
        return
    selected = [b for b in BENCHES if (not only or b.name in only) and b.name not in skip]
    state_path = RESULTS / "run_all.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    statuses: dict[str, Any] = dict(state.get("benches", {}))
    started = time.time()
    if not args.report_only:
        logs = RESULTS / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        models = sorted({m for b in selected if (HERE / b.script).exists() for m in b.models})
        if models:
            print(f"== models: {', '.join(models)} (bench/models.py; cached in {RESULTS / 'models'})", flush=True)
            subprocess.run([sys.executable, str(HERE / "models.py"), "--only", ",".join(models)], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        for bench in selected:
            statuses[bench.name] = {**run_one(bench, args.quick, args.check_against_reference, logs),
                                    "quick": args.quick, "at": started}  # fmt: skip
        state = {"started": started, "benches": statuses}
        state_path.write_text(json.dumps(state, indent=2))
    from report import build

    out = build(RESULTS, statuses)
    print(out.read_text())
    print(f"wrote {out} and {RESULTS / 'charts'}/")
    failed = [n for n in (b.name for b in selected) if statuses.get(n, {}).get("status") in ("failed", "timed out")]
    if failed and not args.report_only:
        raise SystemExit(f"failed: {', '.join(failed)} (see results/logs/)")


if __name__ == "__main__":
    main()
