"""One virtual environment per seed system, created on demand under bench/.venvs/.

Each system runs from its own interpreter with the versions the seed baselines were measured
with, so its import and start-up costs are its own. ``--reuse-site`` (a speed-up for a machine
that already has the frameworks, e.g. modelfn's own dev venv) adds a ``.pth`` pointing at an
existing site-packages, read-only: pip then installs only what is missing, into the new venv.
torch is pinned to the CPU build: put its wheel in a folder and pass ``PIP_FIND_LINKS=DIR``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = Path(os.environ.get("MODELFN_BENCH_VENVS", HERE.parent / ".venvs"))
REPO = HERE.parents[1]

MXNET_BASE = [
    "mxnet==1.9.1",
    "numpy>=1.23.2,<1.24",  # mxnet uses np.bool, gone in 1.24
    "onnx>=1.14,<1.16",  # mx.onnx / modelfn's MXNet converter (`modelfn package --python`)
    "protobuf>=3.20.2,<5",
    "msgspec>=0.18",
]

REQUIREMENTS: dict[str, list[str]] = {
    # MXNet Model Server: Java frontend + Python worker; Pillow/psutil/future/enum-compat are its worker's imports.
    "mms": [
        *MXNET_BASE,
        "multi-model-server==1.1.11",
        "model-archiver==1.0.3",
        "Pillow",
        "psutil",
        "future",
        "enum-compat",
    ],
    # TorchServe 0.12.0 (newest on PyPI); its worker imports yaml without declaring pyyaml.
    "torchserve": ["torch==2.13.0", "torchserve==0.12.0", "torch-model-archiver==0.12.0", "pyyaml", "numpy"],
    "keras_flask": ["tensorflow-cpu==2.21.0", "keras==3.15.1", "flask==3.1.3", "numpy"],
    "sk_flask": ["scikit-learn==1.9.1", "joblib", "flask==3.1.3", "numpy"],
    "kserve": ["kserve==0.21.0", "scikit-learn==1.9.1", "joblib", "numpy"],
    "spark_flask": ["pyspark==4.3.0", "flask==3.1.3", "numpy"],
}
"""System -> what its environment needs (the versions the seed baselines name)."""

CHECK_IMPORT = {
    "mms": "import mxnet, mms",
    "torchserve": "import torch, ts, yaml",
    "keras_flask": "import keras, tensorflow, flask",
    "sk_flask": "import sklearn, joblib, flask",
    "kserve": "import kserve, sklearn, joblib",
    "spark_flask": "import pyspark, flask",
}


def python_of(system: str) -> Path:
    return VENVS / system / "bin" / "python"


def _site_packages(python: Path | str) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def _reuse_site_for(system: str) -> str | None:
    """The site-packages a ``--reuse-site`` venv reads from: modelfn's MXNet venv for MMS, else this one."""
    if system == "mms":
        mx = REPO / ".venv-mxnet" / "bin" / "python"
        return _site_packages(mx) if mx.exists() else None
    return sysconfig.get_paths()["purelib"]


def ensure(system: str, *, reuse_site: bool = False, log: Path | None = None) -> Path:
    """Create (once) and return the interpreter of ``system``'s environment."""
    python = python_of(system)
    if (
        python.exists()
        and subprocess.run([str(python), "-c", CHECK_IMPORT[system]], capture_output=True).returncode == 0
    ):
        return python
    base = os.environ.get("MODELFN_BENCH_PYTHON", "python3.11")
    VENVS.mkdir(parents=True, exist_ok=True)
    (VENVS / ".gitignore").write_text("*\n")  # environments never enter the repository
    subprocess.run([base, "-m", "venv", str(python.parents[1])], check=True)
    if reuse_site and (site := _reuse_site_for(system)):
        Path(_site_packages(python), "zz_reuse_site.pth").write_text(site + "\n")
    out = log.open("a") if log else subprocess.DEVNULL
    try:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS[system]],
            check=True, stdout=out, stderr=subprocess.STDOUT if log else None,
        )  # fmt: skip
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    subprocess.run([str(python), "-c", CHECK_IMPORT[system]], check=True)
    return python


if __name__ == "__main__":
    reuse = "--reuse-site" in sys.argv
    for name in [a for a in sys.argv[1:] if not a.startswith("--")] or list(REQUIREMENTS):
        print(name, ensure(name, reuse_site=reuse), flush=True)
