"""Version claims: of two concurrent pushes of one version, exactly one may write it.

A push first claims ``<name>/<version>`` with a conditional write (``If-None-Match: *`` on S3,
``link(2)`` on a local store) of ``.modelfn-claims/<name>/<version>/<generation>``, and only then
touches the version prefix. The loser's conditional write fails, so it stops before writing
anything of the winner's version. The claim is outside every ``<name>/`` prefix, so listings of
versions and the loader never see it.

An abandoned claim (a push killed midway) must not block the version for ever: a claim older than
``stale_after_s`` may be taken over by writing the next generation, again conditionally, so of two
pushes taking over at once one wins. An owner never signs once its claim is older than half that
age, so a slow owner and the push that took over from it never both write the version (assuming
clocks agree within ``stale_after_s / 2``). Recovery without waiting: push the next version
(an unsigned version is invisible to ``latest``), or, once sure no push is running, delete the
objects under ``.modelfn-claims/<name>/<version>/``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable

from modelfn.errors import ObjectNotFound, StoreError
from modelfn.store.base import ObjectInfo, Store

logger = logging.getLogger("modelfn.repository")

CLAIMS_ROOT = ".modelfn-claims"
"""Claims live here, outside every model's prefix (model names start with a letter or digit)."""
DEFAULT_STALE_AFTER_S = 3 * 3600.0
"""A claim this old is taken to be abandoned; its owner stops signing after half of it (1.5 h)."""
MAX_CLAIM_BYTES = 4096

Clock = Callable[[], float]


class VersionConflict(StoreError):
    """Raise when another push holds, or finished, the version this push wanted to write."""

    status_code = 409
    code = "version_conflict"


@dataclasses.dataclass(frozen=True)
class Claim:
    """This push's hold on one version of one model."""

    name: str
    version: int
    generation: int
    token: str
    claimed_at: float

    @property
    def key(self) -> str:
        """The store key of this claim object."""
        return f"{_claims_prefix(self.name, self.version)}{self.generation}"


def claim_version(
    store: Store, name: str, version: int, *, stale_after_s: float = DEFAULT_STALE_AFTER_S, clock: Clock = time.time
) -> Claim:
    """Claim ``name`` ``version`` for this push, or raise ``VersionConflict`` naming who holds it."""
    held = _generations(store, name, version)
    generation = 1
    if held:
        top, info = held[-1]
        try:
            holder, claimed_at = _read_claim(store, info)
        except ObjectNotFound:  # released between the listing and the read: that generation is free again
            holder, claimed_at, top = "a released claim", -math.inf, top - 1
        age = clock() - claimed_at
        if age < stale_after_s:
            raise VersionConflict(
                f"model {name!r} version {version} is being pushed to {store.url} by another push ({holder},"
                f" claimed {max(age, 0):.0f} s ago); push a new version, or if that push was abandoned retry after"
                f" {stale_after_s:.0f} s or delete {store.url.rstrip('/')}/{_claims_prefix(name, version)}",
                field="version",
            )
        if math.isfinite(age):
            logger.warning("taking over the abandoned claim on %s v%d (%s, %.0f s old)", name, version, holder, age)
        generation = top + 1
    claim = Claim(name, version, generation, secrets.token_hex(16), clock())
    body = {"token": claim.token, "claimed_at": claim.claimed_at, "holder": f"{socket.gethostname()} pid {os.getpid()}"}
    if not store.write_bytes(claim.key, json.dumps(body).encode(), if_none_match=True):
        raise VersionConflict(
            f"model {name!r} version {version} was claimed by another push to {store.url} at the same moment;"
            " push a new version",
            field="version",
        )
    return claim


def check_held(
    store: Store, claim: Claim, *, stale_after_s: float = DEFAULT_STALE_AFTER_S, clock: Clock = time.time
) -> None:
    """Raise ``VersionConflict`` unless ``claim`` is still the newest and young enough to sign under."""
    held = _generations(store, claim.name, claim.version)
    if not held or held[-1][0] != claim.generation:
        raise VersionConflict(
            f"model {claim.name!r} version {claim.version}: another push took over this push's claim in"
            f" {store.url}; not signing, push a new version",
            field="version",
        )
    if clock() - claim.claimed_at > stale_after_s / 2:
        raise VersionConflict(
            f"model {claim.name!r} version {claim.version}: this push took over {stale_after_s / 2:.0f} s, so its"
            " claim may be taken over; not signing, push again",
            field="version",
        )


def release(store: Store, claim: Claim, *, signed: bool = False) -> None:
    """Remove this push's claim, and once the version is signed the abandoned ones it took over too.

    Best effort: a leftover claim only delays a retry of an unsigned version, and means nothing once
    the version is signed.
    """
    keys = [claim.key]
    try:
        if signed:
            keys = [info.key for gen, info in _generations(store, claim.name, claim.version) if gen <= claim.generation]
        for key in keys:
            store.delete(key)
    except StoreError as exc:
        logger.warning("could not remove the claim on %s v%d: %s", claim.name, claim.version, exc.message)


def _claims_prefix(name: str, version: int) -> str:
    return f"{CLAIMS_ROOT}/{name}/{version}/"


def _generations(store: Store, name: str, version: int) -> list[tuple[int, ObjectInfo]]:
    """Claim objects of one version by generation, ascending (foreign names ignored)."""
    prefix = _claims_prefix(name, version)
    found = []
    for info in store.list(prefix):
        rest = info.key[len(prefix) :]
        if rest.isascii() and rest.isdigit() and not rest.startswith("0") and not info.is_link:
            found.append((int(rest), info))
    return sorted(found, key=lambda pair: pair[0])


def _read_claim(store: Store, info: ObjectInfo) -> tuple[str, float]:
    """(holder, claimed_at) of a claim; one that is unreadable or malformed counts as abandoned long ago."""
    if info.size > MAX_CLAIM_BYTES:
        return "an unreadable claim", 0.0
    try:
        body = json.loads(b"".join(store.read(info.key)))
        return str(body["holder"]), float(body["claimed_at"])
    except StoreError:
        raise
    except (ValueError, KeyError, TypeError):
        return "an unreadable claim", 0.0
