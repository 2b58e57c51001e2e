"""One JSON document in (``{"instances": [...]}`` or a V2 inference request), a V2 response out.

JSON cannot be read a row at a time, so a document is capped at ``MAX_JSON_BYTES``; it is still
predicted ``chunk_rows`` rows at a time. The response is what ``POST /v2/models/{name}/infer``
returns: ``{"model_name", "model_version", "outputs": [{"name", "datatype", "shape", "data"}]}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from modelfn.batch.formats import MAX_JSON_BYTES
from modelfn.errors import InvalidRequest, PayloadTooLarge, UnprocessableInput
from modelfn.serving import codecs

if TYPE_CHECKING:
    import numpy as np

    from modelfn.batch.formats import ScoreContext
    from modelfn.batch.sink import Sink

    Array = np.ndarray[Any, Any]


def score(data: Iterator[bytes], sink: Sink, ctx: ScoreContext) -> int:
    """Score the document; returns the number of rows (the first dimension of the inputs)."""
    import numpy as np
    import orjson

    with ctx.timed("read"):
        document = codecs.loads(_read_capped(data), field="body")
        feeds = _feeds(document, ctx)
    rows = {len(array) for array in feeds.values()}
    if len(rows) != 1:
        raise UnprocessableInput("every input must have the same number of rows", field="inputs")
    total = rows.pop()
    parts: dict[str, list[Array]] = {}
    for start in range(0, max(total, 1), ctx.chunk_rows):
        chunk = {name: array[start : start + ctx.chunk_rows] for name, array in feeds.items()}
        for name, array in ctx.predict(chunk, first_row=start + 1).items():
            parts.setdefault(name, []).append(array)
    with ctx.timed("write"):
        outputs = []
        for name, pieces in parts.items():
            array = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
            outputs.append(
                {
                    "name": name,
                    "datatype": codecs.v2_datatype(array.dtype),
                    "shape": list(array.shape),
                    "data": codecs.json_data(array),
                }
            )
        response = {
            "model_name": ctx.manifest.name,
            "model_version": str(ctx.manifest.version),
            "outputs": outputs,
        }
        sink.write(orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    return total


def _read_capped(data: Iterator[bytes]) -> bytes:
    parts: list[bytes] = []
    size = 0
    for block in data:
        size += len(block)
        if size > MAX_JSON_BYTES:
            raise PayloadTooLarge(
                f"a .json object is parsed whole and may be at most {MAX_JSON_BYTES} bytes; use .jsonl, .csv or .npy",
                field="body",
            )
        parts.append(block)
    return b"".join(parts)


def _feeds(document: Any, ctx: ScoreContext) -> dict[str, Array]:
    """Inputs from ``{"instances": [...]}`` (rows, or objects naming inputs) or a V2 ``{"inputs": [...]}``."""
    if not isinstance(document, Mapping) or ("instances" in document) == ("inputs" in document):
        raise InvalidRequest(
            'the document must be {"instances": [...]} or a V2 request {"inputs": [...]}', field="body"
        )
    specs = {spec.name: spec for spec in ctx.manifest.inputs}
    if "inputs" in document:
        return _v2_inputs(document["inputs"])
    rows = document["instances"]
    if not isinstance(rows, list) or not rows:
        raise InvalidRequest('"instances" must be a non-empty list', field="instances")
    if all(isinstance(row, Mapping) for row in rows):
        out = {}
        for name, spec in specs.items():
            if any(name not in row for row in rows):
                raise UnprocessableInput(f"an instance has no key {name!r}", field=name)
            out[name] = codecs.as_input([row[name] for row in rows], spec.dtype, field=name)
        return out
    if len(specs) != 1:
        raise UnprocessableInput(f"this model takes inputs {list(specs)}: send instances as objects", field="instances")
    ((name, spec),) = specs.items()
    return {name: codecs.as_input(rows, spec.dtype, field=name)}


def _v2_inputs(inputs: Any) -> dict[str, Array]:
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, Mapping) for t in inputs):
        raise InvalidRequest("'inputs' must be a non-empty list of tensor objects", field="inputs")
    feeds: dict[str, Array] = {}
    for index, tensor in enumerate(inputs):
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"inputs[{index}] needs a string 'name'", field=f"inputs[{index}].name")
        if "data" not in tensor:
            raise InvalidRequest(f"input {name!r} has no 'data'", field=name)
        shape = codecs.check_shape(tensor.get("shape"), field=name)
        if not shape:
            raise UnprocessableInput(f"input {name!r} needs a first (row) dimension", field=name)
        feeds[name] = codecs.decode_json_data(tensor["data"], tensor.get("datatype"), shape, field=name)
    return feeds
