"""Parquet in, the same table with prediction columns appended out (needs the ``parquet`` extra: pyarrow).

Parquet keeps its index at the end of the file, so the object is first streamed to a temporary
file; batches of ``chunk_rows`` rows are then read, scored and appended to the output row group by
row group. Columns feed the model as ``modelfn.batch.tabular`` describes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelfn.batch.tabular import feeds_from_columns, prediction_columns
from modelfn.errors import ConfigError, InvalidRequest, UnprocessableInput

if TYPE_CHECKING:
    from modelfn.batch.formats import ScoreContext
    from modelfn.batch.sink import Sink

_COPY_BYTES = 1024 * 1024


def score(data: Iterator[bytes], sink: Sink, ctx: ScoreContext) -> int:
    """Score every row; returns the number of rows."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError(
            "Parquet objects need pyarrow: install modelfn[parquet] (or use CSV, JSONL or NPY)", field="format"
        ) from exc

    rows = 0
    with tempfile.TemporaryFile() as spool:
        with ctx.timed("read"):
            for block in data:
                spool.write(block)
            spool.seek(0)
            try:
                table = pq.ParquetFile(spool)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidRequest(f"not a valid Parquet file: {exc}", field="body") from exc
        writer: Any = None
        try:
            for batch in _batches(table, ctx):
                columns = {name: _numpy(batch.column(name), name) for name in _used(batch.schema.names, ctx)}
                results = ctx.predict(feeds_from_columns(columns, ctx.manifest), first_row=rows + 1)
                with ctx.timed("write"):
                    out = batch
                    for name, values in prediction_columns(results, ctx.manifest).items():
                        if name in out.schema.names:
                            raise UnprocessableInput(f"column {name!r} is also a prediction column name", field=name)
                        out = out.append_column(name, pa.array(values))
                    if writer is None:
                        writer = pq.ParquetWriter(_Writer(sink), out.schema)
                    writer.write_batch(out)
                rows += batch.num_rows
            if writer is None:  # no rows at all: the input's schema, without prediction columns
                writer = pq.ParquetWriter(_Writer(sink), table.schema_arrow)
        finally:
            if writer is not None:
                with ctx.timed("write"):
                    writer.close()
    return rows


def _batches(table: Any, ctx: ScoreContext) -> Iterator[Any]:
    import pyarrow as pa

    try:
        with ctx.timed("read"):
            batches = table.iter_batches(batch_size=ctx.chunk_rows)
        while True:
            with ctx.timed("read"):
                batch = next(batches, None)
            if batch is None:
                return
            yield batch
    except pa.ArrowInvalid as exc:
        raise InvalidRequest(f"the Parquet file cannot be read: {exc}", field="body") from exc


def _used(names: list[str], ctx: ScoreContext) -> list[str]:
    inputs = [spec.name for spec in ctx.manifest.inputs]
    return inputs if all(name in names for name in inputs) else names


def _numpy(column: Any, name: str) -> Any:
    if column.null_count:
        raise UnprocessableInput(f"column {name!r} has {column.null_count} missing values", field=name)
    return column.to_numpy(zero_copy_only=False)


class _Writer:
    """A write-only file over a sink, for pyarrow's writer."""

    closed = False

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._offset = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._sink.write(chunk)
        self._offset += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False
