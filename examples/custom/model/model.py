"""Standardize the features with stored mean/std, apply a linear layer and softmax, return the top-2 classes.

Input ``features`` (float32 [N, 4]). Outputs ``probabilities`` (float32 [N, 3]), ``top_k`` (int64
[N, 2], class indices, best first) and ``top_labels`` (string [N, 2], class names). The weights
live in ``weights.npz`` and the class names in ``labels.json``, both signed with this module.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from modelfn.runtime.python_model import BundleFiles

TOP_K = 2


@dataclasses.dataclass(frozen=True)
class State:
    """Everything ``predict`` needs, read once at cold start."""

    mean: npt.NDArray[np.float32]
    std: npt.NDArray[np.float32]
    weight: npt.NDArray[np.float32]
    bias: npt.NDArray[np.float32]
    labels: npt.NDArray[np.object_]


def load(files: BundleFiles) -> State:
    """Read the verified data files (bytes in memory, never a path)."""
    weights = files.load_npz("weights.npz")
    labels = np.asarray(files.load_json("labels.json"), dtype=object)
    return State(weights["mean"], weights["std"], weights["weight"], weights["bias"], labels)


def predict(state: State, inputs: dict[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.generic]]:
    """Pre-processing, the model, and post-processing, in plain numpy."""
    x = (inputs["features"] - state.mean) / state.std
    logits = x @ state.weight + state.bias
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    probabilities = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    top_k = np.argsort(-probabilities, axis=1, kind="stable")[:, :TOP_K].astype(np.int64)
    return {"probabilities": probabilities, "top_k": top_k, "top_labels": state.labels[top_k]}
