"""JSON Lines in, one output line per input line, ``chunk_rows`` lines at a time.

A line is either an ``{input name: value}`` object (other keys pass through) or, for a single-input
model, the instance itself (a number or a list). A bundle that declares ``records`` also takes
objects of its named features (``{"id": 7, "sepal_length": 5.1, ...}``; other keys pass through).
Output lines are the input object with one key per model output added
(``{"x": [...], "y": [...], "label": 2}``); a bare instance becomes
``{"instance": <line>, <output>: ...}``. An output name that is already a key of the line is refused.
The input line's bytes are kept as they are and the outputs spliced in before its closing brace, like
CSV lines keep theirs: re-serializing every input object cost as much CPU as parsing it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from modelfn.batch._pipeline import OrderedWriter, prefetched
from modelfn.batch.formats import line_chunks
from modelfn.errors import InvalidRequest, UnprocessableInput
from modelfn.serving.codecs import as_input

if TYPE_CHECKING:
    from modelfn.batch.formats import ScoreContext
    from modelfn.batch.sink import Sink

INSTANCE_KEY = "instance"


def score(data: Iterator[bytes], sink: Sink, ctx: ScoreContext) -> int:
    """Score every line, reading ahead and writing behind the model; returns the number of rows."""
    chunks = line_chunks(data, ctx.chunk_rows)

    def parsed() -> Iterator[tuple[list[bytes], list[Any], dict[str, Any], int]]:
        done = 0
        while True:
            with ctx.timed("read"):
                lines = next(chunks, None)
                if lines is None:
                    return
                items = [_load(line, done + i + 1) for i, line in enumerate(lines)]
                feeds = _feeds(items, ctx, done)
            yield lines, items, feeds, done
            done += len(items)

    rows = 0
    with OrderedWriter() as writer, contextlib.closing(prefetched(parsed())) as ahead:
        for lines, items, feeds, done in ahead:
            results = ctx.predict(feeds, first_row=done + 1)
            writer.submit(functools.partial(_write, sink, ctx, lines, items, results, done))
            rows += len(items)
    return rows


def _write(
    sink: Sink, ctx: ScoreContext, lines: list[bytes], items: list[Any], results: dict[str, Any], done: int
) -> None:
    """Each line with the model's outputs added, as one block of JSON Lines."""
    import orjson

    with ctx.timed("write"):
        values = {name: array.tolist() for name, array in results.items()}
        out: list[bytes] = []
        for i, (line, item) in enumerate(zip(lines, items, strict=True)):
            added = orjson.dumps({name: column[i] for name, column in values.items()})  # b'{"y":[...]}'
            if not isinstance(item, Mapping):
                out.append(b'{"' + INSTANCE_KEY.encode() + b'":' + line.strip() + b"," + added[1:])
                continue
            clash = next((name for name in values if name in item), None)
            if clash is not None:
                raise UnprocessableInput(f"row {done + i + 1}: key {clash!r} is also a model output name", field=clash)
            body = line.rstrip()  # a JSON object holding the inputs: its last byte is the closing brace
            out.append(body[:-1] + b"," + added[1:])
        sink.write(b"\n".join(out) + b"\n")


def _load(line: bytes, line_no: int) -> Any:
    import orjson

    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"row {line_no} is not valid JSON: {exc.msg}", field=f"row {line_no}") from exc


def _feeds(items: list[Any], ctx: ScoreContext, done: int) -> dict[str, Any]:
    """Named inputs from a chunk of lines: objects by key, bare instances for a single-input model."""
    specs = ctx.manifest.inputs
    records = ctx.manifest.processing.records if ctx.manifest.processing is not None else None
    objects = all(isinstance(item, Mapping) for item in items)
    if objects and records is not None and records.input is not None and records.input not in items[0]:
        return _record_feeds(items, ctx, done)
    if objects:
        feeds: dict[str, Any] = {}
        for spec in specs:
            column = []
            for i, item in enumerate(items):
                if spec.name not in item:
                    raise UnprocessableInput(f"row {done + i + 1} has no key {spec.name!r}", field=spec.name)
                column.append(item[spec.name])
            feeds[spec.name] = as_input(column, spec.dtype, field=spec.name)
        return feeds
    if any(isinstance(item, Mapping) for item in items):
        row = next(i for i, item in enumerate(items) if isinstance(item, Mapping) != isinstance(items[0], Mapping))
        raise UnprocessableInput(
            f"row {done + row + 1} mixes objects and bare instances", field=f"row {done + row + 1}"
        )
    if len(specs) != 1:
        names = [spec.name for spec in specs]
        raise UnprocessableInput(
            f"this model takes {len(names)} inputs {names}: each line must be an object naming them",
            field=f"row {done + 1}",
        )
    return {specs[0].name: as_input(items, specs[0].dtype, field=specs[0].name)}


def _record_feeds(items: list[Any], ctx: ScoreContext, done: int) -> dict[str, Any]:
    """Objects of named features (a bundle declaring ``records``): the features fed in order, other keys carried."""
    from modelfn.processing.records import records_to_feeds

    processing = ctx.manifest.processing
    assert processing is not None and processing.records is not None
    features = processing.records.features
    rows = [{name: item[name] for name in features if name in item} for item in items]
    try:
        return records_to_feeds(rows, processing.records, ctx.manifest, field="line")
    except UnprocessableInput as exc:
        raise UnprocessableInput(f"lines from {done + 1}: {exc.message}", field=exc.field) from exc
