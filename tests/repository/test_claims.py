"""Version claims: a held claim blocks other pushes, an abandoned one is taken over, never both sign."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from modelfn.repository.claims import CLAIMS_ROOT, VersionConflict, check_held, claim_version
from modelfn.repository.transfer import push_bundle
from modelfn.store.base import Store

STALE_S = 60.0


def _ago(seconds: float) -> float:
    return time.time() - seconds


def test_a_held_claim_refuses_another_push_which_writes_nothing(store: Store, bundle_dir: Path) -> None:
    # GIVEN iris v1 claimed a moment ago by a push still running
    claim_version(store, "iris", 1, stale_after_s=STALE_S)
    # WHEN another push of v1 starts / THEN it fails naming the version and the claim, writing nothing under it
    with pytest.raises(VersionConflict, match=r"version 1 is being pushed .* by another push") as caught:
        push_bundle(bundle_dir, store, name="iris", version=1, progress=False, claim_stale_after_s=STALE_S)
    assert caught.value.field == "version" and caught.value.status_code == 409
    assert store.list("iris/") == []


def test_an_abandoned_claim_is_taken_over_and_its_leftovers_removed(store: Store, bundle_dir: Path) -> None:
    # GIVEN a push that claimed v1 long ago, wrote part of a bundle (with a file ours lacks) and died
    claim_version(store, "iris", 1, stale_after_s=STALE_S, clock=lambda: _ago(2 * STALE_S))
    store.write_bytes("iris/1/model.onnx", b"half a model")
    store.write_bytes("iris/1/extra.bin", b"not in our bundle")
    # WHEN a new push of v1 runs
    push_bundle(bundle_dir, store, name="iris", version=1, progress=False, claim_stale_after_s=STALE_S)
    # THEN the version holds exactly our files (leftovers replaced or removed) and no claim remains
    stored = {info.key: b"".join(store.read(info.key)) for info in store.list("iris/1/")}
    assert stored == {f"iris/1/{p.name}": p.read_bytes() for p in bundle_dir.iterdir()}
    assert [info.key for info in store.list("iris/")] == sorted([*stored, "iris/.latest/1"])
    assert store.list(f"{CLAIMS_ROOT}/") == []


def test_an_owner_whose_claim_was_taken_over_does_not_sign(store: Store) -> None:
    # GIVEN a slow push whose claim went stale, and a second push that took the version over
    slow = claim_version(store, "iris", 1, stale_after_s=STALE_S, clock=lambda: _ago(2 * STALE_S))
    fresh = claim_version(store, "iris", 1, stale_after_s=STALE_S)
    # WHEN each checks its claim before signing / THEN only the newer one may sign
    with pytest.raises(VersionConflict, match="took over this push's claim"):
        check_held(store, slow, stale_after_s=STALE_S)
    check_held(store, fresh, stale_after_s=STALE_S)
    assert fresh.generation == slow.generation + 1


def test_an_owner_past_half_the_stale_age_does_not_sign(store: Store) -> None:
    # GIVEN a claim older than half the age at which it may be taken over
    claim = claim_version(store, "iris", 1, stale_after_s=STALE_S, clock=lambda: _ago(0.6 * STALE_S))
    # WHEN its owner checks it before signing / THEN it refuses: a takeover could be near
    with pytest.raises(VersionConflict, match="may be taken over; not signing"):
        check_held(store, claim, stale_after_s=STALE_S)


def test_an_unreadable_claim_counts_as_abandoned(store: Store, bundle_dir: Path) -> None:
    # GIVEN a claim object that is not a claim (hand-written junk)
    store.write_bytes(f"{CLAIMS_ROOT}/iris/1/1", b"not json")
    # WHEN pushing v1 / THEN the junk does not block the version for ever
    push_bundle(bundle_dir, store, name="iris", version=1, progress=False, claim_stale_after_s=STALE_S)
    assert any(info.key == "iris/1/model.sig" for info in store.list("iris/1/"))


def test_a_claim_names_its_holder(store: Store) -> None:
    # GIVEN / WHEN a claim is taken / THEN it records who holds it and when, for the error another push shows
    claim = claim_version(store, "iris", 2)
    body = json.loads(b"".join(store.read(claim.key)))
    assert body["token"] == claim.token and "pid" in body["holder"]
    assert body["claimed_at"] == pytest.approx(claim.claimed_at)
