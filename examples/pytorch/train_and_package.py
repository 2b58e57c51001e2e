"""Train a tiny PyTorch classifier, package it into a modelfn bundle, and print the next CLI steps.

Run: ``python examples/pytorch/train_and_package.py [OUT_DIR]`` (needs ``pip install 'modelfn[torch]'``).
The weights are also written as ``.safetensors`` to show the file route, which needs no pickle.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import modelfn
from modelfn.local import serve_once


class Classifier(torch.nn.Module):
    """Four features in, three class scores out."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(features), dim=-1)


def train(seed: int = 0) -> tuple[Classifier, np.ndarray]:
    """Three Gaussian blobs, 100 full-batch steps: a second or two on a CPU."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    centers = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, 3]], dtype=np.float32)
    y = rng.integers(0, 3, size=300)
    x = (centers[y] + rng.standard_normal((300, 4))).astype(np.float32)
    model = Classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(model(inputs) + 1e-9), targets)
        torch.autograd.backward(loss)
        optimizer.step()
    return model.eval(), x[:8]


def main(out: Path) -> None:
    model, sample = train()
    manifest = modelfn.package(model, {"features": sample}, out / "bundle", name="blobs-torch", version=1)
    save_file(model.state_dict(), out / "blobs.safetensors")
    np.save(out / "sample.npy", sample)
    parity = manifest.parity
    print(f"packaged {manifest.name} v{manifest.version} -> {out / 'bundle'} ({manifest.framework.converter})")
    if parity is not None:
        print(f"parity on {parity.samples} rows: max abs diff {parity.max_abs_diff:.3g}")
    # sign a copy with a scratch key, push it to a scratch store, and ask the served model (verified first)
    print("served prediction:", serve_once(out / "bundle", {"inputs": {"features": sample[:2].tolist()}}))
    print("next steps:")
    print("  modelfn keygen --out .modelfn/keys")
    print(f"  modelfn sign {out / 'bundle'} --key .modelfn/keys/signing.key")
    print(f"  modelfn push {out / 'bundle'} --store .modelfn/store")
    print("  modelfn serve --model blobs-torch --store .modelfn/store --trust .modelfn/keys/signing.pub")
    print("the same model from its weights file (no pickle):")
    print(
        f"  PYTHONPATH={Path(__file__).parent} modelfn package {out / 'blobs.safetensors'}"
        f" -o {out / 'bundle-st'} -n blobs-torch"
        f" --sample {out / 'sample.npy'} --option model_class=train_and_package:Classifier"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/pytorch-example"))
