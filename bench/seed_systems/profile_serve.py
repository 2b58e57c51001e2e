"""Where `modelfn serve`'s cold start goes: per-phase wall and CPU time, and the costliest imports.

    python bench/seed_systems/profile_serve.py [--model rf] [--runs 5]

Each run is a fresh interpreter that walks the serve path in order (the console entry's option
read, settings, the container's imports, store listing, signature check and fetch, onnxruntime
import, session, warm-up, then the Prometheus registry the server builds after its first answer),
one phase after another so each is timed alone (the real server overlaps the load
with its own start). A last run under ``-X importtime`` lists the imports that cost the most. Uses
the store that run.py publishes to (bench/results/seed_systems/).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from systems import WORK

CHILD = r"""
import sys, time, json
W0, C0 = time.perf_counter(), time.process_time()
marks = []
def mark(name):
    marks.append((name, time.perf_counter() - W0, time.process_time() - C0))
import modelfn._entry
from modelfn.commands._direct import SERVE_OPTIONS, parse_options, serve_settings
kwargs = parse_options(SERVE_OPTIONS, ["--store", sys.argv[1], "--model", sys.argv[2], "--trust", sys.argv[3]])
mark("console entry + serve options (no typer)")
settings = serve_settings(kwargs)
mark("settings")
import modelfn.container
from modelfn.serving.state import ModelState
modelfn.container._quiet_blas_spin()
modelfn.container._defer_prometheus()
mark("container + deferred metrics sink")
import uvicorn, uvloop, httptools
mark("import uvicorn, uvloop, httptools")
from modelfn.serving.asgi import create_app
app = create_app(ModelState.pending(settings))
mark("import + build the ASGI app")
from modelfn.store.registry import store_for
from modelfn.repository.versions import resolve_listing
store = store_for(settings.store_url, settings)
resolve_listing(store, settings.model_name, "latest")
mark("store: resolve latest + list")
from modelfn import loader
verified = loader.fetch_verified(settings)
mark("verify signature + fetch/hash files (listing again)")
import onnxruntime
mark("import onnxruntime (numpy)")
model = loader._RUNTIMES[verified.manifest.runtime](verified, settings)
mark("onnxruntime session")
model.warm_up()
mark("warm-up run")
from modelfn.serving.observability_prometheus import install
install()
mark("(after the first answer) Prometheus registry + replay")
print(json.dumps(marks))
"""


def phases(runs: int, args: list[str]) -> list[tuple[str, float, float]]:
    """Median per-phase (wall ms, CPU ms) over ``runs`` fresh interpreters."""
    samples: list[list[tuple[str, float, float]]] = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", CHILD, *args], check=True, capture_output=True, text=True)
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    for i, (name, _, _) in enumerate(samples[0]):
        wall = [s[i][1] - (s[i - 1][1] if i else 0.0) for s in samples]
        cpu = [s[i][2] - (s[i - 1][2] if i else 0.0) for s in samples]
        rows.append((name, statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3))
    return rows


def top_imports(args: list[str], n: int = 15) -> list[tuple[float, str]]:
    """The top-level imports (and their children one level down) that cost the most, by cumulative µs."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", CHILD, *args], check=True, capture_output=True, text=True
    ).stderr
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 3:
            rows.append((int(m.group(1)) / 1e3, ("  " if len(m.group(2)) > 1 else "") + m.group(3)))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="rf")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    args = [f"file://{WORK / 'store'}", a.model, str(WORK / "keys" / "signing.pub")]
    rows = phases(a.runs, args)
    print(f"| phase ({a.model}, median of {a.runs} fresh processes) | wall ms | CPU ms |\n|---|---|---|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} |")
    print(f"| **total** | {sum(r[1] for r in rows):.1f} | {sum(r[2] for r in rows):.1f} |\n")
    print("| import (cumulative, one -X importtime run) | ms |\n|---|---|")
    for ms, name in top_imports(args):
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
