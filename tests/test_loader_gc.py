"""The load runs without cyclic GC and hands what it allocated to the oldest generation, leaving GC as it found it.

Nothing stays frozen (cyclic garbage from the load is still collectable), a refused load restores GC too,
and a caller that turned GC off (container start-up) keeps it off.
"""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Iterator

import pytest

from modelfn.config import Settings
from modelfn.errors import UntrustedKeyError
from modelfn.loader import VerifiedBundle, load_bundle
from modelfn.runtime.base import Model
from tests.fixtures.bundles import Published


@pytest.fixture
def gc_state() -> Iterator[None]:
    """Restore the interpreter's GC switch whatever the test does."""
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_load_leaves_gc_on_with_nothing_frozen_and_the_young_generation_empty(
    local_published: Published, gc_state: None
) -> None:
    # GIVEN GC on, and collections counted while the model loads
    gc.enable()
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        # WHEN the model is loaded
        bundle = load_bundle(local_published.settings)
    finally:
        gc.callbacks.remove(count)
    # THEN no collection ran during the load, GC is on again, nothing is left frozen
    assert collections == []
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    # AND what the load allocated went to the oldest generation: the young one starts empty
    assert gc.get_count()[0] < 100
    assert bundle.health()["name"] == "tiny"


def test_cyclic_garbage_made_during_the_load_is_still_collected(
    local_published: Published, gc_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a reference cycle made while the load runs (inside the runtime builder) and then dropped
    import modelfn.loader as loader

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    real = loader._RUNTIMES["onnx"]
    made: list[weakref.ref[Cycle]] = []

    def builder(verified: VerifiedBundle, settings: Settings) -> Model:
        made.append(weakref.ref(Cycle()))
        return real(verified, settings)

    monkeypatch.setitem(loader._RUNTIMES, "onnx", builder)
    gc.enable()
    load_bundle(local_published.settings)
    # WHEN a full collection runs THEN the cycle, alive until then, is found and freed
    assert made and made[0]() is not None
    gc.collect()
    assert made[0]() is None


def test_refused_load_restores_gc_and_a_caller_with_gc_off_keeps_it_off(
    local_published: Published, gc_state: None
) -> None:
    # GIVEN GC on and a load that is refused (no trusted key)
    gc.enable()
    refused = dataclasses.replace(local_published.settings, trusted_keys=())
    with pytest.raises(UntrustedKeyError):
        load_bundle(refused)
    # THEN GC is on again and nothing stays frozen
    assert gc.isenabled() and gc.get_freeze_count() == 0
    # GIVEN GC turned off by the caller WHEN a model loads THEN it stays off
    gc.disable()
    load_bundle(local_published.settings)
    assert not gc.isenabled()
