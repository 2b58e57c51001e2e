"""CSV numbers are parsed by pyarrow in processes that have loaded it and by numpy otherwise (the Lambda
zip has no pyarrow): both must give the same bits, the same output bytes and the same errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow  # noqa: F401  (loaded: the CSV parser takes the pyarrow path in this process)
import pytest

import modelfn.batch._csv as csv_format
from modelfn.batch.job import score_object
from modelfn.bundle.manifest import FrameworkInfo, Manifest, TensorSpec
from modelfn.errors import ModelfnError
from modelfn.loader import LoadedBundle
from modelfn.store.local import LocalStore
from tests.fixtures.bundles import Published

# Values where parsers tend to disagree: whitespace, signs, overflow past float32, NaN spellings (pyarrow
# also reads "nan(1)"), hex and underscores, a decimal whose float32 rounding differs when read directly
# instead of through float64 (numpy's way), quotes, a comment sign, and empty or foreign text.
CELLS = [
    "1.5", " 2.5", "2.5 ", "\t3", "+1", "-0", "1.", ".5", "1e5", "1E-3", "1e39", "-1e39", "1e-50",
    "3.4028236e38", "1e400", "1.0000000596046447753906251", "nan", "NaN", "-nan", "nan(1)", "inf", "-Inf",
    "Infinity", "0x10", "1_0", "", "abc", '"2.5"', '" 2.5"', '"2""5"', "\x0b1.5", "1d5", "1 5", "# 4", "4 # x",
]  # fmt: skip


def _feature_manifest(dtype: Any = "float32") -> Manifest:
    return _manifest([TensorSpec(name="x", dtype=dtype, shape=[-1, 4])])


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


def _outcome(parse: Callable[[], dict[str, Any]]) -> tuple[str, Any]:
    """What one parse gave: each feed's dtype, shape and raw bytes, or the error's type, field and message."""
    try:
        feeds = parse()
    except ModelfnError as exc:
        return ("error", (type(exc).__name__, exc.field, exc.message))
    return ("feeds", {name: (array.dtype.str, array.shape, array.tobytes()) for name, array in feeds.items()})


def _both_engines(monkeypatch: pytest.MonkeyPatch, parse: Callable[[], dict[str, Any]]) -> tuple[Any, Any]:
    with_arrow = _outcome(parse)
    with monkeypatch.context() as patched:
        patched.setattr(csv_format, "_arrow_csv", lambda: None)  # as on Lambda: no pyarrow
        with_numpy = _outcome(parse)
    return with_arrow, with_numpy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", CELLS)
def test_feature_columns_parse_the_same_with_either_engine(
    cell: str, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a chunk of feature rows, one of them holding a value parsers may read differently
    names = ["a", "b", "c", "d"]
    lines = [b"1,2,3,4", f"5,{cell},7,8".encode(), b"-9.25,1e-7,0,12345678.9"]
    used = dict.fromkeys(names, dtype)
    # WHEN the chunk is parsed with pyarrow and again with numpy only
    with_arrow, with_numpy = _both_engines(
        monkeypatch, lambda: csv_format._feeds(lines, names, used, 10, _feature_manifest(dtype))
    )
    # THEN both give the same bits, or the same error naming the row and column
    assert with_arrow == with_numpy
    if with_numpy[0] == "error":
        assert "row 12" in with_numpy[1][2]


GOOD_LINES = [b"1.5,2,note", b"1.5,2,note # with a hash", b"1.5,2,caf\xc3\xa9"]
BAD_LINES = [b"1.5,2,\xff", b"1.5,x,n", b"1.5,2", b"1.5,2,n,4"]


@pytest.mark.parametrize("line", GOOD_LINES + BAD_LINES)
def test_named_input_columns_parse_the_same_with_either_engine(line: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN columns feeding two named inputs of different float types, beside a text column the model does not read
    manifest = _manifest(
        [TensorSpec(name="a", dtype="float32", shape=[-1]), TensorSpec(name="b", dtype="float64", shape=[-1, 1])]
    )
    names = ["a", "b", "note"]
    lines = [b"0.1,0.2,plain", line]
    used = {"a": "float32", "b": "float64"}
    # WHEN the chunk is parsed with pyarrow and again with numpy only
    with_arrow, with_numpy = _both_engines(monkeypatch, lambda: csv_format._feeds(lines, names, used, 0, manifest))
    # THEN both agree; text after '#' is data, not a comment, and a bad row is named
    assert with_arrow == with_numpy
    if line in GOOD_LINES:
        assert with_numpy[0] == "feeds"
    else:
        assert with_numpy[0] == "error" and "row 2" in with_numpy[1][2]


def test_plain_numeric_chunks_take_the_pyarrow_path() -> None:
    # GIVEN a plain numeric chunk (no quotes, no NaN)
    lines = [b"1,2,3,4", b"5.5,-6,7e3,8"]
    # WHEN pyarrow is asked for its columns
    columns = csv_format._arrow_columns(b"\n".join(lines), 2, ["a", "b", "c", "d"], dict.fromkeys("abcd", "float32"))
    # THEN it parses them (the fast path is really taken where pyarrow is installed)
    assert columns is not None
    np.testing.assert_array_equal(np.stack(columns, axis=1), [[1, 2, 3, 4], [5.5, -6, 7000, 8]])


def test_scored_csv_bytes_are_the_same_with_either_engine(
    tiny: LoadedBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a CSV of 200 rows with varied numbers, one chunk holding a NaN and one a quoted value
    values = np.random.default_rng(5).normal(scale=1e3, size=(200, 4)).astype(np.float32)
    rows = [",".join(f"{v:.9g}" for v in row) for row in values.tolist()]
    rows[17] = "nan,1,2,3"
    rows[101] = '"4.5",1,2,3'
    data = ("a,b,c,d\n" + "\n".join(rows) + "\n").encode()
    source = LocalStore(tmp_path / "in")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "in.csv").write_bytes(data)
    # WHEN it is scored with pyarrow, then with numpy only, in chunks of 30 rows
    arrow = score_object(tiny, source, "in.csv", str(tmp_path / "arrow"), chunk_rows=30)
    monkeypatch.setattr(csv_format, "_arrow_csv", lambda: None)
    numpy_only = score_object(tiny, source, "in.csv", str(tmp_path / "numpy"), chunk_rows=30)
    # THEN the two results are byte for byte the same
    result = (tmp_path / "arrow" / arrow.output_key).read_bytes()
    assert result == (tmp_path / "numpy" / numpy_only.output_key).read_bytes()
    assert arrow.rows == numpy_only.rows == 200 and result.count(b"\n") == 201


def test_scoring_csv_does_not_load_pyarrow_by_itself(tmp_path: Path, local_published: Published) -> None:
    # GIVEN a small CSV and a fresh process that has not loaded pyarrow (like the Lambda handler)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "in.csv").write_bytes(b"a,b,c,d\n1,2,3,4\n5,6,7,8\n")
    script = (
        "import sys\nfrom modelfn.batch.job import score_object\nfrom modelfn.config import Settings\n"
        "from modelfn.loader import load_bundle\nfrom modelfn.store.local import LocalStore\n"
        "outcome = score_object(load_bundle(Settings.load()), LocalStore(sys.argv[1]), 'in.csv', sys.argv[2])\n"
        "print(outcome.rows, 'pyarrow' in sys.modules)"
    )
    # WHEN it scores the CSV
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "in"), str(tmp_path / "out")],
        env={**os.environ, **local_published.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # THEN every row is scored through numpy's parser and pyarrow was never imported
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["2", "False"]
