"""Size of the slim Lambda zip per component, unzipped and zipped, for each Lambda Python runtime.

Builds the zip with ``modelfn.deploy.lambda_package.build_lambda_zip`` (pip downloads the target's
wheels; its cache makes later runs fast), then groups the zip's entries by top-level package
(``numpy.libs`` and dist-info folders count with their package). Where an interpreter of the zip's
Python is on this machine, it also times a fresh import of the handler's modules from the unpacked
zip with no bytecode (what Lambda does: /var/task is read-only, so every cold start compiles) and
with bytecode compiled ahead (``compileall --invalidation-mode unchecked-hash``), and the size that
bytecode adds.

Usage: python bench/bench_lambda_package.py [--python 3.12 3.13] [--arch x86_64|arm64] [--runs 7]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save

from modelfn.deploy.lambda_package import build_lambda_zip

HANDLER_IMPORTS = (
    "import modelfn.serving.asgi, modelfn.serving.state, modelfn.loader, modelfn.runtime.onnx_session, "
    "modelfn.store.registry, mangum"
)
MB = 1e6


def component(name: str) -> str:
    """The package a top-level zip entry belongs to."""
    top = name.split("/", 1)[0]
    if top.startswith("_cffi_backend"):
        return "cffi"
    return top.split("-", 1)[0].split(".", 1)[0].lower()


def sizes_by_component(path: Path) -> dict[str, dict[str, float]]:
    unzipped: dict[str, int] = collections.Counter()
    zipped: dict[str, int] = collections.Counter()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            unzipped[component(info.filename)] += info.file_size
            zipped[component(info.filename)] += info.compress_size
    order = sorted(unzipped, key=lambda c: -unzipped[c])
    return {c: {"unzipped_mb": round(unzipped[c] / MB, 2), "zipped_mb": round(zipped[c] / MB, 2)} for c in order}


def interpreter(version: str) -> str | None:
    """A python``version`` on this machine (pyenv's installs first), or None."""
    for candidate in sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"), reverse=True):
        return str(candidate)
    return shutil.which(f"python{version}")


def import_ms(python: str, root: Path, runs: int) -> float:
    """Median wall time of a fresh process importing the handler's modules from ``root`` (no bytecode writes)."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    samples = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run([python, "-S", "-c", HANDLER_IMPORTS], check=True, env=env, cwd=root, capture_output=True)
        samples.append(time.perf_counter() - t0)
    return round(statistics.median(samples[1:]) * 1e3, 1)


def measure(version: str, arch: str, runs: int, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    target = "arm64" if arch == "arm64" else "x86_64"
    built = build_lambda_zip(work / f"lambda-{version}-{arch}.zip", python_version=version, arch=target)
    result: dict[str, Any] = {
        "runtime": built.runtime,
        "arch": arch,
        "build_s": round(time.perf_counter() - t0, 1),
        "unzipped_mb": round(built.unzipped_bytes / MB, 2),
        "zipped_mb": round(built.zipped_bytes / MB, 2),
        "files": built.files,
        "pruned_mb": {rule: round(n / MB, 2) for rule, n in built.pruned_bytes.items()},
        "components": sizes_by_component(built.path),
    }
    python = interpreter(version)
    host = "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"
    if python is not None and arch == host:
        plain = work / f"task-{version}"
        with zipfile.ZipFile(built.path) as archive:
            archive.extractall(plain)
        compiled = work / f"task-{version}-pyc"
        shutil.copytree(plain, compiled)
        subprocess.run(
            [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(compiled)],
            check=True,
            capture_output=True,
        )
        pyc = sum(p.stat().st_size for p in compiled.rglob("*.pyc"))
        result["cold_import_ms"] = {
            "no_bytecode": import_ms(python, plain, runs),
            "bytecode": import_ms(python, compiled, runs),
        }
        result["bytecode_adds_mb"] = round(pyc / MB, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", nargs="+", default=["3.12", "3.13"])
    parser.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64"])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-lambda-") as tmp:
        for version in args.python:
            r = measure(version, args.arch, args.runs, Path(tmp))
            results[r["runtime"]] = r
            print(f"{r['runtime']} {args.arch}: {r['unzipped_mb']} MB unzipped, {r['zipped_mb']} MB zipped, "
                  f"{r['files']} files, built in {r['build_s']} s")  # fmt: skip
            for name, size in list(r["components"].items())[:10]:
                print(f"  {name:24s} {size['unzipped_mb']:8.2f} MB {size['zipped_mb']:8.2f} MB zipped")
            print("  pruned:", ", ".join(f"{k} {v} MB" for k, v in r["pruned_mb"].items()))
            if "cold_import_ms" in r:
                print(f"  cold import of the handler's modules (ms): {r['cold_import_ms']}, "
                      f"bytecode adds {r['bytecode_adds_mb']} MB")  # fmt: skip
    save(f"lambda_package_{args.arch}", results)


if __name__ == "__main__":
    main()
