"""Train a tiny MXNet model in the MXNet environment, package it with modelfn, and print the next CLI steps.

MXNet 1.9 cannot share modelfn's environment, so this script (run with modelfn's Python) trains
through ``--python`` (the MXNet interpreter) and packages with ``converter_python``: MXNet loads,
converts and predicts there; onnxruntime checks parity here.

Run: ``scripts/mxnet-env.sh .mxnet-env && python examples/mxnet/train_and_package.py --python .mxnet-env/bin/python``
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np

import modelfn
from modelfn.local import serve_once

TRAIN = Path(__file__).with_name("train.py")


def main(python: Path, out: Path) -> None:
    files = out / "mxnet"
    subprocess.run([str(python), str(TRAIN), str(files)], check=True)
    bundle = out / "bundle"
    symbol, params, sample = files / "blobs-symbol.json", files / "blobs-0000.params", files / "sample.npy"
    manifest = modelfn.package(
        symbol,
        np.load(sample),
        bundle,
        name="blobs-mxnet",
        framework="mxnet",
        options={"params": str(params), "labels": "a,b,c"},
        converter_python=python,
    )
    parity = manifest.parity
    print(f"packaged {manifest.name} v{manifest.version} -> {bundle} ({manifest.framework.converter})")
    if parity is not None:
        print(f"parity on {parity.samples} rows: max abs diff {parity.max_abs_diff:.3g}")
    print("the same from the command line:")
    print(
        f"  modelfn package {symbol} --params {params} --framework mxnet --python {python}"
        f" -o {bundle} -n blobs-mxnet --sample {sample}"
    )
    # sign a copy with a scratch key, push it to a scratch store, and ask the served model (verified first)
    print("served prediction:", serve_once(bundle, {"instances": np.load(sample)[:2].tolist()}))
    print("next steps:")
    print("  modelfn keygen --out .modelfn/keys")
    print(f"  modelfn sign {bundle} --key .modelfn/keys/signing.key")
    print(f"  modelfn push {bundle} --store .modelfn/store")
    print("  modelfn serve --model blobs-mxnet --store .modelfn/store --trust .modelfn/keys/signing.pub")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", type=Path, default=Path(".mxnet-env/bin/python"), help="the MXNet interpreter")
    parser.add_argument("--out", type=Path, default=Path("build/mxnet-example"), help="working directory")
    args = parser.parse_args()
    main(args.python, args.out)
