"""Named columns to model feeds and model outputs to columns: the mapping every tabular front end shares."""

from __future__ import annotations

import numpy as np
import pytest

from modelfn.batch.tabular import feeds_from_columns, prediction_columns
from modelfn.bundle.manifest import TensorSpec
from modelfn.errors import UnprocessableInput
from tests.serving.tiny_models import LABELS, manifest

FEATURES = manifest(
    "f", [TensorSpec(name="x", dtype="float32", shape=[-1, 3])], [TensorSpec(name="y", dtype="float32", shape=[-1])]
)
NAMED = manifest(
    "n",
    [TensorSpec(name="age", dtype="int64", shape=[-1]), TensorSpec(name="city", dtype="string", shape=[-1, 1])],
    [
        TensorSpec(name="label", dtype="int64", shape=[-1]),
        TensorSpec(name="probabilities", dtype="float32", shape=[-1, 3]),
    ],
    labels=list(LABELS),
)


def test_feature_columns_feed_a_single_matrix_input_in_order() -> None:
    # GIVEN three feature columns (names need not match anything) for an input of shape [-1, 3]
    columns = {"c": np.array([1.0, 2.0]), "a": np.array([3.0, 4.0]), "b": np.array([5.0, 6.0])}
    # WHEN they are mapped
    feeds = feeds_from_columns(columns, FEATURES)
    # THEN they form the matrix in the given order
    np.testing.assert_array_equal(feeds["x"], [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]])


def test_wrong_feature_count_names_the_first_extra_column() -> None:
    columns = {n: np.zeros(2) for n in ("a", "b", "c", "extra")}
    with pytest.raises(UnprocessableInput) as refused:
        feeds_from_columns(columns, FEATURES)
    assert refused.value.field == "extra" and "3 feature columns, got 4" in refused.value.message


def test_named_inputs_take_their_columns_and_ignore_the_rest() -> None:
    # GIVEN one column per input, plus an id column the model does not take
    columns = {"id": np.array(["r1", "r2"]), "city": np.array(["Oslo", "Lima"]), "age": np.array([31, 45])}
    feeds = feeds_from_columns(columns, NAMED)
    # THEN each input gets its column in its own shape, and the id is not fed
    assert set(feeds) == {"age", "city"}
    np.testing.assert_array_equal(feeds["age"], [31, 45])
    assert feeds["city"].shape == (2, 1) and feeds["city"].dtype == object


def test_a_missing_named_input_is_refused_by_name() -> None:
    with pytest.raises(UnprocessableInput) as refused:
        feeds_from_columns({"age": np.array([1])}, NAMED)
    assert refused.value.field == "city"


def test_text_in_a_numeric_column_is_refused_by_column() -> None:
    columns = {"city": np.array(["Oslo"]), "age": np.array(["old"])}
    with pytest.raises(UnprocessableInput) as refused:
        feeds_from_columns(columns, NAMED)
    assert refused.value.field == "age"


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(UnprocessableInput) as refused:
        feeds_from_columns({"a": np.zeros(2), "b": np.zeros(3), "c": np.zeros(2)}, FEATURES)
    assert refused.value.field == "b"


def test_prediction_columns_use_output_names_and_labels() -> None:
    # GIVEN a classifier's outputs: a label per row and one probability per class
    results = {
        "probabilities": np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32),
        "label": np.array([0, 2]),
    }
    # WHEN they become columns
    columns = prediction_columns(results, NAMED)
    # THEN they follow the manifest's output order, and the class columns are named by label
    assert list(columns) == ["label", "probabilities_setosa", "probabilities_versicolor", "probabilities_virginica"]
    np.testing.assert_array_equal(columns["probabilities_virginica"], np.array([0.1, 0.8], dtype=np.float32))


def test_prediction_columns_without_labels_are_numbered_and_higher_ranks_flattened() -> None:
    results = {"y": np.arange(12, dtype=np.float32).reshape(2, 2, 3)}
    columns = prediction_columns(results, FEATURES)
    assert list(columns) == [f"y_{i}" for i in range(6)]
    np.testing.assert_array_equal(columns["y_5"], [5.0, 11.0])
