"""classify / labels_of: declared activation, top-k, binary threshold; today's guess without a declaration."""

from __future__ import annotations

import numpy as np
import pytest

from modelfn.bundle.manifest import Manifest, TensorSpec
from modelfn.bundle.processing import OutputProcessing, Processing
from modelfn.errors import UnprocessableInput
from modelfn.processing.outputs import classify, labels_of
from tests.serving.tiny_models import manifest


def _model(labels: list[str | int] | None, output: OutputProcessing | None, columns: int = 3) -> Manifest:
    logits = TensorSpec(name="logits", dtype="float32", shape=[-1, columns])
    outputs = [logits, TensorSpec(name="k", dtype="int64", shape=[-1])]
    spec = manifest("m", [TensorSpec(name="x", dtype="float32", shape=[-1, 4])], outputs, labels=labels)
    return spec.replace(processing=Processing(output=output)) if output is not None else spec


def test_softmax_top_k_most_probable_first() -> None:
    # GIVEN logits for two rows and a declared softmax with top_k 2
    model = _model(["cat", "dog", "fox"], OutputProcessing(output="logits", activation="softmax", top_k=2))
    logits = np.array([[1.0, 3.0, 2.0], [0.0, 0.0, 5.0]], dtype=np.float32)
    results = {"k": np.array([0, 0]), "logits": logits}
    answers = classify(results, model, field="body")
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert [label for label, _ in answers[0]] == ["dog", "fox"] and [a[0][0] for a in answers] == ["dog", "fox"]
    np.testing.assert_allclose([p for _, p in answers[0]], [expected[1], expected[2]], rtol=1e-6)
    assert labels_of(results, model, field="body") == ["dog", "fox"]
    # AND an explicit top_k overrides the declared one
    assert len(classify(results, model, field="body", top_k=3)[0]) == 3


def test_binary_single_score_with_sigmoid_and_threshold() -> None:
    # GIVEN a binary model emitting one logit per row, sigmoid, threshold 0.3
    model = _model(["ham", "spam"], OutputProcessing(output="logits", activation="sigmoid", threshold=0.3), columns=1)
    logit = np.array([[-0.5], [-2.0], [1.0]], dtype=np.float32)  # p = 0.378, 0.119, 0.731
    answers = classify({"logits": logit}, model, field="body")
    # THEN the chosen label comes first, even when less probable than the other one (0.378 >= 0.3)
    assert [row[0][0] for row in answers] == ["spam", "ham", "spam"]
    assert answers[0][0][1] == pytest.approx(1 / (1 + np.exp(0.5)))
    assert answers[0][1] == ("ham", pytest.approx(1 - 1 / (1 + np.exp(0.5))))
    assert labels_of({"logits": logit}, model, field="body") == ["spam", "ham", "spam"]


def test_two_columns_of_probabilities_with_threshold() -> None:
    model = _model([0, 1], OutputProcessing(output="logits", threshold=0.9), columns=2)
    probabilities = np.array([[0.2, 0.8], [0.05, 0.95]], dtype=np.float32)
    assert labels_of({"logits": probabilities}, model, field="body") == [0, 1]
    assert classify({"logits": probabilities}, model, field="body")[0][0] == (0, pytest.approx(0.2))


def test_without_a_declaration_today_s_guess_holds() -> None:
    # GIVEN no output processing: the first float output with one column per label, softmaxed unless a distribution
    model = _model(["a", "b", "c"], None)
    probabilities = np.array([[0.1, 0.7, 0.2]], dtype=np.float32)
    assert classify({"k": np.array([1]), "logits": probabilities}, model, field="f")[0][0] == ("b", pytest.approx(0.7))
    assert labels_of({"logits": np.array([[5.0, 1.0, 0.0]], dtype=np.float32)}, model, field="f") == ["a"]
    # AND no labels declared: labels_of refuses (422), classify answers class indices
    unlabeled = _model(None, None)
    with pytest.raises(UnprocessableInput, match="declares no labels"):
        labels_of({"logits": probabilities}, unlabeled, field="return_labels")
    assert classify({"logits": probabilities}, unlabeled, field="f")[0][0][0] == 1


def test_bad_scores_are_422() -> None:
    model = _model(["a", "b", "c"], OutputProcessing(output="logits", activation="softmax"))
    with pytest.raises(UnprocessableInput, match="non-finite"):
        classify({"logits": np.array([[np.nan, 0, 0]], dtype=np.float32)}, model, field="f")
    with pytest.raises(UnprocessableInput, match="no output 'logits'"):
        classify({"k": np.array([1])}, model, field="f")
    with pytest.raises(UnprocessableInput, match="no output of this model holds class scores"):
        classify({"k": np.array([1])}, _model(["a"], None), field="f")
