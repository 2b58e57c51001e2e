"""Shared pieces of the benchmarks: where results and models live, building models, publishing a bundle.

Everything here runs from a clone of the repository alone: the models come from bench/models.py, the
floor from bench/floor.py, the peers from bench/peers/. ``REFERENCE`` (../shared/reference-bench, or
``MODELFN_REFERENCE_BENCH``) is only read by ``--check-against-reference``, when that folder exists.
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


def ensure_models(names: list[str]) -> None:
    """Build the benchmark models that are not cached yet (bench/models.py)."""
    needed = [MODELS / f"{n}.onnx" for n in names]
    needed += [MODELS / f"{n}.joblib" for n in names if n in ("rf", "lr")]
    if all(path.exists() for path in needed) and (MODELS / "digits_X.npy").exists():
        return
    subprocess.run([sys.executable, str(Path(__file__).with_name("models.py")), "--only", ",".join(names)], check=True)


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
