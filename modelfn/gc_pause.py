"""Cyclic garbage collection paused while long-lived objects are made (imports, clients, sessions).

A cold start allocates tens of thousands of objects that live as long as the process; the
collections they trigger walk them and free nearly nothing (CNN Lambda cold start: ~45-95 ms of
GC on 2 loaded cores). Re-enabling collection alone would leave one large young collection for
the first requests, so what was made is moved to the oldest generation first (``gc.freeze``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collections_paused(*, keep_frozen: bool) -> Iterator[None]:
    """No cyclic GC inside the block; afterwards what it made joins the oldest generation.

    ``keep_frozen=False`` unfreezes at once: a later full collection still finds any cycle that is
    garbage. ``keep_frozen=True`` leaves it in the permanent generation, never rescanned (nor freed).
    Left alone when the caller has GC off already.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if not keep_frozen:
            gc.unfreeze()
        gc.enable()
