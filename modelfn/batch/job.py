"""Score one object from a store into the output location: the unit both front ends repeat.

::

    score_object(bundle, source, key, output, *, pin=None, content_type=None,
                 chunk_rows=DEFAULT_CHUNK_ROWS, between_chunks=None) -> JobOutcome

* ``bundle``: the verified ``LoadedBundle`` (``modelfn.loader.load_bundle`` / ``ModelState.require()``).
* ``source``, ``key``: the input object (any ``Store``: ``S3Store(bucket)`` for an event's bucket,
  ``LocalStore(folder)`` for ``modelfn batch`` on files). ``pin`` (an ``ObjectInfo`` with the event's
  ETag / version id / size) pins the read to that exact object; without it the object is listed
  and pinned to what the listing saw.
* ``output``: an ``output_url`` (``s3://bucket/prefix`` or a path) or a ``modelfn.batch.sink.Output``.
* ``between_chunks``: called before each chunk is predicted; raise from it (``DeadlineExceeded``)
  to stop, and nothing is written.

Output layout, derived from the input key (so a reader can find it)::

    <output_url>/<input key>/<model>-v<version>-<run id>.<ext>            the result
    <output_url>/<input key>/<model>-v<version>-<run id>.<ext>.meta.json  rows, timings, identities
    <output_url>/<input key>/<model>-v<version>-<run id>.<ext>.error.json when the data was refused

``<input key>`` is ``key`` as given: relative to the source store (the bucket root for storage
events, the scanned folder or prefix for ``modelfn batch``).
``run id`` is the first 16 hex digits of SHA-256 over (input object URL, version id or ETag, model
root digest): the same object scored by the same model always maps to the same key, so duplicates
are detected by ``If-None-Match: *`` and yield one, byte-identical output; a new version of the
input or a new model gets a new result beside the old one. Data errors (wrong columns, unparseable
values, unknown format: 4xx ``InvalidRequest``) write the ``.error.json`` record and are raised;
store errors and deadlines are raised without writing anything, so a retry starts clean.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelfn.batch.formats import DEFAULT_CHUNK_ROWS, OUTPUT_EXTENSIONS, ScoreContext, detect_format, score_stream
from modelfn.errors import InvalidRequest, ObjectNotFound

if TYPE_CHECKING:
    from modelfn.batch.sink import Output
    from modelfn.loader import LoadedBundle
    from modelfn.store.base import ObjectInfo, Store


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """What scoring one object did."""

    input_url: str
    output_url: str
    output_key: str
    """Relative to the output location."""
    rows: int
    already_done: bool
    """True when this object was already scored by this model (a duplicate event): nothing written."""
    timings: dict[str, float]
    format: str


def run_id(input_url: str, identity: str, root_digest: str) -> str:
    """The idempotency key of (input object URL and version, model): the same however the object was reached."""
    text = "\n".join((input_url, identity, root_digest))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def output_base(key: str, bundle: LoadedBundle, rid: str) -> str:
    """``<input key>/<model>-v<version>-<run id>``: the output key without its extension."""
    return f"{key}/{bundle.manifest.name}-v{bundle.manifest.version}-{rid}"


def score_object(
    bundle: LoadedBundle,
    source: Store,
    key: str,
    output: Output | str,
    *,
    pin: ObjectInfo | None = None,
    content_type: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    between_chunks: Callable[[], None] | None = None,
) -> JobOutcome:
    """Read ``key`` from ``source``, predict in chunks of ``chunk_rows``, write the result once and atomically."""
    from modelfn.batch.sink import output_for

    started = time.perf_counter()
    out = output_for(output) if isinstance(output, str) else output
    pin = pin or _listed(source, key)
    identity = pin.version_id or (pin.etag or "").strip('"') or f"size:{pin.size}"  # events send ETags unquoted
    input_url = f"{source.url.rstrip('/')}/{key}"
    base = output_base(key, bundle, run_id(input_url, identity, bundle.root_digest))
    try:
        fmt = detect_format(key, content_type or _content_type(source, key))
    except InvalidRequest as exc:
        _record_error(out, f"{base}.error.json", exc, bundle, input_url, pin)
        raise
    result_key = f"{base}.{OUTPUT_EXTENSIONS[fmt]}"
    if out.exists(result_key):
        return _done_before(out, bundle, result_key, input_url, pin, fmt, started)

    ctx = ScoreContext(bundle.model, bundle.manifest, chunk_rows=chunk_rows)
    if between_chunks is not None:
        ctx.between_chunks = between_chunks
    sink = out.open(result_key)
    try:
        rows = score_stream(fmt, source.read(key, pin=pin), sink, ctx)
        with ctx.timed("write"):
            written = sink.commit()
    except InvalidRequest as exc:
        sink.abort()
        _record_error(out, f"{result_key}.error.json", exc, bundle, input_url, pin)
        raise
    except BaseException:
        sink.abort()
        raise
    timings = {**ctx.timings, "total_s": time.perf_counter() - started}
    meta = _meta(bundle, input_url, pin, fmt, out.url, result_key, rows, timings)
    out.put(f"{result_key}.meta.json", _dumps(meta))  # False: a duplicate run wrote it first; that one stands
    return JobOutcome(input_url, out.url, result_key, rows, not written, timings, fmt)


def _listed(source: Store, key: str) -> ObjectInfo:
    """The object's listing entry (size, ETag), so the read is pinned to what was seen."""
    for info in source.list(key):
        if info.key == key:
            return info
    raise ObjectNotFound(f"{source.url.rstrip('/')}/{key} does not exist", field="key")


def _content_type(source: Store, key: str) -> str | None:
    """S3's Content-Type, asked only when the key has no known extension."""
    from pathlib import PurePosixPath

    from modelfn.batch.formats import EXTENSIONS
    from modelfn.store.s3 import S3Store

    if PurePosixPath(key).suffix.lower() in EXTENSIONS or not isinstance(source, S3Store):
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        head = source.client.head_object(Bucket=source.bucket, Key=source.prefix + key)
    except (BotoCoreError, ClientError) as exc:
        raise source._error(exc, key, "inspect") from exc
    return head.get("ContentType")


def _done_before(
    out: Output, bundle: LoadedBundle, result_key: str, input_url: str, pin: ObjectInfo, fmt: str, started: float
) -> JobOutcome:
    """A duplicate: report the first run's row count from its meta record.

    A run stopped between its result and its meta record leaves the result alone; the meta record
    is then written here, without the row count and timings only that run knew.
    """
    import orjson

    raw = out.read(f"{result_key}.meta.json")
    timings = {"total_s": time.perf_counter() - started}
    if raw is None:
        meta = _meta(bundle, input_url, pin, fmt, out.url, result_key, None, {})
        out.put(f"{result_key}.meta.json", _dumps(meta))
        return JobOutcome(input_url, out.url, result_key, 0, True, timings, fmt)
    return JobOutcome(input_url, out.url, result_key, int(orjson.loads(raw).get("rows") or 0), True, timings, fmt)


def _identity(bundle: LoadedBundle) -> dict[str, Any]:
    return {"name": bundle.manifest.name, "version": bundle.manifest.version, "root_digest": bundle.root_digest}


def _input(input_url: str, pin: ObjectInfo) -> dict[str, Any]:
    etag = pin.etag.strip('"') if pin.etag else None
    return {"url": input_url, "etag": etag, "version_id": pin.version_id, "size": pin.size}


def _meta(
    bundle: LoadedBundle,
    input_url: str,
    pin: ObjectInfo,
    fmt: str,
    output_url: str,
    result_key: str,
    rows: int | None,
    timings: dict[str, float],
) -> dict[str, Any]:
    return {
        "model": _identity(bundle),
        "input": {**_input(input_url, pin), "format": fmt},
        "output": {"url": f"{output_url.rstrip('/')}/{result_key}", "key": result_key},
        "rows": rows,
        "timings": {name: round(value, 6) for name, value in timings.items()},
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def _record_error(
    out: Output, error_key: str, exc: InvalidRequest, bundle: LoadedBundle, input_url: str, pin: ObjectInfo
) -> None:
    """Leave a readable reason beside where the result would be (once; a repeat keeps the first)."""
    record = {**exc.to_dict(), "model": _identity(bundle), "input": _input(input_url, pin)}
    out.put(error_key, _dumps(record))


def _dumps(data: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
