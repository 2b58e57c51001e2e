"""Which versions of a model a store holds, and what ``latest`` means.

A version exists only once its signature is stored: pushes upload the signature last, so an
interrupted or in-flight push is invisible here, and ``latest`` never points at half a bundle.
Version directories are canonical positive integers (``3``, not ``03``), so two directories can
never claim the same version.

Resolving ``latest`` must not cost more as a model's history grows, so pushes leave *hints*: an empty
object ``<name>/.latest/<version>`` written after the version is claimed and before it is signed.
A hint is unsigned and never decides alone; it only says which version to check first (see
``hinted_latest``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from modelfn.bundle.layout import SIGNATURE_FILE, check_model_name, version_prefix
from modelfn.errors import ConfigError, ObjectNotFound
from modelfn.store.base import ListsAfter, ListsDirectories, ObjectInfo, Store
from modelfn.store.local import LocalStore

logger = logging.getLogger("modelfn.repository")

LATEST = "latest"
HINTS_DIR = ".latest"
"""Hints live in ``<name>/.latest/`` (under the model's prefix, which the function may read; never a version)."""
MAX_HINTS_TRIED = 3
"""Hints checked before the directory listing decides, so a flood of hints cannot cost a request each."""
_PAGE_SIZE = 16
"""Keys per page when listing from a version on: a bundle's few files and the first key past them."""


def _parse_version(text: str) -> int | None:
    """The version a directory name stands for, or None when it is not a canonical positive integer."""
    if not text.isascii() or not text.isdigit() or text.startswith("0"):
        return None
    return int(text)


def list_versions(store: Store, name: str) -> list[int]:
    """Signed versions of ``name`` in ``store``, ascending (a symlinked signature does not count)."""
    return signed_versions(store.list(f"{check_model_name(name)}/"), name)


def signed_versions(listing: Iterable[ObjectInfo], name: str) -> list[int]:
    """Signed versions of ``name`` found in a listing of the ``<name>/`` prefix, ascending."""
    prefix = f"{check_model_name(name)}/"
    signed: set[int] = set()
    for info in listing:
        head, _, rest = info.key[len(prefix) :].partition("/")
        version = _parse_version(head)
        if version is not None and rest == SIGNATURE_FILE and not info.is_link:
            signed.add(version)
    return sorted(signed)


def resolve_listing(store: Store, name: str, wanted: str) -> tuple[int, list[ObjectInfo]]:
    """The version to load and the objects under its prefix.

    The loader's cold path: an explicit version lists only ``<name>/<version>/``. ``latest`` tries the
    hints first (``hinted_latest``: three small listings in two round trips, however many versions
    there are), then falls back to listing the version directory names and the files of the highest
    signed one on stores that can list directories (both built-in stores), else ``<name>/`` once.
    Errors are those of ``resolve_version``.
    """
    if wanted != LATEST:
        version = _parse_version(wanted)
        if version is not None:
            listing = store.list(version_prefix(name, version))
            if any(i.key.endswith("/" + SIGNATURE_FILE) and not i.is_link for i in listing):
                return version, listing
        return resolve_version(store, name, wanted), []  # raises with the list of signed versions
    return hinted_latest(store, name) or listed_latest(store, name)


def listed_latest(store: Store, name: str) -> tuple[int, list[ObjectInfo]]:
    """``latest`` without hints: from the version directory names (cost grows with their count), else ``<name>/``."""
    if isinstance(store, ListsDirectories):
        return _latest_of(store, name, store.list_dirs(f"{check_model_name(name)}/"))
    everything = store.list(f"{check_model_name(name)}/")
    version = _pick(signed_versions(everything, name), name, LATEST, store)
    prefix = version_prefix(name, version)
    return version, [info for info in everything if info.key.startswith(prefix)]


def hint_key(name: str, version: int) -> str:
    """Store key of the hint a push of ``name`` ``version`` leaves."""
    return f"{check_model_name(name)}/{HINTS_DIR}/{int(version)}"


def hinted_latest(store: Store, name: str) -> tuple[int, list[ObjectInfo]] | None:
    """``latest`` and its objects as confirmed by signatures from the hints, or None to list directories.

    Why a checked hint can be believed: ``push_bundle`` writes its hint before the signature and
    removes only hints below a version it has signed, so the highest hint whose version is signed is
    at least every version ``modelfn push`` ever signed, gaps between versions or not (``modelfn
    package --version`` may skip numbers). The highest hints are checked, highest first: one counts
    only when the listing of its version (which the loader needs anyway) shows a signature at its root
    and the version right above it is not signed (``_version_and_above``; one request on S3). A hint
    whose version is unsigned (a push in flight or abandoned, or a forged hint) passes to the next
    hint; a signed version right above it (copied into the store by other means) makes it stale, and
    the directory listing decides, as it does when no hint holds: nothing unsigned picks the version
    alone. Only ``modelfn push`` keeps the hints right: the check above a hint sees one version, not
    the ones beyond a gap, so a version copied by hand above a gap stays unseen until the next push
    (delete ``<name>/.latest/`` to make every load list directories). Lowering the hints takes
    deleting objects under ``<name>/``, which could delete signatures as well.
    """
    prefix = f"{check_model_name(name)}/{HINTS_DIR}/"
    hinted = sorted(
        {v for info in store.list(prefix) if not info.is_link and (v := _parse_version(info.key[len(prefix) :]))},
        reverse=True,
    )
    if not hinted:
        logger.debug("no hint of the latest %s version in %s: listing version directories", name, store.url)
        return None
    unsigned_above: int | None = None
    for version in hinted[:MAX_HINTS_TRIED]:
        listing, above_signed = _version_and_above(store, name, version, check_above=unsigned_above != version + 1)
        if not _is_signed(listing, version_prefix(name, version)):
            logger.debug("hinted %s v%d is not signed in %s: trying the next hint", name, version, store.url)
            unsigned_above = version
            continue
        if above_signed:
            logger.debug(
                "hint %s v%d is stale (v%d is signed): listing version directories", name, version, version + 1
            )
            return None
        return version, listing
    logger.debug("no hinted %s version is signed in %s: listing version directories", name, store.url)
    return None


def write_hint(store: Store, name: str, version: int) -> None:
    """Leave the hint of a push (call after claiming the version and before writing its signature)."""
    store.write_bytes(hint_key(name, version), b"")


def prune_hints(store: Store, name: str, signed: int) -> None:
    """Remove the hints below ``signed``, a version just signed (its own hint keeps ``latest`` in reach)."""
    prefix = f"{check_model_name(name)}/{HINTS_DIR}/"
    for info in store.list(prefix):
        version = _parse_version(info.key[len(prefix) :])
        if version is not None and version < signed:
            store.delete(info.key)


def _version_and_above(store: Store, name: str, version: int, *, check_above: bool) -> tuple[list[ObjectInfo], bool]:
    """The objects of ``version``, and whether ``version + 1`` is signed (False unless ``check_above``).

    On a store that lists from a key on (S3), one small request usually answers both: keys sort, so
    listing after ``<name>/<version>/`` (under the prefix both versions' keys share: ``<name>/1`` for
    12 and 13) returns the version's files first, and the first key past them, if it sorts after every
    key ``<name>/<version + 1>/`` could hold, proves that version holds nothing. When that key is under
    the version above, or sorts before it (``<name>/30/`` lies between ``3/`` and ``4/``), or the
    version above sorts first (9, 99, ...), the version above is listed too.
    """
    prefix, above = version_prefix(name, version), version_prefix(name, version + 1)
    if not check_above:
        return store.list(prefix), False
    if isinstance(store, ListsAfter) and above > prefix:
        listing: list[ObjectInfo] = []
        for info in store.list_after(os.path.commonprefix([prefix, above]), prefix, _PAGE_SIZE):
            if info.key.startswith(prefix):
                listing.append(info)
                continue
            if info.key > above and not info.key.startswith(above):
                return listing, False
            break
        else:
            return listing, False  # nothing sorts after the version's files
        return listing, _is_signed(store.list(above), above)
    listing, above_listing = _list_both(store, prefix, above)
    return listing, _is_signed(above_listing, above)


def _list_both(store: Store, first: str, second: str) -> tuple[list[ObjectInfo], list[ObjectInfo]]:
    """List two prefixes at once on a network store (one round trip).

    A local store lists both in turn: its listings take microseconds, less than starting a thread.
    """
    if isinstance(store, LocalStore):
        return store.list(first), store.list(second)
    found: dict[str, list[ObjectInfo]] = {}
    failed: list[BaseException] = []

    def list_second() -> None:
        try:
            found["second"] = store.list(second)
        except BaseException as exc:  # re-raised in the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=list_second, name="modelfn-list-above", daemon=True)
    worker.start()
    try:
        first_listing = store.list(first)
    finally:
        worker.join()
    if failed:
        raise failed[0]
    return first_listing, found["second"]


def _latest_of(store: Store, name: str, directories: list[str]) -> tuple[int, list[ObjectInfo]]:
    """``latest`` from the version directory names, highest first, listing files of the candidates only.

    Nothing unsigned picks the version: a directory counts only once its own listing shows a signature
    (an in-flight push above it costs one more small listing). S3 returns 1,000 directory names per
    page, so up to 1,000 versions cost one page however many files each holds.
    """
    candidates = sorted(v for v in map(_parse_version, directories) if v is not None)
    for version in reversed(candidates):
        prefix = version_prefix(name, version)
        listing = store.list(prefix)
        if _is_signed(listing, prefix):
            return version, listing
    raise ObjectNotFound(f"no signed versions of model {name!r} in {store.url}", field="model_name")


def _is_signed(listing: Iterable[ObjectInfo], prefix: str) -> bool:
    return any(info.key == prefix + SIGNATURE_FILE and not info.is_link for info in listing)


def resolve_version(store: Store, name: str, wanted: str) -> int:
    """``latest`` -> the highest signed version; an integer -> that version if it is signed."""
    return _pick(list_versions(store, name), name, wanted, store)


def _pick(versions: list[int], name: str, wanted: str, store: Store) -> int:
    if wanted == LATEST:
        if not versions:
            raise ObjectNotFound(f"no signed versions of model {name!r} in {store.url}", field="model_name")
        return versions[-1]
    version = _parse_version(wanted)
    if version is None:
        raise ConfigError(
            f"model version must be a positive integer or 'latest', got {wanted!r}", field="model_version"
        )
    if version not in versions:
        have = ", ".join(map(str, versions)) or "none"
        raise ObjectNotFound(
            f"model {name!r} version {version} not found in {store.url}; signed versions: {have}",
            field="model_version",
        )
    return version


def next_version(store: Store, name: str) -> int:
    """One above the highest signed version (1 for a new model); unsigned leftovers may be overwritten."""
    versions = list_versions(store, name)
    return versions[-1] + 1 if versions else 1
