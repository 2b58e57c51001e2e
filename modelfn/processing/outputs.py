"""Class scores → answers: probabilities, the chosen label and the top-k, per row.

With ``OutputProcessing`` in the manifest the bundle says which output holds the scores, which
activation turns them into probabilities and, for binary classifiers, the threshold. Without it
the scores are guessed as the compatibility routes always did: the first float output with one
column per label, softmaxed unless it already is a distribution (TorchServe's image classifier).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from modelfn.errors import UnprocessableInput

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest
    from modelfn.bundle.processing import OutputProcessing

TOP_K = 5
PROBABILITY_TOLERANCE = 1e-3
"""Rows of scores in [0, 1] summing to 1 within this are already probabilities (no activation added)."""
"""Classes reported per row without a declared ``top_k``, as TorchServe and the Keras REST API example do."""
Label = str | int


class Scores(NamedTuple):
    """Per-row class probabilities, their labels, and the index of the chosen class per row."""

    labels: list[Label]
    probabilities: npt.NDArray[Any]
    """``[rows, classes]`` float64."""
    chosen: npt.NDArray[Any]
    """``[rows]`` class index: the arg-max, or the threshold's choice for a binary classifier."""

    def chosen_labels(self) -> list[Label]:
        """The chosen label per row."""
        return [self.labels[int(i)] for i in self.chosen]


def class_scores(
    results: Mapping[str, npt.NDArray[Any]], manifest: Manifest, *, field: str, need_labels: bool = False
) -> Scores | None:
    """The class probabilities, or None when no output holds class scores (or, ``need_labels``, no labels)."""
    declared = manifest.processing.output if manifest.processing is not None else None
    if declared is not None:
        return _declared(results, manifest, declared, field=field)
    return _guessed(results, manifest, field=field, need_labels=need_labels)


def classify(
    results: Mapping[str, npt.NDArray[Any]], manifest: Manifest, *, field: str, top_k: int | None = None
) -> list[list[tuple[Label, float]]]:
    """Per row, the top-k ``(label, probability)`` pairs: the chosen label first, then by probability."""
    scores = class_scores(results, manifest, field=field)
    if scores is None:
        raise UnprocessableInput("no output of this model holds class scores", field=field)
    declared = manifest.processing.output if manifest.processing is not None else None
    return ranked(scores, top_k or (declared.top_k if declared is not None else TOP_K))


def labels_of(results: Mapping[str, npt.NDArray[Any]], manifest: Manifest, *, field: str) -> list[Label]:
    """The chosen label per row (``return_labels``): the declared output's, else the arg-max of the scores."""
    if manifest.processing is not None and manifest.processing.output is not None:
        scores = class_scores(results, manifest, field=field)
        assert scores is not None
        return scores.chosen_labels()
    labels = manifest.labels
    if not labels:
        raise UnprocessableInput("this model declares no labels", field=field)
    for array in results.values():
        if array.dtype.kind == "f" and array.ndim >= 1 and array.shape[-1] == len(labels):
            return [labels[int(i)] for i in array.argmax(axis=-1).reshape(-1)]
    raise UnprocessableInput(f"no output has one score per label ({len(labels)})", field=field)


def ranked(scores: Scores, k: int) -> list[list[tuple[Label, float]]]:
    """The ``k`` best ``(label, probability)`` per row, the chosen class first, then most probable first."""
    order = (-scores.probabilities).argsort(axis=1, kind="stable")
    out: list[list[tuple[Label, float]]] = []
    for row, indices, chosen in zip(scores.probabilities, order, scores.chosen, strict=True):
        picked = [int(chosen), *(int(i) for i in indices if int(i) != int(chosen))][:k]
        out.append([(scores.labels[i], float(row[i])) for i in picked])
    return out


def _declared(
    results: Mapping[str, npt.NDArray[Any]], manifest: Manifest, spec: OutputProcessing, *, field: str
) -> Scores:
    import numpy as np

    array = results.get(spec.output)
    if array is None:
        raise UnprocessableInput(f"the model returned no output {spec.output!r}", field=field)
    if array.dtype.kind not in "fiu" or array.ndim not in (1, 2) or array.shape[0] == 0 and array.ndim == 1:
        raise UnprocessableInput(
            f"output {spec.output!r} has shape {list(array.shape)} ({array.dtype}), not [rows, classes] scores",
            field=field,
        )
    scores = _finite(array.astype(np.float64), field=field)
    single = scores.ndim == 1 or scores.shape[1] == 1
    if spec.activation == "softmax" and not single:
        scores = _softmax(scores)
    elif spec.activation == "sigmoid" or (spec.activation == "softmax" and single):
        scores = 1 / (1 + np.exp(-scores))
    if single:
        positive = scores.reshape(-1)
        scores = np.stack([1 - positive, positive], axis=1)
    classes = scores.shape[1]
    labels = _labels(manifest, classes)
    if spec.threshold is not None and classes == 2:
        chosen = (scores[:, 1] >= spec.threshold).astype(np.int64)
    else:
        chosen = scores.argmax(axis=1)
    return Scores(labels, scores, chosen)


def _guessed(
    results: Mapping[str, npt.NDArray[Any]], manifest: Manifest, *, field: str, need_labels: bool
) -> Scores | None:
    import numpy as np

    labels: list[Label] | None = list(manifest.labels) if manifest.labels else None
    if labels is None and need_labels:
        return None
    for array in results.values():
        if array.dtype.kind != "f" or array.ndim != 2 or (labels is not None and array.shape[1] != len(labels)):
            continue
        scores = _finite(array.astype(np.float64), field=field)
        if not is_distribution(scores):
            scores = _softmax(scores)
        return Scores(labels if labels is not None else list(range(array.shape[1])), scores, scores.argmax(axis=1))
    return None


def _labels(manifest: Manifest, classes: int) -> list[Label]:
    """The manifest's labels when there is one per class, else the class indices."""
    if manifest.labels and len(manifest.labels) == classes:
        return list(manifest.labels)
    return list(range(classes))


def _finite(scores: npt.NDArray[Any], *, field: str) -> npt.NDArray[Any]:
    import numpy as np

    if not np.isfinite(scores).all():
        raise UnprocessableInput("the model returned non-finite class scores", field=field)
    return scores


def is_distribution(scores: npt.NDArray[Any]) -> bool:
    """Rows of non-negative scores summing to 1 (within ``PROBABILITY_TOLERANCE``): probabilities already.

    The one test both packaging (to choose an activation) and serving (without a declared one) apply.
    """
    import numpy as np

    return bool((scores >= 0).all() and np.allclose(scores.sum(axis=-1), 1.0, atol=PROBABILITY_TOLERANCE))


def _softmax(scores: npt.NDArray[Any]) -> npt.NDArray[Any]:
    import numpy as np

    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
