"""modelfn's container path (``modelfn serve``, uvicorn) beside the peer servers, in one run.

Reuses the reference bench's server specs and ``measure`` (../shared/reference-bench/bench_peers.py):
cold start = process spawn until the first successful inference response, then warm p50/p99 over
N sequential keep-alive requests. modelfn serves the same ONNX files, signed and pushed to a local
store, so its cold start includes verification. Peers whose virtual environments are missing
(MLSERVER_VENV, BENTO_VENV; see the reference README) are skipped and reported as such.

Usage: python bench/bench_peers.py [--n 500] [--repeats 3] [--only modelfn-rf,fastapi-ort-rf,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODELS, ensure_models, publish_onnx, reference_module, save

ALL = "modelfn-rf,fastapi-ort-rf,mlserver-rf,bento-rf,modelfn-mlp,fastapi-ort-mlp,bento-mlp"


_PUBLISHED: dict[str, dict[str, str]] = {}


def modelfn_spec(peers: Any, model: str, workdir: Path) -> dict[str, Any]:
    """``modelfn serve`` for a signed bundle of the reference model (published once), checked like the peers."""
    import numpy as np

    if model not in _PUBLISHED:
        _PUBLISHED[model] = publish_onnx(model, str(workdir / "store"), workdir / "keys")
    env = _PUBLISHED[model]
    port = peers.free_port()
    if model == "rf":
        x = np.load(MODELS / "digits_X.npy")[:1]

        def check(r: dict[str, Any]) -> bool:
            return bool(r["predictions"]["label"][0] == 0)
    else:
        x = np.random.default_rng(0).standard_normal((1, 784), dtype=np.float32)

        def check(r: dict[str, Any]) -> bool:
            return len(r["predictions"][0]) == 10

    cli = str(Path(sys.executable).parent / "modelfn")
    return {
        "cmd": [
            cli,
            "serve",
            "--store",
            env["MODELFN_STORE_URL"],
            "--model",
            model,
            "--trust",
            env["MODELFN_TRUSTED_KEYS"],
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],  # fmt: skip
        "cwd": str(workdir),
        "url": f"http://127.0.0.1:{port}/predict",
        "payload": {"instances": x.tolist()},
        "check": check,
        "versions": peers.pip_versions(sys.executable, ["modelfn", "onnxruntime", "uvicorn"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=ALL)
    args = parser.parse_args()
    ensure_models(["rf", "mlp"])
    os.environ.setdefault("BENCH_MODELS", str(MODELS))
    peers = reference_module("bench_peers")
    peers.MODELS = str(MODELS)
    os.makedirs(peers.PEERS, exist_ok=True)
    results: dict[str, Any] = {"n": args.n, "servers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        setups = {
            "modelfn-rf": lambda: modelfn_spec(peers, "rf", Path(tmp) / "rf"),
            "modelfn-mlp": lambda: modelfn_spec(peers, "mlp", Path(tmp) / "mlp"),
            "mlserver-rf": peers.setup_mlserver,
            "bento-rf": lambda: peers.setup_bento("rf"),
            "bento-mlp": lambda: peers.setup_bento("mlp"),
            "fastapi-ort-rf": peers.setup_fastapi_ort,
            "fastapi-ort-mlp": lambda: peers.setup_fastapi_ort("mlp"),
        }
        venvs = {"mlserver": peers.MLS, "bento": peers.BENTO}
        for name in args.only.split(","):
            venv = venvs.get(name.split("-")[0])
            if venv and not os.path.exists(os.path.join(venv, "bin", "python")):
                results["servers"][name] = {"skipped": f"no virtual environment at {venv}"}
                print(f"{name:16s} skipped (no venv at {venv})", flush=True)
                continue
            spec = setups[name]()
            runs = []
            for i in range(args.repeats):
                runs.append(peers.measure(spec if i == 0 else setups[name](), args.n if i == 0 else 50))
            colds = sorted(r["cold_start_to_first_response_ms"] for r in runs)
            row = {**runs[0], "cold_starts_ms": colds, "cold_start_median_ms": colds[len(colds) // 2]}
            results["servers"][name] = row
            print(f"{name:16s} cold {row['cold_start_median_ms']:8.1f} ms   warm p50 {row['warm']['p50_ms']:.3f} ms"
                  f"  p99 {row['warm']['p99_ms']:.3f} ms", flush=True)  # fmt: skip
    save("peers", results)


if __name__ == "__main__":
    main()
