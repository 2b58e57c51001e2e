"""Store URL -> store, dispatched on the URL scheme through one dict.

Adding a backend is one entry in ``STORES``; an unknown scheme gets an error listing the supported
ones. Bare paths (no scheme) are local directories, like the embedded default ``./.modelfn/store``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from modelfn.errors import ConfigError
from modelfn.store.base import Store, StoreTimeouts

if TYPE_CHECKING:
    from modelfn.config import Settings


def _local(url: str, timeouts: StoreTimeouts | None) -> Store:
    from modelfn.store.local import LocalStore

    parts = urlsplit(url)
    if parts.scheme == "":
        return LocalStore(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"store URL {url!r} names host {parts.netloc!r}; use file:///absolute/path or a bare path",
            field="store_url",
        )
    if not parts.path:
        raise ConfigError(f"store URL {url!r} has no path", field="store_url")
    return LocalStore(unquote(parts.path))


def _s3(url: str, timeouts: StoreTimeouts | None) -> Store:
    from modelfn.store.s3 import S3Store

    parts = urlsplit(url)
    if not parts.netloc:
        raise ConfigError(f"store URL {url!r} has no bucket; expected s3://bucket[/prefix]", field="store_url")
    if parts.query or parts.fragment:
        raise ConfigError(f"store URL {url!r}: query strings and fragments are not supported", field="store_url")
    return S3Store(parts.netloc, unquote(parts.path), timeouts=timeouts)


STORES: dict[str, Callable[[str, StoreTimeouts | None], Store]] = {"file": _local, "s3": _s3}
"""Scheme -> factory; the empty scheme (a bare path) is a local directory."""


def store_for(url: str, settings: Settings | None = None) -> Store:
    """The store a URL names: ``file:///path``, a bare path, ``s3://bucket`` or ``s3://bucket/prefix/``.

    Network stores bound every call by ``settings``' store timeouts (read from the environment and
    settings file when ``settings`` is None).
    """
    if not url:
        raise ConfigError("store URL is empty", field="store_url")
    scheme = urlsplit(url).scheme.lower()
    factory = _local if scheme == "" else STORES.get(scheme)
    if factory is None:
        supported = ", ".join(f"{name}://" for name in STORES)
        raise ConfigError(
            f"unsupported store URL scheme {scheme!r} in {url!r}; supported: {supported} or a bare path",
            field="store_url",
        )
    return factory(url, None if settings is None else StoreTimeouts.from_settings(settings))
