"""Fresh-process import cost of modelfn's entry points, beside the libraries they stand on.

Median wall time of ``python -c "import X"`` minus ``python -c pass`` over N runs (page cache
warm), so the numbers compare entry points with each other and with the floor's own imports
(onnxruntime + boto3). Timings live here, never in tests (tests check *what* is imported).

Usage: python bench/bench_imports.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save

TARGETS = {
    "floor: onnxruntime+numpy+boto3": "import onnxruntime, numpy, boto3",
    "pydantic (no longer on the run-time path)": "import pydantic",
    "fastapi (lazy: /docs only)": "import fastapi",
    "modelfn.handlers.http (no model)": "import modelfn.handlers.http",
    "modelfn.handlers.http on Lambda, tracing off (JSON logs + EMF, no model)": (
        "import os; os.environ.update(AWS_LAMBDA_FUNCTION_NAME='bench', POWERTOOLS_TRACE_DISABLED='true');"
        " import modelfn.handlers.http"
    ),
    "modelfn.handlers.http on Lambda (+ X-Ray when aws_xray_sdk is installed)": (
        "import os; os.environ['AWS_LAMBDA_FUNCTION_NAME'] = 'bench'; import modelfn.handlers.http"
    ),
    "powertools Logger + Metrics": "import aws_lambda_powertools.logging, aws_lambda_powertools.metrics",
    "aws_xray_sdk.core (optional tracing)": "import aws_xray_sdk.core",
    "prometheus_client (container /metrics)": "import prometheus_client",
    "modelfn.loader + runtime": "import modelfn.loader, modelfn.runtime.onnx_session",
    "modelfn.cli (--help)": "import modelfn.cli",
}


def wall(code: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as empty_store:
        env = {**os.environ, "MODELFN_STORE_URL": empty_store, "MODELFN_MODEL_NAME": "absent"}
        baseline = statistics.median(wall("pass", env) for _ in range(args.runs))
        results = {"python_startup_ms": round(baseline * 1e3, 1), "imports_ms": {}}
        for label, code in TARGETS.items():
            wall(code, env)  # warm the page cache
            ms = round((statistics.median(wall(code, env) for _ in range(args.runs)) - baseline) * 1e3, 1)
            results["imports_ms"][label] = ms  # type: ignore[index]
            print(f"{label:45s} {ms:8.1f} ms", flush=True)
    save("imports", results)


if __name__ == "__main__":
    main()
