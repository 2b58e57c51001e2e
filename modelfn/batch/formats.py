"""Input formats by extension (or content type), and the chunked scoring loop each one drives.

| input | chunks | output |
|---|---|---|
| ``.csv`` | ``chunk_rows`` lines | the same lines with prediction columns appended (``tabular`` naming) |
| ``.jsonl`` / ``.ndjson`` | ``chunk_rows`` lines | each line's object plus one key per output |
| ``.json`` | whole document (≤ ``MAX_JSON_BYTES``), predicted in row chunks | a V2 inference response |
| ``.npy`` | ``chunk_rows`` rows of the array | ``.npz`` with one array per output (V2 names) |
| ``.parquet`` | ``chunk_rows``-row batches (needs pyarrow) | the same table with prediction columns |
| ``.jpg`` ``.jpeg`` ``.png`` ``.webp`` | one image (image preprocessing declared) | ``.json``: labels, top-k, scores |

Each format module exposes ``score(data, sink, ctx) -> rows``; they are imported only when used,
so the Lambda path never imports pyarrow unless a Parquet object arrives.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from modelfn.errors import UnprocessableInput, UnsupportedMediaType

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.batch.sink import Sink
    from modelfn.bundle.manifest import Manifest
    from modelfn.runtime.base import Model

DEFAULT_CHUNK_ROWS = 10_000
MAX_JSON_BYTES = 64 * 1024 * 1024
"""A ``.json`` document is parsed whole; larger ones are refused (use JSONL, CSV or NPY)."""

EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".npy": "npy",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jpg": "image",
    ".jpeg": "image",
    ".png": "image",
    ".webp": "image",
}
CONTENT_TYPES: dict[str, str] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json": "json",
    "application/x-npy": "npy",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "image",
}
OUTPUT_EXTENSIONS: dict[str, str] = {
    "csv": "csv", "jsonl": "jsonl", "json": "json", "npy": "npz", "parquet": "parquet", "image": "json",
}  # fmt: skip
_TIMINGS_LOCK = threading.Lock()
_MODULES: dict[str, str] = {
    "csv": "modelfn.batch._csv",
    "jsonl": "modelfn.batch._jsonl",
    "json": "modelfn.batch._json",
    "npy": "modelfn.batch._npy",
    "parquet": "modelfn.batch._parquet",
    "image": "modelfn.batch._image",
}


def detect_format(key: str, content_type: str | None = None) -> str:
    """The format of an object from its key's extension, else its content type; 415 listing the known ones."""
    suffix = PurePosixPath(key).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in CONTENT_TYPES:
        return CONTENT_TYPES[media]
    raise UnsupportedMediaType(
        f"cannot tell the format of {key!r} (content type {media or 'unknown'}); known extensions:"
        f" {', '.join(sorted(EXTENSIONS))}",
        field="key",
    )


@dataclasses.dataclass
class ScoreContext:
    """What a format's scoring loop needs: the model, the chunk size, and a check run between chunks."""

    model: Model
    manifest: Manifest
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    between_chunks: Callable[[], None] = lambda: None
    timings: dict[str, float] = dataclasses.field(default_factory=lambda: {"read_s": 0.0, "predict_s": 0.0,
                                                                          "write_s": 0.0})  # fmt: skip

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the time spent in the block to ``timings[phase + '_s']`` (busy time; phases overlap)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            with _TIMINGS_LOCK:  # phases run in reader/writer threads too (see _pipeline)
                self.timings[f"{phase}_s"] = self.timings.get(f"{phase}_s", 0.0) + time.perf_counter() - start

    def predict(self, feeds: Mapping[str, Any], *, first_row: int) -> dict[str, npt.NDArray[Any]]:
        """Run one chunk; input errors name the chunk's first row so error records point at the data."""
        from modelfn.serving.inference import run_model

        self.between_chunks()
        with self.timed("predict"):
            try:
                return run_model(self.model, feeds)
            except UnprocessableInput as exc:
                raise UnprocessableInput(f"rows from {first_row}: {exc.message}", field=exc.field) from exc


def score_stream(fmt: str, data: Iterator[bytes], sink: Sink, ctx: ScoreContext) -> int:
    """Score a whole object of format ``fmt`` from ``data`` into ``sink``; returns the number of rows."""
    module = importlib.import_module(_MODULES[fmt])
    rows: int = module.score(data, sink, ctx)
    return rows


def line_chunks(data: Iterator[bytes], rows: int, *, first: int | None = None) -> Iterator[list[bytes]]:
    """Non-blank lines (without ``\\r\\n``) in lists of up to ``rows`` (``first`` for the first list, e.g.
    a header and ``rows`` data lines, so the model sees full batches); only the current chunk is held."""
    size = first or rows
    pending = b""
    chunk: list[bytes] = []
    for block in data:
        text = pending + block
        lines = text.split(b"\n")
        pending = lines.pop()
        if b"\r" in text:
            lines = [line.rstrip(b"\r") for line in lines]
        chunk.extend([line for line in lines if line.strip()])
        while len(chunk) >= size:
            yield chunk[:size]
            chunk, size = chunk[size:], rows
    pending = pending.rstrip(b"\r")
    if pending.strip():
        chunk.append(pending)
    while chunk:
        yield chunk[:size]
        chunk, size = chunk[size:], rows


class IterReader:
    """A minimal readable binary file over an iterator of byte blocks (no seeking)."""

    def __init__(self, data: Iterator[bytes]) -> None:
        self._data = data
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all remaining with -1); fewer only at the end."""
        parts = [self._pending]
        have = len(self._pending)
        while size < 0 or have < size:
            block = next(self._data, None)
            if block is None:
                break
            parts.append(block)
            have += len(block)
        joined = b"".join(parts)
        if size < 0:
            self._pending = b""
            return joined
        self._pending = joined[size:]
        return joined[:size]
