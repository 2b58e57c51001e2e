"""Walking and reading a bundle directory without ever following a link.

Signing and verifying see a bundle the same way: every regular file except the root
``model.sig``, named by its '/'-joined relative path. A symlink, device, socket or pipe anywhere
refuses the whole bundle, and so does a pickle-family file, whatever any signature says.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from modelfn.bundle.layout import PICKLE_EXTENSIONS, SIGNED_IGNORE_PATHS
from modelfn.errors import UnsafeBundleError
from modelfn.signing.statement import MAX_RESOURCES, check_resource_name, resource_sort_key

_READ_CHUNK = 1024 * 1024


def list_bundle_files(bundle_dir: Path) -> dict[str, Path]:
    """Relative name -> path of every file to sign or verify, in canonical order."""
    try:
        top = os.lstat(bundle_dir)
    except OSError as exc:
        raise UnsafeBundleError(f"cannot read bundle directory {bundle_dir}: {exc.strerror}") from exc
    if not stat.S_ISDIR(top.st_mode):
        raise UnsafeBundleError(f"bundle {bundle_dir} is not a directory (symlinks are refused)")
    found: dict[str, Path] = {}
    pending: list[tuple[Path, str]] = [(bundle_dir, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise UnsafeBundleError(f"cannot list {directory}: {exc.strerror}") from exc
        for entry in entries:
            name = prefix + entry.name
            if entry.is_symlink():
                raise UnsafeBundleError(f"bundle holds a symlink: {name}", field=name)
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), name + "/"))
                continue
            if not entry.is_file(follow_symlinks=False):
                raise UnsafeBundleError(f"bundle holds something that is not a regular file: {name}", field=name)
            if name in SIGNED_IGNORE_PATHS:
                continue
            if name.lower().endswith(PICKLE_EXTENSIONS):
                raise UnsafeBundleError(f"{name} is a pickle-family file; bundles never hold pickle", field=name)
            found[check_resource_name(name)] = Path(entry.path)
            if len(found) > MAX_RESOURCES:
                raise UnsafeBundleError(f"bundle holds more than {MAX_RESOURCES} files")
    return {name: found[name] for name in sorted(found, key=resource_sort_key)}


def open_no_follow(path: Path) -> int:
    """A read-only descriptor for ``path``; a symlink swapped in after listing is refused (O_NOFOLLOW)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeBundleError(f"bundle holds a symlink: {path.name}", field=path.name) from exc
        raise UnsafeBundleError(f"cannot open {path.name}: {exc.strerror}", field=path.name) from exc


def read_regular_file(path: Path, *, limit: int | None = None) -> bytes:
    """Read a file once, without following links; refuse anything but a regular file."""
    fd = open_no_follow(path)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeBundleError(f"{path.name} is not a regular file")
        if limit is not None and info.st_size > limit:
            raise UnsafeBundleError(f"{path.name} is larger than {limit} bytes", field=path.name)
        chunks: list[bytes] = []
        total = 0
        while chunk := handle.read(_READ_CHUNK):
            chunks.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:  # grew after fstat
                raise UnsafeBundleError(f"{path.name} is larger than {limit} bytes", field=path.name)
        return b"".join(chunks)
