"""Build the benchmark models once and cache them under bench/results/models/ (``MODELFN_BENCH_RESULTS``).

The same four models every figure in bench/ is quoted for, built the way the reference bench builds
them so numbers stay comparable: RandomForestClassifier(100 trees, random_state=0) and
LogisticRegression(max_iter=2000) fitted on scikit-learn's digits (64 float32 features, 10 classes)
and converted with skl2onnx (no ZipMap, opsets ai.onnx 17 / ai.onnx.ml 3); a torch MLP 784-512-512-10
and a ResNet-18-shaped CNN (stem + 4 stages × 2 basic blocks, 64/128/256/512 channels, 224×224×3
input, ~11.2M parameters), seeded with ``torch.manual_seed(0)`` and exported with the dynamo exporter
with a dynamic batch dimension (the TorchScript exporter when dynamo fails). Every ONNX model has one
float32 input named ``input`` with a dynamic batch dimension; torch exports are checked against torch.

Also writes ``digits_X.npy`` (the first 64 digits rows, float32), ``rf.joblib``/``lr.joblib`` (for
peers that serve scikit-learn natively) and ``models.json`` (sizes, timings, parity).

Usage: python bench/models.py [--only rf,lr,mlp,cnn] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODELS

ALL = ("rf", "lr", "mlp", "cnn")


def _replace(path: Path, write: Callable[[Path], object], suffix: str = ".onnx") -> None:
    """Write through a temporary file and rename, so a benchmark reading the cache never sees half a model."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}{suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_sklearn(name: str) -> dict[str, Any]:
    import joblib
    import numpy as np
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    estimator: Any = (
        RandomForestClassifier(n_estimators=100, random_state=0) if name == "rf" else LogisticRegression(max_iter=2000)
    )
    t0 = time.perf_counter()
    estimator.fit(x, y)
    fit_s = time.perf_counter() - t0
    _replace(MODELS / f"{name}.joblib", lambda tmp: joblib.dump(estimator, tmp))
    t0 = time.perf_counter()
    onx = to_onnx(
        estimator,
        initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
        options={id(estimator): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path = MODELS / f"{name}.onnx"
    _replace(path, lambda tmp: tmp.write_bytes(onx.SerializeToString()))
    _replace(MODELS / "digits_X.npy", lambda tmp: np.save(tmp, x[:64]), suffix=".npy")
    return {
        "fit_s": round(fit_s, 3),
        "convert_s": round(time.perf_counter() - t0, 3),
        "bytes": path.stat().st_size,
        "train_acc": float(estimator.score(x, y)),
    }


def torch_module(name: str) -> Any:
    """The MLP or the ResNet-18-shaped CNN, freshly initialised from seed 0."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.down: nn.Module | None = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: Any) -> Any:
            identity = x if self.down is None else self.down(x)
            x = torch.relu(self.b1(self.c1(x)))
            return torch.relu(self.b2(self.c2(x)) + identity)

    stages: list[nn.Module] = []
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        stages += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(stem, *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(512, 10))


def build_torch(name: str) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    import torch

    model = torch_module(name).eval()
    x = torch.randn(2, 784) if name == "mlp" else torch.randn(2, 3, 224, 224)
    path = MODELS / f"{name}.onnx"
    t0 = time.perf_counter()
    try:
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.onnx.export(
            model, (x,), dynamo=True, input_names=["input"], output_names=["output"], dynamic_shapes=({0: batch},)
        )
        _replace(path, lambda tmp: program.save(str(tmp)))
        exporter = "dynamo"
    except Exception as exc:  # the TorchScript exporter still handles both models
        print(f"dynamo export of {name} failed ({exc!r:.200}); using the TorchScript exporter", file=sys.stderr)
        _replace(path, lambda tmp: torch.onnx.export(
            model, (x,), str(tmp), dynamo=False, input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "batch"}}, opset_version=17,
        ))  # fmt: skip
        exporter = "torchscript"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    diff = float(np.abs(expected - got).max())
    if diff > 1e-3:
        raise SystemExit(f"{name}: onnxruntime differs from torch by {diff}")
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "export_s": round(time.perf_counter() - t0, 3),
        "exporter": exporter,
        "bytes": path.stat().st_size,
        "max_abs_diff_vs_torch": diff,
    }


def build(names: list[str], force: bool = False) -> dict[str, Any]:
    """Build what is missing (or everything with ``force``); merge into models.json."""
    MODELS.mkdir(parents=True, exist_ok=True)
    info_path = MODELS / "models.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    info = {k: v for k, v in info.items() if k in ALL}  # the reference's {"sklearn": …, "torch": …} layout is dropped
    for name in names:
        if name not in ALL:
            raise SystemExit(f"unknown model {name!r}; choose from {', '.join(ALL)}")
        if not force and (MODELS / f"{name}.onnx").exists() and (name in ("mlp", "cnn") or _sklearn_cached(name)):
            continue
        print(f"building {name} …", flush=True)
        info[name] = {
            **(build_sklearn(name) if name in ("rf", "lr") else build_torch(name)),
            "builder": "bench/models.py",
        }
        info_path.write_text(json.dumps(info, indent=2))
    return info


def _sklearn_cached(name: str) -> bool:
    return (MODELS / f"{name}.joblib").exists() and (MODELS / "digits_X.npy").exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ALL))
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args()
    info = build(args.only.split(","), force=args.force)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
