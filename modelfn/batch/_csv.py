"""CSV in, the same CSV with prediction columns appended out, ``chunk_rows`` lines at a time.

The header names the columns (see ``modelfn.batch.tabular`` for how they feed the model). Input
lines are copied to the output byte for byte and the predictions appended, so columns the model
does not use (ids, timestamps) pass through untouched. Numeric columns are parsed by numpy's C
reader; a value that does not parse is reported with its row (1 = first data row) and column.
Fields may be quoted, but a quoted field may not contain a line break.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelfn.batch.formats import line_chunks
from modelfn.batch.tabular import feeds_from_columns, prediction_columns
from modelfn.errors import InvalidRequest, UnprocessableInput
from modelfn.runtime.base import numpy_dtype

if TYPE_CHECKING:
    import numpy as np

    from modelfn.batch.formats import ScoreContext
    from modelfn.batch.sink import Sink
    from modelfn.bundle.manifest import Manifest

    Array = np.ndarray[Any, Any]


def score(data: Iterator[bytes], sink: Sink, ctx: ScoreContext) -> int:
    """Score every data line; returns the number of rows."""
    chunks = line_chunks(data, ctx.chunk_rows)
    with ctx.timed("read"):
        first = next(chunks, None)
    if first is None:
        raise InvalidRequest("the CSV object is empty: a header row is required", field="header")
    header = _decode(first[0], 0)
    names = _fields(header, 0)
    if len(set(names)) != len(names) or not all(names):
        raise UnprocessableInput(f"the CSV header has empty or repeated column names: {names}", field="header")
    used = _used_columns(names, ctx.manifest)
    pending: list[bytes] = first[1:]
    rows = 0
    header_written = False
    while True:
        if pending:
            with ctx.timed("read"):
                columns = _parse(pending, names, used, rows)
            results = ctx.predict(feeds_from_columns(columns, ctx.manifest), first_row=rows + 1)
            with ctx.timed("write"):
                out_cols = prediction_columns(results, ctx.manifest)
                if not header_written:
                    sink.write(header.encode() + b"," + _join_row(list(out_cols)).encode() + b"\n")
                    header_written = True
                sink.write(_append(pending, out_cols))
            rows += len(pending)
        with ctx.timed("read"):
            nxt = next(chunks, None)
        if nxt is None:
            break
        pending = nxt
    if not header_written:
        sink.write(header.encode() + b"," + _join_row(_empty_prediction_names(ctx)).encode() + b"\n")
    return rows


def _used_columns(names: list[str], manifest: Manifest) -> dict[str, str]:
    """Column name → manifest dtype for the columns the model reads (all of them in feature mode)."""
    inputs = {spec.name: spec.dtype for spec in manifest.inputs}
    if all(name in names for name in inputs):
        return {name: inputs[name] for name in names if name in inputs}
    if len(manifest.inputs) == 1:
        return {name: manifest.inputs[0].dtype for name in names}
    missing = next(name for name in inputs if name not in names)
    raise UnprocessableInput(
        f"missing column {missing!r}: this model takes one column per input {list(inputs)}", field=missing
    )


def _parse(lines: list[bytes], names: list[str], used: dict[str, str], done: int) -> dict[str, Array]:
    """The used columns of a chunk, typed; numeric ones through numpy's C parser."""
    import numpy as np

    index = {name: names.index(name) for name in used}
    if all(dtype != "string" for dtype in used.values()):
        text = [_decode(line, done + i + 1) for i, line in enumerate(lines)]
        dtype = [(f"c{index[name]}", numpy_dtype(used[name])) for name in used]
        try:
            table = np.loadtxt(
                text, delimiter=",", quotechar='"', dtype=dtype, usecols=[index[n] for n in used], ndmin=1
            )
        except ValueError as exc:
            _locate(lines, names, used, done)  # raises with row and column
            raise UnprocessableInput(f"rows {done + 1}-{done + len(lines)}: {exc}", field="body") from exc
        return {name: np.asarray(table[f"c{index[name]}"]).reshape(-1) for name in used}
    parsed = [_fields(_decode(line, done + i + 1), done + i + 1) for i, line in enumerate(lines)]
    columns: dict[str, Array] = {}
    for name in used:
        values = [_cell(row, index[name], names, done + i + 1) for i, row in enumerate(parsed)]
        if used[name] == "string":
            columns[name] = np.asarray(values, dtype=object)
        else:
            columns[name] = _typed(values, name, used[name], done)
    return columns


def _typed(values: list[str], name: str, dtype: str, done: int) -> Array:
    import numpy as np

    target = numpy_dtype(dtype)
    out = np.empty(len(values), dtype=target)
    for i, value in enumerate(values):
        try:
            out[i] = (value.strip().lower() in ("1", "true")) if target.kind == "b" else target.type(value)
        except (ValueError, OverflowError) as exc:
            raise UnprocessableInput(
                f"row {done + i + 1}, column {name!r}: cannot read {value!r} as {dtype}", field=name
            ) from exc
    return out


def _locate(lines: list[bytes], names: list[str], used: dict[str, str], done: int) -> None:
    """Find the first bad cell of a chunk numpy refused, and raise naming its row and column."""
    for i, line in enumerate(lines):
        row = _fields(_decode(line, done + i + 1), done + i + 1)
        if len(row) != len(names):
            raise UnprocessableInput(
                f"row {done + i + 1} has {len(row)} fields, the header has {len(names)}", field=f"row {done + i + 1}"
            )
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


def _decode(line: bytes, line_no: int) -> str:
    try:
        return line.decode("utf-8-sig" if line_no == 0 else "utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"row {line_no} is not UTF-8 text", field=f"row {line_no}") from exc


def _append(lines: list[bytes], out_cols: dict[str, Array]) -> bytes:
    """Each input line, a comma, its prediction values; one block of bytes for the chunk."""
    texts = [_column_text(values) for values in out_cols.values()]
    rows = [",".join(parts) for parts in zip(*texts, strict=True)]
    return b"".join(line + b"," + row.encode() + b"\n" for line, row in zip(lines, rows, strict=True))


def _column_text(values: Array) -> list[str]:
    """Shortest round-trip text of each value (floats as numpy prints them); text fields CSV-quoted."""
    if values.dtype.kind in "OUS":
        return [_quote(v.decode() if isinstance(v, bytes) else str(v)) for v in values.tolist()]
    text: list[str] = values.astype(str).tolist()
    return text


def _quote(value: str) -> str:
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _join_row(names: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(names)
    return buffer.getvalue()


def _empty_prediction_names(ctx: ScoreContext) -> list[str]:
    """Column names for a header-only input: from the manifest's output shapes and labels."""
    import numpy as np

    results = {
        spec.name: np.zeros([0, *[max(d, 1) for d in spec.shape[1:]]], dtype=numpy_dtype(spec.dtype))
        for spec in ctx.manifest.outputs
    }
    return list(prediction_columns(results, ctx.manifest))
