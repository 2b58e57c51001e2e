"""Train a tiny softmax classifier in numpy, then package it as a custom-code bundle.

Usage: python examples/custom/train_and_package.py [--out DIR]. Writes DIR/src (model.py,
weights.npz, labels.json), DIR/sample.npz and the unsigned bundle DIR/bundle, then prints the
commands that sign, push and serve it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import modelfn
from modelfn.local import serve_once

HERE = Path(__file__).resolve().parent
LABELS = ["small", "medium", "large"]


def train(seed: int = 0) -> tuple[dict[str, npt.NDArray[np.float32]], npt.NDArray[np.float32]]:
    """Three Gaussian blobs in 4-D; 300 steps of gradient descent on standardized features."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 3.0, size=(3, 4))
    y = np.repeat(np.arange(3), 40)
    x = (centers[y] + rng.normal(0.0, 1.0, size=(len(y), 4)) * [1.0, 2.0, 0.5, 1.5] + 10.0).astype(np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0)
    z, onehot = (x - mean) / std, np.eye(3)[y]
    weight, bias = np.zeros((4, 3)), np.zeros(3)
    for _ in range(300):
        logits = z @ weight + bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        weight -= 0.5 * z.T @ (p - onehot) / len(y)
        bias -= 0.5 * (p - onehot).mean(axis=0)
    params = {"mean": mean, "std": std, "weight": weight, "bias": bias}
    return {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}, x[::10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/custom-example"))
    args = parser.parse_args()
    params, sample = train()
    arrays: dict[str, Any] = params
    src, bundle = args.out / "src", args.out / "bundle"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "model" / "model.py", src / "model.py")
    np.savez(src / "weights.npz", **arrays)
    (src / "labels.json").write_text(json.dumps(LABELS))
    np.savez(args.out / "sample.npz", features=sample)  # for `modelfn package ... --sample`
    manifest = modelfn.package(
        src, {"features": sample}, bundle, name="blobs", framework="custom", options={"labels": LABELS}
    )
    assert manifest.parity is not None
    print(f"packaged {manifest.name} v{manifest.version}: max abs diff {manifest.parity.max_abs_diff:.3g}")
    row = json.dumps([[round(float(v), 2) for v in sample[0]]])
    # sign a copy with a scratch key, push it to a scratch store, and ask the served model (verified first)
    print(
        "served prediction:",
        serve_once(
            bundle, {"inputs": {"features": sample[:2].tolist()}, "return_labels": True}, allow_custom_code=True
        ),
    )
    print("next: sign, push and serve it (custom code is served only with MODELFN_ALLOW_CUSTOM_CODE=true)")
    print("  modelfn keygen")
    print(f"  modelfn sign {bundle}")
    print(f"  modelfn push {bundle}")
    print("  export MODELFN_ALLOW_CUSTOM_CODE=true")
    print(
        f'  modelfn invoke --model blobs --trust .modelfn/keys/signing.pub -d \'{{"inputs": {{"features": {row}}}}}\''
    )
    print("  modelfn serve --model blobs --trust .modelfn/keys/signing.pub")


if __name__ == "__main__":
    main()
