"""Which versions of a model a store holds, and what ``latest`` means.

A version exists only once its signature is stored: pushes upload the signature last, so an
interrupted or in-flight push is invisible here, and ``latest`` never points at half a bundle.
Version directories are canonical positive integers (``3``, not ``03``), so two directories can
never claim the same version.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelfn.bundle.layout import SIGNATURE_FILE, check_model_name, version_prefix
from modelfn.errors import ConfigError, ObjectNotFound
from modelfn.store.base import ListsDirectories, ObjectInfo, Store

LATEST = "latest"


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
    """The version to load and the objects under its prefix, from a single listing of the store.

    The loader's cold path: an explicit version lists only ``<name>/<version>/``; ``latest`` lists the
    version directory names, then the files of the highest signed one, on stores that can list
    directories (both built-in stores), else ``<name>/`` once. Errors are those of ``resolve_version``.
    """
    if wanted != LATEST:
        version = _parse_version(wanted)
        if version is not None:
            listing = store.list(version_prefix(name, version))
            if any(i.key.endswith("/" + SIGNATURE_FILE) and not i.is_link for i in listing):
                return version, listing
        return resolve_version(store, name, wanted), []  # raises with the list of signed versions
    if isinstance(store, ListsDirectories):
        return _latest_of(store, name, store.list_dirs(f"{check_model_name(name)}/"))
    everything = store.list(f"{check_model_name(name)}/")
    version = _pick(signed_versions(everything, name), name, wanted, store)
    prefix = version_prefix(name, version)
    return version, [info for info in everything if info.key.startswith(prefix)]


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
