"""The store contract: a flat key space of immutable-ish objects under one root URL.

Keys are '/'-separated and relative to the store root (``<name>/<version>/<file>``). Stores know
nothing about bundles or signatures; ``modelfn.loader`` and ``modelfn.bundle.versions`` do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

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
