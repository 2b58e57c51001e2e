"""Overlap reading, predicting and writing: while onnxruntime runs chunk n (it releases the GIL), a
thread reads and parses chunk n+1 and another formats and uploads chunk n-1.

The reader is one thread and one slot deep; the writer is one thread with one step queued behind the
one it runs, so an upload that outlasts a prediction does not stall the model. At most five chunks
are in memory at once (one being parsed, one parsed and waiting, one predicted, one queued and one
being written) and outputs keep input order. An error in any stage is raised in the caller.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_POLL_S = 0.1
_DONE = object()


def prefetched(items: Iterator[T]) -> Generator[T, None, None]:
    """``items``, produced one step ahead in a background thread."""
    slot: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                slot.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((True, item)):
                    return
            offer((True, _DONE))
        except BaseException as exc:  # handed to the consumer, raised there
            offer((False, exc))

    thread = threading.Thread(target=produce, name="modelfn-batch-read", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = slot.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class OrderedWriter:
    """Runs write steps one at a time, in submission order, up to ``depth`` steps behind the caller."""

    def __init__(self, depth: int = 2) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelfn-batch-write")
        self._pending: deque[Future[None]] = deque()
        self._depth = depth

    def submit(self, step: Callable[[], None]) -> None:
        """Queue ``step``, first waiting while ``depth`` steps are queued or running; raise a finished step's error."""
        while self._pending and (len(self._pending) >= self._depth or self._pending[0].done()):
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(step))

    def finish(self) -> None:
        """Wait for every queued step; raise the first error."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> OrderedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.finish()
            return
        for future in self._pending:
            future.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
