"""``.npy`` in (the single input's rows), ``.npz`` out (one array per output, named as in V2).

The array is read ``chunk_rows`` rows at a time straight from the stream; object arrays are refused
(loading them would unpickle). Each output's rows are spooled to a temporary file while the input
streams, then written as a zip member with its final shape, so memory stays bounded by one chunk.
Zip members carry a fixed timestamp: the same input and model give byte-identical ``.npz`` files.
"""

from __future__ import annotations

import math
import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from modelfn.batch.formats import IterReader
from modelfn.errors import InvalidRequest, UnprocessableInput

if TYPE_CHECKING:
    import numpy as np

    from modelfn.batch.formats import ScoreContext
    from modelfn.batch.sink import Sink

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_COPY_BYTES = 1024 * 1024


def score(data: Iterator[bytes], sink: Sink, ctx: ScoreContext) -> int:
    """Score the array's rows; returns the number of rows."""
    import numpy as np

    if len(ctx.manifest.inputs) != 1:
        names = [spec.name for spec in ctx.manifest.inputs]
        raise UnprocessableInput(f"a .npy file feeds one input; this model takes {names}", field="body")
    reader = IterReader(data)
    with ctx.timed("read"):
        shape, fortran, dtype = _header(reader)
    rows = shape[0]
    row_items = math.prod(shape[1:])
    name = ctx.manifest.inputs[0].name
    spools: dict[str, tuple[IO[bytes], np.dtype[Any], tuple[int, ...]]] = {}  # output -> (rows, dtype, dims)
    try:
        for start in range(0, rows, ctx.chunk_rows):
            count = min(ctx.chunk_rows, rows - start)
            with ctx.timed("read"):
                raw = reader.read(count * row_items * dtype.itemsize)
                if len(raw) != count * row_items * dtype.itemsize:
                    raise UnprocessableInput(f"the .npy data ends before row {start + count}", field="body")
                chunk = np.frombuffer(raw, dtype=dtype).reshape((count, *shape[1:]))
            results = ctx.predict({name: chunk}, first_row=start + 1)
            with ctx.timed("write"):
                for out_name, array in results.items():
                    if out_name not in spools:
                        spools[out_name] = (tempfile.TemporaryFile(), array.dtype, tuple(array.shape[1:]))
                    spools[out_name][0].write(np.ascontiguousarray(array).tobytes())
        with ctx.timed("write"):
            _write_npz(sink, spools, rows, ctx)
    finally:
        for spool, _, _ in spools.values():
            spool.close()
    return rows


def _header(reader: IterReader) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(reader)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(reader)
        else:
            shape, fortran, dtype = npy.read_array_header_2_0(reader)
    except ValueError as exc:
        raise InvalidRequest(f"not a valid .npy file: {exc}", field="body") from exc
    if dtype.hasobject:
        raise UnprocessableInput("object arrays are refused (reading them would unpickle)", field="body")
    if not shape:
        raise UnprocessableInput("the .npy array needs a first (row) dimension", field="body")
    if fortran and len(shape) > 1:
        raise UnprocessableInput("Fortran-ordered arrays cannot be streamed by row; save in C order", field="body")
    return tuple(shape), bool(fortran), dtype


def _write_npz(
    sink: Sink, spools: dict[str, tuple[IO[bytes], np.dtype[Any], tuple[int, ...]]], rows: int, ctx: ScoreContext
) -> None:
    """One zip member per output: a .npy header with the final shape, then the spooled rows."""
    import numpy as np
    from numpy.lib import format as npy

    if not spools:  # no rows: empty arrays shaped from the manifest
        for spec in ctx.manifest.outputs:
            spool: IO[bytes] = tempfile.TemporaryFile()
            dims = tuple(max(d, 1) for d in spec.shape[1:])
            spools[spec.name] = (spool, np.dtype(spec.dtype if spec.dtype != "string" else "U1"), dims)
    with zipfile.ZipFile(_Writer(sink), "w", compression=zipfile.ZIP_STORED) as archive:
        for name, (spool, dtype, dims) in spools.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            with archive.open(info, "w", force_zip64=True) as member:
                header = {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows, *dims)}
                npy.write_array_header_2_0(member, header)
                spool.seek(0)
                while block := spool.read(_COPY_BYTES):
                    member.write(block)


class _Writer:
    """A write-only, non-seekable file over a sink (zipfile then uses data descriptors)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._offset = 0

    def write(self, data: bytes) -> int:
        self._sink.write(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
