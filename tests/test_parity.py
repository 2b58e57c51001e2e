"""Parity comparison semantics: np.allclose tolerances, label equality, and a message naming the worst element."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfn.bundle.manifest import TensorSpec
from modelfn.errors import PackagingError, ParityError
from modelfn.parity import check_parity, compare, synthesize_sample, to_feeds
from tests.fixtures.models import tiny_onnx_expected

X_SPEC = TensorSpec(name="x", dtype="float32", shape=[-1, 4])


def test_equal_outputs_report_zero_and_align_unit_dims() -> None:
    # GIVEN native (n,) predictions and ONNX (n, 1) ones with the same values
    native = {"variable": np.array([1.0, 2.0, 3.0])}
    onnx: dict[str, Any] = {"variable": np.array([[1.0], [2.0], [3.0]], dtype=np.float32), "extra": np.zeros(3)}
    # WHEN compared
    report = compare(native, onnx, samples=3)
    # THEN they agree exactly; only outputs the native side names are compared
    assert (report.max_abs_diff, report.max_rel_diff, report.outputs, report.samples) == (
        0.0,
        0.0,
        {"variable": 0.0},
        3,
    )


def test_differences_within_tolerance_are_reported() -> None:
    # GIVEN differences inside atol + rtol * |native|
    native = {"p": np.array([[0.5, 0.25], [2.0, 0.0]])}
    onnx = {"p": np.array([[0.5, 0.25005], [2.001, 0.00001]])}
    # WHEN compared with the defaults (atol 1e-4, rtol 1e-3)
    report = compare(native, onnx)
    # THEN max abs and max rel (over non-zero natives) are reported
    assert report.max_abs_diff == pytest.approx(1e-3)
    assert report.max_rel_diff == pytest.approx(5e-4)
    assert (report.atol, report.rtol) == (1e-4, 1e-3)


def test_the_worst_element_is_named() -> None:
    # GIVEN two outputs past tolerance, one far worse than the other
    native = {"a": np.zeros((2, 3)), "b": np.ones((3, 2))}
    onnx = {"a": np.zeros((2, 3)), "b": np.ones((3, 2))}
    onnx["a"][0, 1] = 0.01
    onnx["b"][2, 0] = 1.5
    # WHEN compared
    with pytest.raises(ParityError) as info:
        compare(native, onnx)
    # THEN the message shows the worse one: output, index, native and onnx values
    assert "output 'b' at index [2, 0]: native 1.0, onnx 1.5" in info.value.message
    assert info.value.field == "b"


def test_nan_on_one_side_fails_and_on_both_sides_passes() -> None:
    # GIVEN a NaN produced by only one side, then by both
    one_side = {"y": np.array([1.0, np.nan])}
    # WHEN compared
    # THEN one-sided NaN is a parity failure at that index, a shared NaN is not
    with pytest.raises(ParityError, match=r"index \[1\]"):
        compare({"y": np.array([1.0, 2.0])}, one_side)
    assert compare(one_side, {"y": np.array([1.0, np.nan])}).max_abs_diff == 0.0


def test_labels_must_be_equal() -> None:
    # GIVEN string labels that agree, then disagree on one row
    native = {"label": np.array(["cat", "dog", "cat"])}
    agree = {"label": np.array(["cat", "dog", "cat"], dtype=object)}
    # WHEN compared
    # THEN agreement is 1.0, and a single flip fails naming both labels
    assert compare(native, agree).label_agreement == 1.0
    with pytest.raises(ParityError, match=r"labels differ at output 'label' at index \[2\]: native 'cat', onnx 'dog'"):
        compare(native, {"label": np.array(["cat", "dog", "dog"], dtype=object)})


def test_missing_output_and_shape_mismatch() -> None:
    # GIVEN a native output the ONNX model lacks, and outputs of different sizes
    # WHEN compared
    # THEN the first lists the ONNX outputs, the second shows both shapes
    with pytest.raises(PackagingError, match=r"'scores' is not an output of the ONNX model; its outputs are \['y'\]"):
        compare({"scores": np.zeros(2)}, {"y": np.zeros(2)})
    with pytest.raises(ParityError, match=r"native shape \[2, 2\] vs ONNX shape \[2, 3\]"):
        compare({"y": np.zeros((2, 2))}, {"y": np.zeros((2, 3))})


def test_check_parity_runs_the_onnx_model(tiny_onnx_path: Path) -> None:
    # GIVEN the tiny model's bytes and numpy's own answer for a sample
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    # WHEN parity is checked against that answer
    report = check_parity(tiny_onnx_path.read_bytes(), {"y": tiny_onnx_expected(x)}, {"x": x})
    # THEN onnxruntime agrees with numpy
    assert report.samples == 2 and report.max_abs_diff < 1e-5


def test_to_feeds_names_casts_and_checks_shapes() -> None:
    # GIVEN one float64 array for a single float32 input
    feeds = to_feeds(np.ones((3, 4)), [X_SPEC])
    # THEN it is named after the input and cast to its dtype
    assert list(feeds) == ["x"] and feeds["x"].dtype == np.float32
    # AND wrong names, wrong widths and bare arrays for multi-input models are refused
    with pytest.raises(PackagingError, match=r"sample inputs \['z'\] do not match"):
        to_feeds({"z": np.ones((1, 4))}, [X_SPEC])
    with pytest.raises(PackagingError, match=r"shape \[1, 5\]"):
        to_feeds(np.ones((1, 5)), [X_SPEC])
    with pytest.raises(PackagingError, match="pass the sample as a dict"):
        to_feeds(np.ones((1, 4)), [X_SPEC, TensorSpec(name="m", dtype="int64", shape=[-1])])


def test_synthesized_sample_follows_the_schema() -> None:
    # GIVEN a float input with dynamic batch and an int input with a dynamic inner dim
    specs = [X_SPEC, TensorSpec(name="ids", dtype="int64", shape=[3, -1])]
    # WHEN a sample is synthesized twice
    first, second = synthesize_sample(specs), synthesize_sample(specs)
    # THEN shapes use batch 2 / inner 1, dtypes match, and it is deterministic
    assert first["x"].shape == (2, 4) and first["x"].dtype == np.dtype("float32")
    assert first["ids"].shape == (3, 1) and first["ids"].dtype == np.dtype("int64")
    np.testing.assert_array_equal(first["x"], second["x"])
    # AND string inputs cannot be synthesized
    with pytest.raises(PackagingError, match="string input 'text'"):
        synthesize_sample([TensorSpec(name="text", dtype="string", shape=[-1])])


def test_classifier_scores_record_top1_agreement() -> None:
    # GIVEN class scores that agree within tolerance but whose argmax flips on one of two rows
    native = {"scores": np.array([[0.50000, 0.50002], [0.9, 0.1]], dtype=np.float32)}
    onnx = {"scores": np.array([[0.50002, 0.50000], [0.9, 0.1]], dtype=np.float32)}
    # WHEN compared as a classifier THEN parity passes and records the 50 % top-1 agreement
    report = compare(native, onnx, atol=1e-4, rtol=1e-3, samples=2, classifier=True)
    assert report.label_agreement == 0.5
    # AND without the classifier flag (a regressor with two targets) no agreement is claimed
    assert compare(native, onnx, atol=1e-4, rtol=1e-3, samples=2).label_agreement is None


def test_tuple_sample_maps_to_inputs_in_order() -> None:
    inputs = [TensorSpec(name="a", dtype="float32", shape=[-1, 2]), TensorSpec(name="b", dtype="int64", shape=[-1])]
    feeds = to_feeds((np.ones((3, 2)), np.arange(3)), inputs)
    assert list(feeds) == ["a", "b"] and feeds["a"].dtype == np.float32 and feeds["b"].dtype == np.int64
    with pytest.raises(PackagingError, match="tuple in that order"):
        to_feeds((np.ones((3, 2)),), inputs)
