"""The queue behind adaptive batching: requests queue validated feeds, one worker per model runs them merged.

A request validates its own feeds (a bad request fails alone, before any merge), queues them and
waits; the worker takes what is queued, up to ``max_batch_size`` rows, concatenates along axis 0,
runs once and hands each request its rows back. It waits for more only while requests it knows of
are still being decoded, a run is under way or the event loop is still handing requests over, and
never past ``max_batch_delay_ms`` after the oldest queued one arrived. A failed merged run is
retried request by request, so each gets its own answer or error; a client that disconnects, or
whose task is cancelled, is dropped from the queue.

Small bodies (``INLINE_BODY_BYTES``) are decoded, merged and answered on the event loop thread
(``modelfn.serving.batch_loop``): per request, a hop to a thread and back costs more GIL time than
decoding a small body. Larger bodies (or no greenlet) take a request thread each. A request alone
in the server runs at once where it is (the loop, or its thread): no hop to the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from modelfn.errors import ModelNotReady
from modelfn.runtime.base import check_output_names, validate_feeds
from modelfn.serving.batch_loop import (
    CURRENT_TICKET,
    Arrays,
    Item,
    LoopSide,
    Ticket,
    disconnected,
    greenlet_module,
    park,
    wake_loops,
)
from modelfn.serving.metrics import (
    INFERENCE_BATCH_ROWS,
    INFERENCE_BATCH_SIZE,
    INFERENCE_BATCH_WAIT,
    METRICS,
    MILLISECONDS,
    Metrics,
)

if TYPE_CHECKING:
    from modelfn.runtime.base import Model
    from modelfn.serving.request import Receive

logger = logging.getLogger("modelfn.serving.batching")
T = TypeVar("T")

MIN_REQUEST_THREADS = 16
"""Request threads decode, wait on the batcher and encode; enough of them let a full batch gather."""
MAX_REQUEST_THREADS = 256
INLINE_BODY_BYTES = 64 * 1024
"""Bodies up to this size are decoded on the event loop (a few hundred microseconds at most)."""


class Batcher(LoopSide):
    """One worker thread per model merging queued requests into single runs (and the event loop, for small ones)."""

    def __init__(self, model: Model, *, max_batch_size: int, max_delay_ms: float, metrics: Metrics = METRICS) -> None:
        self.model = model
        self.max_rows = max_batch_size
        self.max_delay_s = max_delay_ms / 1e3
        self.metrics = metrics
        self.runs = 0
        """Model runs made (merged, a lone request on its own thread, or one per request after a failed merge)."""
        self.requests = 0
        """Requests answered by those runs."""
        self._specs = {spec.name: spec for spec in model.manifest.inputs}
        self._cond = threading.Condition()
        self._queue: list[Item] = []
        self._decoding = 0
        self._closed = False
        self._busy = 0
        """Model runs under way (the worker's or a lone request's): what arrives meanwhile is batched."""
        self._in_flight = 0
        """Requests on request threads (decoding, queued, running or encoding): 1 means a lone client."""
        self._init_loop_side()
        threads = min(MAX_REQUEST_THREADS, max(MIN_REQUEST_THREADS, 2 * max_batch_size))
        self.executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="modelfn-request")
        self._worker = threading.Thread(target=self._work, name=f"modelfn-batcher-{model.manifest.name}", daemon=True)
        self._worker.start()

    # request side ---------------------------------------------------------------------------------

    async def call(self, receive: Receive, fn: Callable[..., T], *args: Any, size: int | None = None) -> T | None:
        """``fn(*args)``; None (and the request dropped) when the client disconnects first.

        With ``size`` (the body's bytes) up to ``INLINE_BODY_BYTES``, ``fn`` runs on the event loop in
        a greenlet; otherwise on a request thread.
        """
        ticket = Ticket(self)
        if size is not None and size <= INLINE_BODY_BYTES and greenlet_module() is not None:
            return await self._call_inline(ticket, receive, fn, args)
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self.executor, self._run_ticket, ticket, fn, *args)
        watch = asyncio.ensure_future(disconnected(receive))
        try:
            await asyncio.wait((work, watch), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            _abandon(ticket, work, watch)
            raise
        if work.done():
            watch.cancel()
            return work.result()
        _abandon(ticket, work, watch)
        return None

    def _run_ticket(self, ticket: Ticket, fn: Callable[..., T], *args: Any) -> T | None:
        with self._cond:
            if ticket.cancelled:
                return None
            ticket.decoding = True
            self._decoding += 1
            self._in_flight += 1
        token = CURRENT_TICKET.set(ticket)
        try:
            return fn(*args)
        except concurrent.futures.CancelledError:
            return None
        finally:
            CURRENT_TICKET.reset(token)
            with self._cond:
                self._stop_decoding(ticket)
                self._in_flight -= 1

    def predict(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> Arrays:
        """Validate (a bad request fails here, alone), queue, wait for this request's share of a run."""
        wanted = check_output_names(outputs, self.model.output_names)
        arrays = self._admit(feeds)
        ticket = CURRENT_TICKET.get()
        rows = {int(array.shape[0]) for array in arrays.values()}
        if len(rows) != 1 or next(iter(rows)) > self.max_rows:  # unmergeable or too big: alone, now
            if ticket is not None and ticket.inline:  # off the event loop
                return cast("Arrays", park(lambda: self.model.predict(arrays, wanted)))
            if ticket is not None:
                self._done_decoding(ticket)
            return self.model.predict(arrays, wanted)
        key = tuple((name, array.shape[1:], array.dtype.str) for name, array in arrays.items())
        item = Item(arrays, wanted, rows.pop(), key)
        if ticket is not None and ticket.inline:
            if self._closed:
                raise ModelNotReady("the server is shutting down", field="model")
            ticket.item = item
            park(item)
            return item.future.result()  # done: the loop resumes this request once its run is over
        with self._cond:
            if self._closed:
                raise ModelNotReady("the server is shutting down", field="model")
            if ticket is not None:
                if ticket.cancelled:
                    raise concurrent.futures.CancelledError
                ticket.item = item
                self._stop_decoding(ticket)
            alone = self._in_flight <= 1 and not self._inline and not self._queue and not self._busy
            if alone:  # the only request in the server: run on this thread, no hop to the worker
                self._busy += 1
                item.future.set_running_or_notify_cancel()
            else:
                self._queue.append(item)
                self._cond.notify()
        if alone:
            self._run([item])
        return item.future.result()

    def _admit(self, feeds: Mapping[str, Any]) -> Arrays:
        """Float arrays of the right shapes for float inputs pass as they are: the model's own validation casts
        (and range-checks) them once per merged run, and a failure there retries each request alone, where it
        fails with its own 422. Anything else is validated (and cast) here, so a bad request fails alone."""
        import numpy as np

        if len(feeds) == len(self._specs):
            arrays = {}
            for name, spec in self._specs.items():
                value = feeds.get(name)
                if not (
                    isinstance(value, np.ndarray)
                    and value.dtype.kind == "f"
                    and spec.dtype.startswith("float")
                    and spec.is_compatible(value.shape)
                ):
                    break
                arrays[name] = value
            else:
                return arrays
        return validate_feeds(feeds, self._specs)

    def _done_decoding(self, ticket: Ticket) -> None:
        with self._cond:
            self._stop_decoding(ticket)

    def _stop_decoding(self, ticket: Ticket) -> None:
        if ticket.decoding:
            ticket.decoding = False
            self._decoding -= 1
            if self._queue:  # the worker only waits on decoding requests while something is queued
                self._cond.notify()

    def _cancel(self, ticket: Ticket) -> None:
        with self._cond:
            ticket.cancelled = True
            item = ticket.item
            if item is not None and item.future.cancel() and item in self._queue:
                self._queue.remove(item)

    # worker side ----------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                while (
                    self._queue
                    and (self._decoding or self._busy or self._arriving)
                    and sum(i.rows for i in self._queue) < self.max_rows
                ):
                    left = self._queue[0].arrived + self.max_delay_s - time.monotonic()
                    if left <= 0 or self._closed:
                        break
                    self._cond.wait(left)
                batch = self._take() if self._queue else []  # cancelled requests may have left it empty
                self._busy += bool(batch)
            if batch:
                self._run(batch)

    def _take(self) -> list[Item]:
        """The oldest queued requests that fit in one run (same trailing shapes), started; the rest wait."""
        first = self._queue[0]
        batch, rest, rows = [], [], 0
        for item in self._queue:
            if item.key == first.key and rows + item.rows <= self.max_rows:
                if item.future.set_running_or_notify_cancel():
                    batch.append(item)
                    rows += item.rows
            elif not item.future.cancelled():
                rest.append(item)
        self._queue[:] = rest
        return batch

    def _run(self, batch: list[Item]) -> None:
        """One merged run split back per request; if it fails, each request runs alone for its own answer."""
        started = time.monotonic()
        for item in batch:
            self.metrics.add(INFERENCE_BATCH_WAIT, (started - item.arrived) * 1e3, MILLISECONDS)
        self.metrics.add(INFERENCE_BATCH_SIZE, len(batch))
        self.metrics.add(INFERENCE_BATCH_ROWS, sum(item.rows for item in batch))
        outcomes: list[tuple[Item, Arrays | BaseException]] = []
        runs = len(batch)
        try:
            if len(batch) > 1:
                try:
                    outcomes = [(item, piece) for item, piece in zip(batch, self._merged(batch), strict=True)]
                    runs = 1
                except Exception as exc:
                    logger.info("a merged run of %d requests failed (%s); running each alone", len(batch), exc)
            if not outcomes:
                for item in batch:
                    try:
                        outcomes.append((item, self.model.predict(item.arrays, item.wanted)))
                    except BaseException as exc:  # every error goes back to its own request
                        outcomes.append((item, exc))
        finally:
            with self._cond:  # counted before anyone is answered
                self.runs += runs
                self.requests += len(batch)
                self._busy -= 1
                if self._queue:  # waking an idle worker for nothing would cost it a GIL switch
                    self._cond.notify()
            for item, outcome in outcomes:
                if isinstance(outcome, BaseException):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result(outcome)
            wake_loops(batch)

    def _merged(self, batch: list[Item]) -> list[Arrays]:
        import numpy as np

        wanted = {name for item in batch for name in item.wanted}
        outputs = [name for name in self.model.output_names if name in wanted]
        feeds = {name: np.concatenate([item.arrays[name] for item in batch]) for name in self._specs}
        results = self.model.predict(feeds, outputs)
        total = sum(item.rows for item in batch)
        for name, value in results.items():
            if len(value) != total:
                raise ValueError(f"output {name!r} has {len(value)} rows for {total} input rows")
        pieces, start = [], 0
        for item in batch:
            end = start + item.rows
            pieces.append({name: results[name][start:end] for name in item.wanted})
            start = end
        return pieces

    def close(self) -> None:
        """Stop the worker; requests still queued get 503 (the server is going down)."""
        with self._cond:
            self._closed = True
            queued, self._queue[:] = list(self._queue), []
            self._cond.notify_all()
        for item in queued:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(ModelNotReady("the server is shutting down", field="model"))
        wake_loops(queued)
        self._worker.join(5)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _abandon(ticket: Ticket, work: asyncio.Future[Any], watch: asyncio.Future[None]) -> None:
    """Drop the request; its thread's outcome is read (and ignored) whenever it comes."""
    ticket.cancel()
    watch.cancel()
    work.add_done_callback(lambda f: f.cancelled() or f.exception())
