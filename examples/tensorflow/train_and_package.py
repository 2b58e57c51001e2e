"""Train a tiny Keras classifier, package it into a modelfn bundle, and print how to sign, push and serve it.

Run: ``python examples/tensorflow/train_and_package.py [OUT_DIR]`` (needs ``pip install 'modelfn[tensorflow]'``).
The same ``package`` call accepts a ``.keras`` file, a SavedModel directory, or a frozen ``.pb``
with ``options={"inputs": "x:0", "outputs": "Identity:0"}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

import modelfn
from modelfn.local import serve_once

LABELS = ["low", "mid", "high"]


def train() -> tuple[keras.Model, np.ndarray]:
    """Three classes by the sum of four features; a few epochs are enough for a demo."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(-1, 1, size=(96, 4)).astype(np.float32)
    y = np.digitize(x.sum(axis=1), [-0.7, 0.7])
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    return model, x[:8]


def main(out: Path) -> None:
    model, sample = train()
    manifest = modelfn.package(model, sample, out, name="keras-demo", options={"labels": ",".join(LABELS)})
    parity = manifest.parity
    print(f"packaged {manifest.name} v{manifest.version} -> {out}")
    print(
        f"inputs {[(t.name, t.shape) for t in manifest.inputs]} outputs {[(t.name, t.shape) for t in manifest.outputs]}"
    )
    if parity is not None:
        print(f"parity vs Keras on {parity.samples} rows: max abs diff {parity.max_abs_diff:.2e}")
    # sign a copy with a scratch key, push it to a scratch store, and ask the served model (verified first)
    print("served prediction:", serve_once(out, {"instances": sample[:2].tolist(), "return_labels": True}))
    print("next:")
    print("  modelfn keygen")
    print(f"  modelfn sign {out} --key .modelfn/keys/signing.key")
    print(f"  modelfn push {out} --store ./.modelfn/store")
    print("  modelfn serve --model keras-demo --store ./.modelfn/store --trust .modelfn/keys/signing.pub")
    print("""  curl -s localhost:8080/predict -d '{"instances": [[0.1, 0.2, 0.3, 0.4]], "return_labels": true}'""")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bundles/keras-demo"))
