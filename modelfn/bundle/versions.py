"""Which versions of a model a store holds, and what ``latest`` means.

A version exists only once its signature is stored: pushes upload the signature last, so an
interrupted or in-flight push is invisible here, and ``latest`` never points at half a bundle.
Version directories are canonical positive integers (``3``, not ``03``), so two directories can
never claim the same version.
"""

from __future__ import annotations

from modelfn.bundle.layout import SIGNATURE_FILE, check_model_name
from modelfn.errors import ConfigError, ObjectNotFound
from modelfn.store.base import Store

LATEST = "latest"


def _parse_version(text: str) -> int | None:
    """The version a directory name stands for, or None when it is not a canonical positive integer."""
    if not text.isascii() or not text.isdigit() or text.startswith("0"):
        return None
    return int(text)


def list_versions(store: Store, name: str) -> list[int]:
    """Signed versions of ``name`` in ``store``, ascending (a symlinked signature does not count)."""
    prefix = f"{check_model_name(name)}/"
    signed: set[int] = set()
    for info in store.list(prefix):
        head, _, rest = info.key[len(prefix) :].partition("/")
        version = _parse_version(head)
        if version is not None and rest == SIGNATURE_FILE and not info.is_link:
            signed.add(version)
    return sorted(signed)


def resolve_version(store: Store, name: str, wanted: str) -> int:
    """``latest`` -> the highest signed version; an integer -> that version if it is signed."""
    versions = list_versions(store, name)
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
