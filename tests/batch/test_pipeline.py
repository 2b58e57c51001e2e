"""The read-ahead / write-behind pipeline: full batches for the model, order kept, a slow upload not stalling it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from modelfn.batch._pipeline import OrderedWriter
from modelfn.batch.formats import line_chunks
from modelfn.batch.job import score_object
from modelfn.loader import LoadedBundle
from modelfn.store.local import LocalStore


def test_the_header_does_not_shorten_the_first_batch(tiny: LoadedBundle, tmp_path: Path) -> None:
    # GIVEN a CSV of a header and 6 rows
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "six.csv").write_bytes(b"a,b,c,d\n" + b"1,2,3,4\n" * 6)
    batches: list[int] = []
    # WHEN it is scored in chunks of 3 rows
    outcome = score_object(
        tiny, LocalStore(tmp_path / "in"), "six.csv", str(tmp_path / "out"), chunk_rows=3,
        between_chunks=lambda: batches.append(1),
    )  # fmt: skip
    # THEN the model ran twice, on 3 rows each (as a raw loop over the same rows would)
    assert outcome.rows == 6 and len(batches) == 2


def test_line_chunks_can_size_the_first_chunk_apart() -> None:
    blocks = iter([b"h\n1\n2\n", b"3\n\n4\r\n5"])
    assert list(line_chunks(blocks, 2, first=3)) == [[b"h", b"1", b"2"], [b"3", b"4"], [b"5"]]


def test_a_slow_write_does_not_stall_the_next_submit() -> None:
    # GIVEN a write step that blocks until released
    release = threading.Event()
    done: list[int] = []

    def slow() -> None:
        release.wait(60)
        done.append(1)

    with OrderedWriter() as writer:
        writer.submit(slow)
        # WHEN the next step is submitted while it still runs
        writer.submit(lambda: done.append(2))
        # THEN submit returned without waiting for it, and the steps still run in order
        assert done == []
        release.set()
    assert done == [1, 2]


def test_a_failed_write_is_raised_in_the_caller_and_later_steps_do_not_run() -> None:
    done: list[int] = []

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), OrderedWriter() as writer:
        writer.submit(fail)
        writer.submit(lambda: done.append(2))
        writer.submit(lambda: done.append(3))
    assert 3 not in done
