"""Shared pieces of the benchmarks: reference-bench location, models, moto S3, publishing a bundle.

Benchmarks run beside the reference scripts in ../shared/reference-bench (override with
MODELFN_REFERENCE_BENCH) so every ratio compares numbers from one run on one machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("MODELFN_BENCH_RESULTS", ROOT / "bench" / "results"))
MODELS = RESULTS / "models"
REFERENCE = Path(os.environ.get("MODELFN_REFERENCE_BENCH", ROOT.parent / "shared" / "reference-bench"))
INPUT_SHAPES = {"rf": (64,), "lr": (64,), "mlp": (784,), "cnn": (3, 224, 224)}


def reference_module(name: str) -> Any:
    """Import a module from the reference bench (its _moto and _util helpers)."""
    if not REFERENCE.is_dir():
        raise SystemExit(f"reference bench not found at {REFERENCE}; set MODELFN_REFERENCE_BENCH")
    sys.path.insert(0, str(REFERENCE))
    return __import__(name)


def ensure_models(names: list[str]) -> None:
    """Build the reference models (sklearn RF/LR, torch MLP/CNN) once with the reference script."""
    if all((MODELS / f"{n}.onnx").exists() for n in names):
        return
    MODELS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENCH_MODELS": str(MODELS), "BENCH_RESULTS": str(RESULTS)}
    subprocess.run([sys.executable, str(REFERENCE / "make_models.py")], check=True, env=env, capture_output=True)


def publish_onnx(name: str, store_url: str, key_dir: Path) -> dict[str, str]:
    """Package + sign + push ``MODELS/<name>.onnx``; return the MODELFN_* env that serves it."""
    from modelfn.packaging import package
    from modelfn.repository.transfer import push_bundle
    from modelfn.signing.keys import write_keypair
    from modelfn.signing.sign import KeyFileSigner, sign_bundle
    from modelfn.store.registry import store_for

    if not (key_dir / "bench.key").exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        write_keypair(key_dir / "bench.key", key_dir / "bench.pub")
    bundle = key_dir.parent / "bundles" / name
    package(MODELS / f"{name}.onnx", None, bundle, name=name, version=1)
    sign_bundle(bundle, KeyFileSigner(key_dir / "bench.key"), name=name, version=1)
    push_bundle(bundle, store_for(store_url), name=name, version=1, progress=False)
    return {
        "MODELFN_STORE_URL": store_url,
        "MODELFN_MODEL_NAME": name,
        "MODELFN_TRUSTED_KEYS": str(key_dir / "bench.pub"),
    }


def median_ms(samples_s: list[float]) -> float:
    return round(statistics.median(samples_s) * 1e3, 3)


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    print("wrote", path)
    return path


def wall_of(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Spawn-to-exit wall time of one process, and its last stdout line."""
    t0 = time.perf_counter()
    done = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, done.stdout.strip().splitlines()[-1]
