"""The store contract: a flat key space of immutable-ish objects under one root URL.

Keys are '/'-separated and relative to the store root (``<name>/<version>/<file>``). Stores know
nothing about bundles or signatures; ``modelfn.loader`` and ``modelfn.repository`` do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from modelfn.errors import UnsafeBundleError

if TYPE_CHECKING:
    from modelfn.config import Settings

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes just transferred."""

CHUNK_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """What a listing says about one object; passed back to ``read`` to pin that exact object."""

    key: str
    size: int
    etag: str | None = None
    version_id: str | None = None
    is_link: bool = False
    """True for a symlink (local store); bundles holding one are refused."""


@dataclasses.dataclass(frozen=True)
class StoreTimeouts:
    """Bounds on every network store call, so a store that accepts and stalls cannot hang a process.

    A stalled call costs at most about ``max_attempts * (connect_s + read_s)`` plus botocore's
    ``standard`` backoff between attempts (under 0.1 s; 1 s when throttled): with the defaults, ~6 s
    for an endpoint that accepts and never answers, inside a Lambda init (10 s). botocore's own
    defaults (60 s reads, 5 attempts) cost ~311 s.
    """

    connect_s: float = 2.0
    read_s: float = 3.0
    max_attempts: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreTimeouts:
        """The bounds ``store_connect_timeout_s``, ``store_read_timeout_s`` and ``store_max_attempts`` set."""
        return cls(settings.store_connect_timeout_s, settings.store_read_timeout_s, settings.store_max_attempts)


class Store(Protocol):
    """A place bundles live: local directory, S3 bucket prefix, ..."""

    url: str

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, sorted by key."""
        ...

    def read(self, key: str, *, pin: ObjectInfo | None = None) -> Iterator[bytes]:
        """Stream an object's bytes in chunks.

        With ``pin``, refuse (``ObjectChanged``) when the object is no longer the one listed
        (ETag / version id / size differ). Missing keys raise ``ObjectNotFound``.
        """
        ...

    def write_file(self, key: str, path: Path, *, progress: ProgressCallback | None = None) -> None:
        """Upload a local file (with a SHA-256 checksum where the backend supports one)."""
        ...

    def write_bytes(self, key: str, data: bytes, *, if_none_match: bool = False) -> bool:
        """Write an object atomically. With ``if_none_match``, return False instead of overwriting."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object; a missing key is not an error."""
        ...


@runtime_checkable
class ListsDirectories(Protocol):
    """A store that can list the "directories" right below a prefix without listing every object under it.

    Optional (plugin stores may lack it): resolving ``latest`` then costs one small listing however many
    versions a model has, instead of a listing of every file of every version.
    """

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the directories directly under ``prefix`` (which ends with '/'), sorted; links excluded."""
        ...


@runtime_checkable
class ListsAfter(Protocol):
    """A store that can list keys in order from a given key on, a page at a time (S3's ``StartAfter``).

    Optional: resolving ``latest`` then reads a version's files and learns whether the version above it
    holds anything from one small request, instead of two.
    """

    def list_after(self, prefix: str, start_after: str, page_size: int) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` whose keys sort after ``start_after``, in key order, fetched lazily by pages."""
        ...


def check_key(key: str) -> str:
    """Refuse keys that could escape a store root once mapped to a path; return the key unchanged.

    Object stores accept any key, but a bundle is also a directory on disk (local store, pull), so
    '..', '.', empty parts, absolute keys, backslashes and NUL are refused everywhere alike.
    """
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or "\x00" in key or any(p in ("", ".", "..") for p in parts):
        raise UnsafeBundleError(
            f"unsafe store key {key!r}: keys are '/'-separated relative names without '..', '.', empty parts"
            " or backslashes",
            field="key",
        )
    return key


def check_prefix(prefix: str) -> str:
    """Like ``check_key`` for listing prefixes, which may be empty or end with '/'."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix
