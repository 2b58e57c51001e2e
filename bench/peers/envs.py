"""One virtual environment per peer server under bench/.venvs/, created on first use with pinned versions.

The pins are the versions the figures in bench/README.md were measured with. A venv is reused while
its recorded pins match; change a pin and the next run rebuilds it. ``uvloop<0.22``: MLServer 1.7.1's
parallel inference worker calls ``asyncio.get_event_loop()`` in a fresh process, which newer uvloop
refuses ("There is no current event loop"), and the model never loads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

VENVS = Path(os.environ.get("MODELFN_BENCH_VENVS", Path(__file__).resolve().parents[1] / ".venvs"))
_SHARED = ["numpy==2.4.6", "onnxruntime==1.32.0", "orjson==3.13.0"]
PINS: dict[str, list[str]] = {
    # The FastAPI reference the issue names: uvicorn with uvloop + httptools (uvicorn[standard]).
    "fastapi": [*_SHARED, "fastapi==0.165.0", "uvicorn[standard]==0.54.0"],
    # RF through mlserver-sklearn (joblib), the MLP through a small custom runtime on onnxruntime.
    "mlserver": [*_SHARED, "mlserver==1.7.1", "mlserver-sklearn==1.7.1", "scikit-learn==1.9.1", "uvloop<0.22"],
    "bento": [*_SHARED, "bentoml==1.4.40", "scikit-learn==1.9.1"],
}


def python_of(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_env(name: str, log: Path | None = None) -> Path:
    """Create ``bench/.venvs/<name>`` with its pins unless it already has them; return its interpreter."""
    pins = PINS[name]
    root, python = VENVS / name, python_of(name)
    marker = root / "bench-pins.txt"
    if python.exists() and marker.exists() and marker.read_text().split("\n") == pins:
        return python
    print(f"installing {name} into {root} ({', '.join(pins)}; pip output: {log or 'here'}) …", flush=True)
    t0 = time.perf_counter()
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("a") if log else None
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=out, stderr=out)
        subprocess.run([*pip, *pins], check=True, stdout=out, stderr=out)
    finally:
        if out:
            out.close()
    marker.write_text("\n".join(pins))
    print(f"installed {name} in {time.perf_counter() - t0:.0f} s", flush=True)
    return python


def versions(python: Path | str, packages: list[str]) -> dict[str, str]:
    """Installed versions of ``packages`` in the interpreter ``python`` (recorded beside each figure)."""
    code = "import importlib.metadata as m, json, sys; print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
    done = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True)
    import json

    return dict(json.loads(done.stdout)) if done.returncode == 0 else {"error": done.stderr[-300:]}


if __name__ == "__main__":
    for env_name in sys.argv[1:] or PINS:
        print(ensure_env(env_name))
