"""Push a signed bundle directory to a store, and pull one back into a directory.

Push order is the point: a push first claims the version (``modelfn.repository.claims``), so of
two concurrent pushes of one version only one writes anything under it; then every file goes up,
then the version's hint (how ``latest`` resolves without listing every version, see
``modelfn.repository.versions``) and the signature last, with ``If-None-Match``, so a reader that
sees a signature always finds the files it signs. Once signed, the hints below the version go.
Versions are immutable: a signed version is never overwritten. Pull copies objects as listed
(pinned to the listed ETag) and refuses keys that could land outside ``dest``; it does not verify —
the loader and ``modelfn verify`` do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from modelfn.bundle.layout import SIGNATURE_FILE, version_prefix
from modelfn.errors import ConfigError, ObjectNotFound, PackagingError, StoreError, UnsafeBundleError
from modelfn.repository.claims import DEFAULT_STALE_AFTER_S, VersionConflict, check_held, claim_version, release
from modelfn.repository.versions import prune_hints, write_hint
from modelfn.store.base import ObjectInfo, ProgressCallback, Store, check_key

logger = logging.getLogger("modelfn.repository")

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def push_bundle(
    bundle_dir: Path,
    store: Store,
    *,
    name: str,
    version: int,
    progress: bool = True,
    claim_stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> str:
    """Claim ``<name>/<version>/``, upload every file of ``bundle_dir`` there, signature last; return that prefix.

    A push that loses the claim raises ``VersionConflict`` having written nothing under the version.
    """
    if version < 1:
        raise ConfigError(f"version must be a positive integer, got {version}", field="version")
    prefix = version_prefix(name, version)
    files = _bundle_files(Path(bundle_dir))
    signature = files.pop(SIGNATURE_FILE, None)
    if signature is None:
        raise PackagingError(f"{bundle_dir} has no {SIGNATURE_FILE}; sign the bundle before pushing it")
    _refuse_signed(store, prefix, name, version)
    signature_bytes = signature.read_bytes()
    claim = claim_version(store, name, version, stale_after_s=claim_stale_after_s)
    signed = False
    try:
        _refuse_signed(store, prefix, name, version)  # signed by a push that released its claim just now
        for info in store.list(prefix):  # left by an abandoned push: an unsigned extra file fails verification
            if info.key[len(prefix) :] not in files:
                store.delete(info.key)
        total = sum(path.stat().st_size for path in files.values()) + len(signature_bytes)
        with _progress_bar(total, f"push {name} v{version}", enabled=progress) as advance:
            for rel in sorted(files):
                store.write_file(prefix + rel, files[rel], progress=advance)
            check_held(store, claim, stale_after_s=claim_stale_after_s)
            write_hint(store, name, version)  # before the signature: a signed version always has a hint at or above it
            if not store.write_bytes(prefix + SIGNATURE_FILE, signature_bytes, if_none_match=True):
                raise VersionConflict(
                    f"model {name!r} version {version} was signed by another push to {store.url} meanwhile; "
                    "push a new version",
                    field="version",
                )
            signed = True
            advance(len(signature_bytes))
    finally:
        release(store, claim, signed=signed)
    _prune_hints(store, name, version)
    return prefix


def _prune_hints(store: Store, name: str, version: int) -> None:
    """Best effort: a leftover hint costs a later ``latest`` one small listing, never a wrong answer."""
    try:
        prune_hints(store, name, version)
    except StoreError as exc:
        logger.warning("could not remove the hints below %s v%d: %s", name, version, exc.message)


def _refuse_signed(store: Store, prefix: str, name: str, version: int) -> None:
    if any(info.key == prefix + SIGNATURE_FILE for info in store.list(prefix)):
        raise VersionConflict(
            f"model {name!r} version {version} already exists (signed) in {store.url}; versions are immutable,"
            " push a new version instead",
            field="version",
        )


def pull_bundle(store: Store, *, name: str, version: int, dest: Path, progress: bool = True) -> Path:
    """Download every object under ``<name>/<version>/`` into ``dest`` (new or empty); return ``dest``."""
    prefix = version_prefix(name, version)
    objects = store.list(prefix)
    if not objects:
        raise ObjectNotFound(f"model {name!r} version {version} not found in {store.url}", field="version")
    plan: list[tuple[str, ObjectInfo]] = []
    for info in objects:
        rel = info.key[len(prefix) :]
        if info.is_link:
            raise UnsafeBundleError(f"{store.url}: {info.key} is a symlink; refusing to pull it", field="key")
        plan.append((check_key(rel), info))
    dest = Path(dest)
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise ConfigError(f"pull destination {dest} must be a new or empty directory", field="dest")
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with _progress_bar(sum(info.size for _, info in plan), f"pull {name} v{version}", enabled=progress) as advance:
            for rel, info in plan:
                _download(store, info, dest.joinpath(*rel.split("/")), advance)
    except BaseException:
        _clear(dest, remove_dir=created)
        raise
    return dest


def _bundle_files(root: Path) -> dict[str, Path]:
    """Relative key -> path of every regular file under ``root``; any symlink or special file is refused."""
    if root.is_symlink() or not root.is_dir():
        raise PackagingError(f"bundle directory {root} does not exist or is not a directory")
    found: dict[str, Path] = {}
    pending = [(root, "")]
    while pending:
        directory, rel = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                key = f"{rel}{entry.name}"
                if entry.is_symlink():
                    raise UnsafeBundleError(f"{entry.path} is a symlink; bundles never contain symlinks", field=key)
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), f"{key}/"))
                elif entry.is_file(follow_symlinks=False):
                    found[check_key(key)] = Path(entry.path)
                else:
                    raise UnsafeBundleError(f"{entry.path} is not a regular file", field=key)
    return found


def _download(store: Store, info: ObjectInfo, target: Path, advance: ProgressCallback) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, _CREATE_FLAGS, 0o644)
    with os.fdopen(fd, "wb") as handle:
        for chunk in store.read(info.key, pin=info):
            handle.write(chunk)
            advance(len(chunk))


def _clear(dest: Path, *, remove_dir: bool) -> None:
    """Leave no half-pulled bundle behind."""
    if remove_dir:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@contextlib.contextmanager
def _progress_bar(total: int, description: str, *, enabled: bool) -> Iterator[ProgressCallback]:
    """A rich progress bar on stderr (bytes, rate, ETA); yields the callback that advances it."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
