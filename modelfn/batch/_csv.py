"""CSV in, the same CSV with prediction columns appended out, ``chunk_rows`` lines at a time.

The header names the columns (see ``modelfn.batch.tabular`` for how they feed the model); it is
checked against the model before any row is read. A bundle that declares ``records`` features
takes them by name, in the model's order, wherever they stand in the header; other columns (ids)
are carried through to the output, not fed. Input lines are copied to the output byte for
byte and the predictions appended, so columns the model does not use pass through untouched.
Numbers are parsed by numpy's C reader and written as the shortest text that reads back to the
same value (orjson's float formatting: several times faster than numpy's ``astype(str)``). A value
that does not parse is reported with its row (1 = first data row) and column. Fields may be
quoted, but a quoted field may not contain a line break; ``#`` is data, not a comment.

pyarrow's CSV reader was measured as the parser and left out: ~20% less CPU than numpy's on narrow
numeric rows, none on 784-column rows, no end-to-end gain through the handler, and ~65 MiB more RSS
(import and first use) in a process that had not loaded it. The Lambda zip does not carry it either.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelfn.batch._pipeline import OrderedWriter, prefetched
from modelfn.batch.formats import line_chunks
from modelfn.batch.tabular import feeds_from_columns, output_order, prediction_columns
from modelfn.errors import InvalidRequest, UnprocessableInput
from modelfn.runtime.base import numpy_dtype

if TYPE_CHECKING:
    import numpy as np

    from modelfn.batch.formats import ScoreContext
    from modelfn.batch.sink import Sink
    from modelfn.bundle.manifest import Manifest

    Array = np.ndarray[Any, Any]


def score(data: Iterator[bytes], sink: Sink, ctx: ScoreContext) -> int:
    """Score every data line, reading ahead and writing behind the model; returns the number of rows."""
    chunks = line_chunks(data, ctx.chunk_rows, first=ctx.chunk_rows + 1)  # the header, then full chunks
    with ctx.timed("read"):
        first = next(chunks, None)
    if first is None:
        raise InvalidRequest("the CSV object is empty: a header row is required", field="header")
    header = _decode(first[0], 0)
    names = _fields(header, 0)
    if len(set(names)) != len(names) or not all(names):
        raise UnprocessableInput(f"the CSV header has empty or repeated column names: {names}", field="header")
    used = _used_columns(names, ctx.manifest)

    def parsed() -> Iterator[tuple[list[bytes], dict[str, Array]]]:
        done = 0
        lines: list[bytes] | None = first[1:]
        while lines is not None:
            if lines:
                with ctx.timed("read"):
                    feeds = _feeds(lines, names, used, done, ctx.manifest)
                yield lines, feeds
                done += len(lines)
            with ctx.timed("read"):
                lines = next(chunks, None)

    def write(lines: list[bytes], results: dict[str, Array], first_chunk: bool) -> None:
        with ctx.timed("write"):
            if first_chunk:
                sink.write(_header_line(header, list(prediction_columns(results, ctx.manifest))))
            sink.write(_append(lines, _prediction_text(results, ctx.manifest)))

    rows = 0
    with OrderedWriter() as writer, contextlib.closing(prefetched(parsed())) as chunks_ahead:
        for lines, feeds in chunks_ahead:
            results = ctx.predict(feeds, first_row=rows + 1)
            writer.submit(functools.partial(write, lines, results, rows == 0))
            rows += len(lines)
    if rows == 0:
        sink.write(_header_line(header, _empty_prediction_names(ctx)))
    return rows


def _used_columns(names: list[str], manifest: Manifest) -> dict[str, str]:
    """Column name → manifest dtype of the columns the model reads; the header is checked against the model here."""
    import numpy as np

    records = manifest.processing.records if manifest.processing is not None else None
    target = manifest.input(records.input) if records is not None and records.input is not None else None
    if records is not None and target is not None:  # declared features: picked by name, other columns carried
        missing = [feature for feature in records.features if feature not in names]
        if missing:
            raise UnprocessableInput(
                f"missing column {missing[0]!r}: this model's features are {records.features}", field=missing[0]
            )
        return dict.fromkeys(records.features, target.dtype)
    inputs: dict[str, str] = {spec.name: spec.dtype for spec in manifest.inputs}
    if all(name in names for name in inputs):
        used = {name: inputs[name] for name in names if name in inputs}
    else:  # feature columns (single input), or a missing input column that the probe below names
        used = dict.fromkeys(names, manifest.inputs[0].dtype if len(inputs) == 1 else "float32")
    probe = {name: np.zeros(0, dtype=object if used.get(name) == "string" else np.float32) for name in names}
    feeds_from_columns(probe, manifest)  # raises naming the column when the header cannot feed the model
    return used


def _feeds(
    lines: list[bytes], names: list[str], used: dict[str, str], done: int, manifest: Manifest
) -> dict[str, Array]:
    """Model feeds of one chunk: numeric columns through numpy's C parser, text columns through ``csv``."""
    import numpy as np

    if any(dtype == "string" for dtype in used.values()):
        return feeds_from_columns(_parse_python(lines, names, used, done), manifest)
    text = b"\n".join(lines)  # parsed from bytes: no decoded copy of the chunk is kept
    spec = manifest.inputs[0]
    index = {name: names.index(name) for name in used}
    options: dict[str, Any] = {"delimiter": ",", "quotechar": '"', "encoding": "utf-8", "comments": None}
    if list(index.values()) != list(range(len(names))):  # usecols costs ~5% even when it selects every column
        options["usecols"] = list(index.values())
        if b'"' not in text and text.count(b",") != len(lines) * (len(names) - 1):
            _locate(lines, names, used, done)  # usecols alone lets rows with too few or too many fields through
    try:
        if len(manifest.inputs) == 1 and spec.name not in used:  # feature columns: one matrix, in header order
            matrix = np.loadtxt(io.BytesIO(text), dtype=numpy_dtype(spec.dtype), ndmin=2, **options)
            if matrix.dtype.kind == "f" and not np.isfinite(matrix).all():
                _locate(lines, names, used, done)  # numpy reads 1e39 as float32 inf: find and refuse it
            return {spec.name: matrix if len(spec.shape) == 2 else matrix.reshape(-1)}
        dtype = [(f"c{index[name]}", numpy_dtype(used[name])) for name in used]
        table = np.loadtxt(io.BytesIO(text), dtype=dtype, ndmin=1, **options)
    except ValueError as exc:  # UnicodeDecodeError included
        _locate(lines, names, used, done)  # raises with row and column
        raise UnprocessableInput(f"rows {done + 1}-{done + len(lines)}: {exc}", field="body") from exc
    if any(table.dtype[field].kind == "f" and not np.isfinite(table[field]).all() for field in table.dtype.names or ()):
        _locate(lines, names, used, done)  # numpy reads 1e39 as float32 inf: find and refuse it
    return feeds_from_columns({name: np.asarray(table[f"c{index[name]}"]).reshape(-1) for name in used}, manifest)


def _parse_python(lines: list[bytes], names: list[str], used: dict[str, str], done: int) -> dict[str, Array]:
    """Columns through the ``csv`` module (text inputs); numbers checked one by one."""
    import numpy as np

    index = {name: names.index(name) for name in used}
    parsed = [_fields(_decode(line, done + i + 1), done + i + 1) for i, line in enumerate(lines)]
    columns: dict[str, Array] = {}
    for name, dtype in used.items():
        values = [_cell(row, index[name], names, done + i + 1) for i, row in enumerate(parsed)]
        columns[name] = np.asarray(values, dtype=object) if dtype == "string" else _typed(values, name, dtype, done)
    return columns


def _typed(values: list[str], name: str, dtype: str, done: int) -> Array:
    import numpy as np

    target = numpy_dtype(dtype)
    out = np.empty(len(values), dtype=target)
    for i, value in enumerate(values):
        try:
            if "_" in value:  # Python reads "1_000"; numpy's and pyarrow's parsers do not, nor do we
                raise ValueError(value)
            with np.errstate(over="ignore"):  # an overflow is refused just below, naming the cell
                out[i] = (value.strip().lower() in ("1", "true")) if target.kind == "b" else target.type(value)
        except (ValueError, OverflowError) as exc:
            raise UnprocessableInput(
                f"row {done + i + 1}, column {name!r}: cannot read {value!r} as {dtype}", field=name
            ) from exc
        if target.kind == "f" and not np.isfinite(out[i]) and math.isfinite(float(value)):
            raise UnprocessableInput(
                f"row {done + i + 1}, column {name!r}: {value.strip()!r} is outside the {dtype} range"
                f" (±{float(np.finfo(target).max):.6g})",
                field=name,
            )
    return out


def _locate(lines: list[bytes], names: list[str], used: dict[str, str], done: int) -> None:
    """Find the first bad cell of a chunk numpy refused, and raise naming its row and column."""
    for i, line in enumerate(lines):
        row = _fields(_decode(line, done + i + 1), done + i + 1)
        _cell(row, 0, names, done + i + 1)
        for name, dtype in used.items():
            _typed([row[names.index(name)]], name, dtype, done + i)


def _cell(row: list[str], at: int, names: list[str], line_no: int) -> str:
    if len(row) != len(names):
        raise UnprocessableInput(
            f"row {line_no} has {len(row)} fields, the header has {len(names)}", field=f"row {line_no}"
        )
    return row[at]


def _fields(line: str, line_no: int) -> list[str]:
    try:
        return next(csv.reader([line]))
    except (csv.Error, StopIteration) as exc:
        raise UnprocessableInput(f"row {line_no} is not valid CSV", field=f"row {line_no}") from exc


def _decode(data: bytes, line_no: int) -> str:
    try:
        return data.decode("utf-8-sig" if line_no == 0 else "utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"row {line_no} is not UTF-8 text", field=f"row {line_no}") from exc


def _append(lines: list[bytes], predictions: list[bytes]) -> bytes:
    """Each input line, a comma, its prediction text; one block of bytes for the chunk."""
    return b"\n".join(map(b",".join, zip(lines, predictions, strict=True))) + b"\n"


def _prediction_text(results: dict[str, Array], manifest: Manifest) -> list[bytes]:
    """Per row, the comma-separated prediction values in ``prediction_columns`` order."""
    per_output = [_output_text(results[name]) for name in output_order(results, manifest)]
    if len(per_output) == 1:
        return per_output[0]
    return list(map(b",".join, zip(*per_output, strict=True)))


def _output_text(array: Array) -> list[bytes]:
    """One output's values, per row, comma-separated (a row's columns flattened as ``tabular`` names them)."""
    import numpy as np
    import orjson

    matrix = array.reshape(len(array), -1)
    if len(matrix) and matrix.dtype.kind in "iuf" and matrix.shape[1] and np.isfinite(matrix).all():
        # orjson writes [[a,b],[c,d]] with shortest round-trip floats; the row separators are "],["
        rows: list[bytes] = orjson.dumps(matrix, option=orjson.OPT_SERIALIZE_NUMPY)[2:-2].split(b"],[")
        return rows
    if matrix.dtype.kind in "OUS":
        text = [[_quote(v.decode() if isinstance(v, bytes) else str(v)) for v in row] for row in matrix.tolist()]
    else:
        text = matrix.astype(str).tolist()  # nan, inf, booleans: numpy's spelling
    return [",".join(row).encode() for row in text]


def _quote(value: str) -> str:
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _header_line(header: str, prediction_names: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(prediction_names)
    return f"{header},{buffer.getvalue()}\n".encode()


def _empty_prediction_names(ctx: ScoreContext) -> list[str]:
    """Column names for a header-only input: from the manifest's output shapes and labels."""
    import numpy as np

    results = {
        spec.name: np.zeros([0, *[max(d, 1) for d in spec.shape[1:]]], dtype=numpy_dtype(spec.dtype))
        for spec in ctx.manifest.outputs
    }
    return list(prediction_columns(results, ctx.manifest))
