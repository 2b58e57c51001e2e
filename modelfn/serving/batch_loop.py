"""The request side of adaptive batching: a request's place in the queue, and small requests served on the loop.

On 2 cores a one-row request to a small model costs more in thread hops and GIL hand-offs than in
its run, so a request with a small body is served where uvicorn received it: ``fn`` (the route)
runs in a greenlet on the loop thread and pauses in ``Batcher.predict`` while its batch runs. The
loop hands all it queued in one iteration to the worker together, and wakes the worker once an
iteration brings nothing new, a batch is full or the oldest request has waited
``max_batch_delay_ms``; the worker wakes the loop once per run. A request alone in the server
runs at once on the loop thread (no hop at all). Merged runs stay on the worker
thread: made on the loop, a run that waits for onnxruntime's intra-op threads (descheduled on a
busy machine) stalls every request, and measured slower (0.48x the worker's requests/s at 32 clients).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from modelfn.errors import ModelNotReady

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.serving.request import Receive

T = TypeVar("T")
Arrays = dict[str, "npt.NDArray[Any]"]
CURRENT_TICKET: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar("modelfn_batch_ticket", default=None)


@dataclasses.dataclass(eq=False)
class Item:
    """One request's validated feeds waiting for a run."""

    arrays: Arrays
    wanted: list[str]
    rows: int
    key: tuple[Any, ...]
    arrived: float = dataclasses.field(default_factory=time.monotonic)
    future: concurrent.futures.Future[Arrays] = dataclasses.field(default_factory=concurrent.futures.Future)
    waiter: asyncio.Future[None] | None = None
    """Set for a request decoded on the event loop: resolved there, once per run, when ``future`` is done."""


class DropsTickets(Protocol):
    """What a ticket needs of its batcher (``modelfn.serving.batcher.Batcher``, which imports this module)."""

    def _cancel(self, ticket: Ticket) -> None: ...


class Ticket:
    """One HTTP request's place with the batcher: counted while it decodes, droppable until its run starts."""

    def __init__(self, batcher: DropsTickets) -> None:
        self.batcher = batcher
        self.decoding = False
        self.cancelled = False
        self.item: Item | None = None
        self.inline = False
        """Decoded on the event loop: ``predict`` parks the request's greenlet instead of blocking."""
        self.waiter: asyncio.Future[None] | None = None
        """An inline request's wait for a run off the loop (unmergeable feeds)."""

    def cancel(self) -> None:
        """The client went away: drop its queued feeds (a run already under way finishes, unread)."""
        self.batcher._cancel(self)


class LoopSide:
    """What ``Batcher`` does on the event loop thread (its queue and worker live in ``modelfn.serving.batcher``)."""

    max_rows: int
    max_delay_s: float
    executor: concurrent.futures.ThreadPoolExecutor
    _cond: threading.Condition
    _queue: list[Item]
    _closed: bool
    _busy: int
    _in_flight: int
    _run: Callable[[list[Item]], None]
    _take: Callable[[], list[Item]]

    def _init_loop_side(self) -> None:
        self._inline = 0
        """Requests served on the event loop and not answered yet (read without the lock: one int)."""
        self._handing: list[Item] = []
        """Queued on the event loop this iteration; handed over together (event loop only)."""
        self._handing_rows = 0
        self._hand_over: asyncio.Handle | None = None
        self._hand_over_loop: asyncio.AbstractEventLoop | None = None
        self._arriving = False
        """The event loop queued requests in its last iteration and may queue more: worth waiting for."""

    async def _call_inline(
        self, ticket: Ticket, receive: Receive, fn: Callable[..., T], args: tuple[Any, ...]
    ) -> T | None:
        """``fn(*args)`` in a greenlet on this thread; each time it parks (in ``predict``), wait here for the run."""
        loop = asyncio.get_running_loop()
        ticket.inline = True
        context = contextvars.copy_context()
        context.run(CURRENT_TICKET.set, ticket)
        child = greenlet_module().greenlet(fn)
        child.gr_context = context
        watch: asyncio.Future[None] | None = None
        self._inline += 1
        try:
            parked = child.switch(*args)
            while not child.dead:
                if watch is None:  # the client leaving wakes whatever this request waits on
                    watch = loop.create_task(_watch(receive, ticket))
                try:
                    outcome = await self._wait_inline(loop, ticket, parked)
                except BaseException:
                    self._abandon_inline(ticket, child)
                    raise
                if outcome is None:  # the client left before its answer: dropped, never answered
                    self._abandon_inline(ticket, child)
                    return None
                parked = child.switch(outcome)
            return cast("T", parked)
        finally:
            self._inline -= 1
            if watch is not None:
                watch.cancel()

    async def _wait_inline(
        self, loop: asyncio.AbstractEventLoop, ticket: Ticket, parked: Item | Callable[[], Arrays]
    ) -> tuple[bool, Any] | None:
        """A parked request's outcome, ``(ok, value)``, once its run is over; None if its client left first."""
        if not callable(parked):  # feeds to merge
            parked.waiter = waiter = loop.create_future()
            self._handing.append(parked)
            self._handing_rows += parked.rows
            if self._handing_rows >= self.max_rows or time.monotonic() - self._handing[0].arrived >= self.max_delay_s:
                if self._hand_over is not None:  # a full (or overdue) batch: now, not after this loop iteration
                    self._hand_over.cancel()
                self._hand_over_items(loop)
            elif self._hand_over is None or self._hand_over_loop is not loop:
                self._hand_over_loop, self._hand_over = loop, loop.call_soon(self._hand_over_items, loop)
            await waiter
            return (True, None) if parked.future.done() else None
        work = loop.run_in_executor(self.executor, parked)  # unmergeable or too big: alone, off the loop
        ticket.waiter = loop.create_future()
        work.add_done_callback(lambda _: _wake_ticket(ticket))
        await ticket.waiter
        if not work.done():
            work.add_done_callback(lambda f: f.cancelled() or f.exception())
            return None
        error = work.exception()
        return (True, work.result()) if error is None else (False, error)

    def _abandon_inline(self, ticket: Ticket, child: Any) -> None:
        """The client left or the task was cancelled: drop the queued feeds and unwind the greenlet."""
        ticket.cancel()
        if ticket.item is not None and ticket.item in self._handing:
            self._handing.remove(ticket.item)
            self._handing_rows -= ticket.item.rows
        child.throw()  # GreenletExit: unwinds ``fn`` quietly

    def _hand_over_items(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once per loop iteration while requests come: queue them together; wake the worker once a batch is due."""
        self._hand_over = None
        items = [item for item in self._handing if not item.future.cancelled()]
        self._handing.clear()
        self._handing_rows = 0
        with self._cond:
            if self._closed:
                _refuse(items)
                return
            self._queue.extend(items)  # an iteration with nothing new: no more known to be coming
            lone = self._inline <= 1 and not self._in_flight
            self._arriving = bool(items) and not lone
            alone = lone and len(self._queue) == 1 and not self._busy
            if alone:  # the only request in the server: its run is made here and now, no hop to the worker
                alone_batch = self._take()
                self._busy += bool(alone_batch)
            elif self._queue and (
                not self._arriving
                or sum(i.rows for i in self._queue) >= self.max_rows
                or time.monotonic() - self._queue[0].arrived >= self.max_delay_s
            ):
                self._cond.notify()
        if self._arriving:  # look again next iteration
            self._hand_over = loop.call_soon(self._hand_over_items, loop)
        if alone and alone_batch:
            self._run(alone_batch)


def greenlet_module() -> Any:
    """The greenlet module, or None where it is not installed (every request then takes a thread)."""
    global _GREENLET
    if _GREENLET is False:
        try:
            import greenlet  # type: ignore[import-untyped]
        except ImportError:
            greenlet = None
        _GREENLET = greenlet
    return _GREENLET


_GREENLET: Any = False


def park(what: Item | Callable[[], Arrays]) -> Any:
    """Inside a request's greenlet: hand ``what`` (feeds, or a run to make off the loop) over; sleep until done."""
    ok, value = greenlet_module().getcurrent().parent.switch(what)
    if not ok:
        raise value
    return value


async def _watch(receive: Receive, ticket: Ticket) -> None:
    """Wakes the request once its client has gone (no done-callback: cancelling this costs one step)."""
    await disconnected(receive)
    _wake_ticket(ticket)


def _wake_ticket(ticket: Ticket) -> None:
    """Event loop: wake a request waiting on its run (it left, or the run is over)."""
    for waiter in (ticket.waiter, ticket.item.waiter if ticket.item is not None else None):
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _wake(items: Sequence[Item]) -> None:
    """Event loop: wake the requests whose runs are over."""
    for item in items:
        if item.waiter is not None and not item.waiter.done():
            item.waiter.set_result(None)


def wake_loops(batch: Sequence[Item]) -> None:
    """After a run: wake its loop-served requests, directly on their loop or with one call into it from elsewhere."""
    loops: dict[asyncio.AbstractEventLoop, list[Item]] = {}
    for item in batch:
        if item.waiter is not None:
            loops.setdefault(item.waiter.get_loop(), []).append(item)
    if not loops:
        return
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for loop, items in loops.items():
        if loop is running:
            _wake(items)
        else:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_wake, items)


def _refuse(items: Sequence[Item]) -> None:
    """The server is shutting down: queued requests get 503."""
    for item in items:
        if item.future.set_running_or_notify_cancel():
            item.future.set_exception(ModelNotReady("the server is shutting down", field="model"))
    _wake(items)


async def disconnected(receive: Receive) -> None:
    """Returns once the client has gone (the body is already read, so nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass
