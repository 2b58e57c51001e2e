"""Train a tiny LightGBM classifier, package it into a modelfn bundle, and print the next CLI steps.

Run: ``python examples/lightgbm/train_and_package.py [OUT_DIR]`` (needs ``pip install 'modelfn[lightgbm]'``).
The booster is also saved as a LightGBM text model to show the file route (no pickle).
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sklearn.datasets import load_iris

import modelfn
from modelfn.local import serve_once


def main(out: Path) -> None:
    data = load_iris()
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, random_state=0, n_jobs=1, verbose=-1)
    model.fit(data.data, data.target_names[data.target])
    sample = data.data[::10].astype(np.float32)
    manifest = modelfn.package(model, sample, out, name="iris-lightgbm", version=1)
    files = out.parent / f"{out.name}-files"
    files.mkdir(parents=True, exist_ok=True)
    model.booster_.save_model(files / "iris.txt")
    np.save(files / "sample.npy", sample)
    parity = manifest.parity
    print(f"packaged {manifest.name} v{manifest.version} -> {out} ({manifest.framework.converter})")
    print(f"class labels: {manifest.labels}")
    if parity is not None:
        print(f"parity on {parity.samples} rows: max abs diff {parity.max_abs_diff:.3g}")
    # sign a copy with a scratch key, push it to a scratch store, and ask the served model (verified first)
    print("served prediction:", serve_once(out, {"instances": sample[:2].tolist()}))
    print("next steps:")
    print("  modelfn keygen --out .modelfn/keys")
    print(f"  modelfn sign {out} --key .modelfn/keys/signing.key")
    print(f"  modelfn push {out} --store .modelfn/store")
    print("  modelfn serve --model iris-lightgbm --store .modelfn/store --trust .modelfn/keys/signing.pub")
    print("the same model from LightGBM's text format (class indices instead of names):")
    print(f"  modelfn package {files / 'iris.txt'} -o {out}-file -n iris-lightgbm --sample {files / 'sample.npy'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/lightgbm-example/bundle"))
