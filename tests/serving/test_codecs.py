"""Tensor codecs: exact round trips, and casts that refuse to change a value's meaning."""

from __future__ import annotations

import numpy as np
import pytest

from modelfn.errors import InvalidRequest, UnprocessableInput
from modelfn.serving import codecs


@pytest.mark.parametrize("datatype", ["BOOL", "UINT8", "INT16", "INT32", "INT64", "UINT64", "FP16", "FP32", "FP64"])
def test_binary_round_trip_for_every_numeric_datatype(datatype: str) -> None:
    # GIVEN an array of the datatype
    array = (np.arange(6) % 2 == 0) if datatype == "BOOL" else np.arange(6).astype(codecs.V2_TO_NUMPY[datatype])
    array = array.reshape(2, 3)
    # WHEN encoded as V2 binary and decoded from a memoryview
    raw = codecs.encode_binary(array)
    back = codecs.decode_binary_data(memoryview(raw), datatype, (2, 3), field="t")
    # THEN dtype, shape and values are identical
    assert codecs.v2_datatype(array.dtype) == datatype
    assert back.dtype == array.dtype and back.shape == (2, 3)
    np.testing.assert_array_equal(back, array)


def test_unaligned_binary_slices_are_copied_to_aligned_arrays() -> None:
    # GIVEN FP64 bytes starting at an odd offset of the body
    body = b"x" + np.array([1.5, -2.0]).tobytes()
    # WHEN decoded from that offset
    array = codecs.decode_binary_data(memoryview(body)[1:], "FP64", (2,), field="t")
    # THEN the array is aligned and correct
    assert array.flags.aligned
    assert array.tolist() == [1.5, -2.0]


def test_bytes_round_trip_including_empty_and_unicode() -> None:
    items = np.array(["", "héllo", "a" * 300], dtype=object)
    raw = codecs.serialize_bytes(items)
    assert codecs.deserialize_bytes(memoryview(raw), 3, field="s") == items.tolist()


@pytest.mark.parametrize(
    "raw",
    [b"\x05\x00\x00\x00abc", b"\x01\x00", b"\x02\x00\x00\x00\xff\xfe"],
    ids=["overrun", "truncated-length", "not-utf8"],
)
def test_malformed_bytes_are_422(raw: bytes) -> None:
    with pytest.raises(UnprocessableInput) as info:
        codecs.deserialize_bytes(memoryview(raw), 1, field="s")
    assert info.value.field == "s"


@pytest.mark.parametrize(
    ("data", "datatype"),
    [
        ([1.5], "INT64"),  # would truncate
        ([256], "UINT8"),  # would wrap
        ([-1], "UINT32"),  # would wrap
        ([1e39], "FP32"),  # would overflow to inf
        ([True], "FP32"),  # a bool is not a number here
        ([1], "BOOL"),
        ([1], "BYTES"),
        (["1"], "FP32"),
    ],
)
def test_json_casts_never_change_a_value(data: list[object], datatype: str) -> None:
    with pytest.raises(UnprocessableInput) as info:
        codecs.decode_json_data(data, datatype, (1,), field="t")
    assert info.value.field == "t"


def test_json_casts_that_keep_values_are_accepted() -> None:
    assert codecs.decode_json_data([[1, 2]], "FP16", (2,), field="t").dtype == np.float16
    assert codecs.decode_json_data([255], "UINT8", (1,), field="t").tolist() == [255]
    assert codecs.decode_json_data(7, "INT32", (1, 1), field="t").tolist() == [[7]]
    assert codecs.decode_json_data([], "INT8", (0, 3), field="t").shape == (0, 3)


def test_hostile_shapes_are_refused_before_allocating() -> None:
    # GIVEN a shape whose product is astronomically large, with tiny data
    with pytest.raises(UnprocessableInput):
        codecs.decode_json_data([1.0], "FP32", (2**40, 2**40), field="t")
    with pytest.raises(UnprocessableInput):
        codecs.decode_binary_data(memoryview(b"1234"), "FP32", (2**62,), field="t")
    with pytest.raises(InvalidRequest):
        codecs.check_shape([1] * 33, field="t")
    with pytest.raises(InvalidRequest):
        codecs.check_shape([True], field="t")
