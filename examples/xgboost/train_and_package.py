"""Train a tiny XGBoost classifier, package it into a modelfn bundle, and print the next CLI steps.

Run: ``python examples/xgboost/train_and_package.py [OUT_DIR]`` (needs ``pip install 'modelfn[xgboost]'``).
The booster is also saved in XGBoost's own JSON format to show the file route (no pickle).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_iris

import modelfn
from modelfn.local import serve_once


def main(out: Path) -> None:
    x, y = load_iris(return_X_y=True)
    model = xgb.XGBClassifier(n_estimators=10, max_depth=3, random_state=0, n_jobs=1).fit(x, y)
    sample = x[::10].astype(np.float32)
    manifest = modelfn.package(model, sample, out, name="iris-xgboost", version=1)
    files = out.parent / f"{out.name}-files"
    files.mkdir(parents=True, exist_ok=True)
    model.get_booster().save_model(files / "iris.json")
    np.save(files / "sample.npy", sample)
    parity = manifest.parity
    print(f"packaged {manifest.name} v{manifest.version} -> {out} ({manifest.framework.converter})")
    if parity is not None:
        print(
            f"parity on {parity.samples} rows: max abs diff {parity.max_abs_diff:.3g}, labels {parity.label_agreement}"
        )
    # sign a copy with a scratch key, push it to a scratch store, and ask the served model (verified first)
    print("served prediction:", serve_once(out, {"instances": sample[:2].tolist()}))
    print("next steps:")
    print("  modelfn keygen --out .modelfn/keys")
    print(f"  modelfn sign {out} --key .modelfn/keys/signing.key")
    print(f"  modelfn push {out} --store .modelfn/store")
    print("  modelfn serve --model iris-xgboost --store .modelfn/store --trust .modelfn/keys/signing.pub")
    print("the same model from XGBoost's own file format:")
    print(f"  modelfn package {files / 'iris.json'} -o {out}-file -n iris-xgboost --sample {files / 'sample.npy'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/xgboost-example/bundle"))
