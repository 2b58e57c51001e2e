"""MMS's model: a Gluon MLP 64->256->256->10 trained briefly on random data, exported as symbol + params."""

import sys

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd

out = sys.argv[1]
mx.random.seed(0)
np.random.seed(0)
net = gluon.nn.HybridSequential()
net.add(gluon.nn.Dense(256, activation="relu", in_units=64), gluon.nn.Dense(256, activation="relu", in_units=256),
        gluon.nn.Dense(10, in_units=256))  # fmt: skip
net.initialize(mx.init.Xavier())
net.hybridize()
X = nd.random.uniform(shape=(512, 64))
y = nd.array(np.random.randint(0, 10, 512))
trainer = gluon.Trainer(net.collect_params(), "adam")
loss = gluon.loss.SoftmaxCrossEntropyLoss()
for _ in range(20):
    with autograd.record():
        step = loss(net(X), y)
    step.backward()
    trainer.step(512)
net(X[:1])
net.export(f"{out}/mlp", epoch=0)
np.save(f"{out}/sample.npy", np.random.RandomState(1).rand(8, 64).astype(np.float32))
