"""The Keras REST API's model: a Keras 3 Sequential MLP 64->256->256->10, saved as .keras."""

import sys

import keras
import numpy as np

out = sys.argv[1]
keras.utils.set_random_seed(0)
m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                      keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])  # fmt: skip
m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
m.fit(np.random.rand(512, 64).astype("float32"), np.random.randint(0, 10, 512), epochs=2, verbose=0)
m.save(f"{out}/mlp.keras")
np.save(f"{out}/sample.npy", np.random.RandomState(1).rand(8, 64).astype(np.float32))
