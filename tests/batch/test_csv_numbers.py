"""How CSV cells become numbers: what numpy's parser reads, what is refused by row and column, and that
text after '#' or rows of the wrong width are never mistaken for comments or silently accepted."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

import modelfn.batch._csv as csv_format
from modelfn.bundle.manifest import FrameworkInfo, Manifest, TensorSpec
from modelfn.errors import ModelfnError, UnprocessableInput

# Whitespace, signs, overflow past float32, NaN spellings, hex and underscores (Python's float() reads
# "1_0", the C parsers do not), a decimal whose float32 is rounded through float64 as numpy does, quotes,
# a comment sign, and empty or foreign text.
CELLS = [
    "1.5", " 2.5", "2.5 ", "\t3", "+1", "-0", "1.", ".5", "1e5", "1E-3", "1e39", "-1e39", "1e-50",
    "3.4028236e38", "1e400", "1.0000000596046447753906251", "nan", "NaN", "-nan", "nan(1)", "inf", "-Inf",
    "Infinity", "0x10", "1_0", "", "abc", '"2.5"', '" 2.5"', '"2""5"', "\x0b1.5", "1d5", "1 5", "# 4", "4 # x",
]  # fmt: skip


def _manifest(inputs: list[TensorSpec]) -> Manifest:
    return Manifest(
        name="m",
        version=1,
        framework=FrameworkInfo(name="onnx"),
        inputs=inputs,
        outputs=[TensorSpec(name="y", dtype="float32", shape=[-1, 3])],
        created_at=dt.datetime.now(dt.UTC),
        modelfn_version="test",
    )


def _python_reading(cell: str) -> float | None:
    """The value a cell should have: Python's float() of the unquoted, stripped text, minus its underscores."""
    text = cell.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", CELLS)
def test_feature_cells_read_as_python_reads_them_or_are_named(cell: str, dtype: Any) -> None:
    # GIVEN a chunk of feature rows (rows 11-13 of the object), the second holding a value parsers may differ on
    names = ["a", "b", "c", "d"]
    lines = [b"1,2,3,4", f"5,{cell},7,8".encode(), b"-9.25,1e-7,0,12345678.9"]
    manifest = _manifest([TensorSpec(name="x", dtype=dtype, shape=[-1, 4])])
    expected = _python_reading(cell)
    with np.errstate(over="ignore"):
        overflows = expected is not None and np.isfinite(expected) and not np.isfinite(np.dtype(dtype).type(expected))
    # WHEN the chunk is parsed
    if expected is None or overflows:
        with pytest.raises(UnprocessableInput) as refused:
            csv_format._feeds(lines, names, dict.fromkeys(names, dtype), 10, manifest)
        # THEN a value Python would not read, or one outside the input type's range (1e39 for float32: never
        # silently inf, SECURITY.md rule 17), is refused naming its row and column
        assert refused.value.field == "b" and "row 12" in refused.value.message
        return
    matrix = csv_format._feeds(lines, names, dict.fromkeys(names, dtype), 10, manifest)["x"]
    # THEN it holds the value read as float64 then cast, and the other rows intact
    with np.errstate(over="ignore"):
        want = np.array([[1, 2, 3, 4], [5, expected, 7, 8], [-9.25, 1e-7, 0, 12345678.9]]).astype(dtype)
    assert matrix.dtype == np.dtype(dtype) and matrix.shape == (3, 4)
    np.testing.assert_array_equal(matrix, want)


GOOD_LINES = [b"1.5,2,note", b"1.5,2,note # with a hash", b"1.5,2,caf\xc3\xa9", b'1.5,2,"quoted, with a comma"']
BAD_LINES = [b"1.5,2,\xff", b"1.5,x,n", b"1.5,2", b"1.5,2,n,4"]


@pytest.mark.parametrize("line", GOOD_LINES + BAD_LINES)
def test_named_input_columns_beside_a_text_column(line: bytes) -> None:
    # GIVEN columns feeding two named inputs of different float types, beside a text column the model does not read
    manifest = _manifest(
        [TensorSpec(name="a", dtype="float32", shape=[-1]), TensorSpec(name="b", dtype="float64", shape=[-1, 1])]
    )
    names = ["a", "b", "note"]
    used = {"a": "float32", "b": "float64"}
    # WHEN a chunk holding the line is parsed
    try:
        feeds = csv_format._feeds([b"0.1,0.2,plain", line], names, used, 0, manifest)
    except ModelfnError as exc:  # checked below: only the bad lines may get here
        error: ModelfnError | None = exc
    else:
        error = None
    # THEN text after '#' is data, not a comment; a row of the wrong width, a bad number or bytes that are not
    # UTF-8 are refused naming row 2
    if line in GOOD_LINES:
        assert error is None
        assert feeds["a"].dtype == np.float32 and feeds["b"].shape == (2, 1)
        np.testing.assert_array_equal(feeds["a"], np.array([0.1, 1.5], dtype=np.float32))
    else:
        assert error is not None and "row 2" in error.message
