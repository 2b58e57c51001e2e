"""Train a tiny MXNet Gluon classifier and export it as ``PREFIX-symbol.json`` + ``PREFIX-0000.params``.

Runs inside the MXNet environment (``scripts/mxnet-env.sh DIR``; then ``DIR/bin/python train.py OUT``),
not in modelfn's: ``train_and_package.py`` starts it for you. Also writes ``sample.npy`` for the
parity check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.gluon import nn


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    mx.random.seed(0)
    rng = np.random.RandomState(0)
    y = np.repeat(np.arange(3), 40)
    x = (rng.randn(3, 4)[y] * 3 + rng.randn(len(y), 4)).astype("float32")
    net = nn.HybridSequential()
    net.add(nn.Dense(16, activation="relu"), nn.Dense(3))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.05})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(40):
        with autograd.record():
            loss = loss_fn(net(mx.nd.array(x)), mx.nd.array(y))
        loss.backward()
        trainer.step(len(x))
    net.export(str(out / "blobs"), epoch=0)
    np.save(out / "sample.npy", x[::8])
    accuracy = float((net(mx.nd.array(x)).asnumpy().argmax(axis=1) == y).mean())
    print(f"trained: accuracy {accuracy:.3f}; wrote {out / 'blobs-symbol.json'} and {out / 'blobs-0000.params'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
