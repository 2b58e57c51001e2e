"""Local directory store: the embedded default (``./.modelfn/store``), bare paths and ``file://`` URLs.

A store directory can be reachable by other users (shared CI runners, multi-tenant hosts), so every
path component below the root is opened relative to its parent with ``O_NOFOLLOW``: a symlink is
reported by ``list`` and refused by ``read``, never followed. Writes go to a temporary file that is
renamed into place, so readers never see half a file; conditional writes use ``link(2)``, which fails
when the name exists, so of two concurrent writers exactly one wins.
"""

from __future__ import annotations

import builtins
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from pathlib import Path
from typing import BinaryIO

from modelfn.errors import ObjectChanged, ObjectNotFound, StoreError, UnsafeBundleError
from modelfn.store.base import CHUNK_BYTES, ObjectInfo, ProgressCallback, check_key, check_prefix

_TMP_PREFIX = ".modelfn-partial-"
"""Names of in-flight writes; hidden from listings."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO must not hang us
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _etag(st: os.stat_result) -> str:
    """Changes whenever the file is replaced (inode) or rewritten (mtime, size)."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


class LocalStore:
    """Objects are files under ``root``; keys are their '/'-separated relative paths."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # --- Store protocol -----------------------------------------------------------------------

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every file and symlink whose key starts with ``prefix``, sorted by key."""
        check_prefix(prefix)
        head = prefix.rpartition("/")[0]
        parts = head.split("/") if head else []
        try:
            dir_fd = self._open_dir(parts, create=False, key=prefix)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found: list[ObjectInfo] = []
        try:
            self._walk(dir_fd, f"{head}/" if head else "", found)
        except OSError as exc:
            raise StoreError(f"{self.url}: cannot list {prefix!r}: {exc.strerror}") from exc
        finally:
            os.close(dir_fd)
        return sorted((info for info in found if info.key.startswith(prefix)), key=lambda info: info.key)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Real subdirectories of the directory ``prefix`` names (symlinks and files excluded), sorted."""
        check_prefix(prefix)
        head = prefix.rpartition("/")[0]
        try:
            dir_fd = self._open_dir(head.split("/") if head else [], create=False, key=prefix)
        except (FileNotFoundError, NotADirectoryError):
            return []
        try:
            with os.scandir(dir_fd) as entries:
                return sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
        except OSError as exc:
            raise StoreError(f"{self.url}: cannot list {prefix!r}: {exc.strerror}") from exc
        finally:
            os.close(dir_fd)

    def read(self, key: str, *, pin: ObjectInfo | None = None) -> Iterator[bytes]:
        """Open the file now (refusing symlinks and non-regular files) and stream it in chunks."""
        check_key(key)
        *dirs, name = key.split("/")
        try:
            dir_fd = self._open_dir(dirs, create=False, key=key)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"{self.url}/{key} does not exist", field="key") from exc
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.url}/{key} does not exist", field="key") from exc
        except OSError as exc:
            self._refuse_if_link(dir_fd, name, key, exc)
            raise StoreError(f"{self.url}/{key}: cannot open: {exc.strerror}", field="key") from exc
        finally:
            os.close(dir_fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise UnsafeBundleError(f"{self.url}/{key} is not a regular file", field="key")
        if pin is not None and (pin.size != st.st_size or (pin.etag is not None and pin.etag != _etag(st))):
            os.close(fd)
            raise ObjectChanged(f"{self.url}/{key} changed since it was listed (size or mtime differ)", field="key")
        return self._stream(fd, st, key)

    def write_file(self, key: str, path: Path, *, progress: ProgressCallback | None = None) -> None:
        """Copy a local file into the store atomically, reporting bytes copied to ``progress``."""
        check_key(key)
        try:
            source = open(path, "rb")  # closed by _file_chunks
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}", field="path") from exc
        self._write(key, _file_chunks(source, progress), exclusive=False)

    def write_bytes(self, key: str, data: bytes, *, if_none_match: bool = False) -> bool:
        """Write atomically; with ``if_none_match`` return False (content untouched) when the key exists."""
        check_key(key)
        return self._write(key, [data], exclusive=if_none_match)

    def delete(self, key: str) -> None:
        """Unlink the file (never following a symlink: a link itself is removed); a missing key is fine."""
        check_key(key)
        *dirs, name = key.split("/")
        try:
            dir_fd = self._open_dir(dirs, create=False, key=key)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"{self.url}/{key}: cannot delete: {exc.strerror}", field="key") from exc
        finally:
            os.close(dir_fd)

    # --- helpers --------------------------------------------------------------------------------

    def _open_dir(self, parts: Sequence[str], *, create: bool, key: str) -> int:
        """Open root/parts... one component at a time, refusing symlinks; optionally create missing dirs."""
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    self._refuse_if_link(fd, part, key, exc)
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _refuse_if_link(self, dir_fd: int, name: str, key: str, exc: OSError) -> None:
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        if is_link or exc.errno == errno.ELOOP:
            raise UnsafeBundleError(
                f"{self.url}/{key}: {name!r} is a symlink; stores never follow symlinks", field="key"
            ) from exc

    def _walk(self, dir_fd: int, rel: str, out: MutableSequence[ObjectInfo]) -> None:
        with os.scandir(dir_fd) as entries:
            names = [entry.name for entry in entries]
        for name in names:
            key = f"{rel}{name}"
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd) if stat.S_ISDIR(st.st_mode) else -1
            except FileNotFoundError:
                continue  # gone since the directory was read: a finished write's temporary file, a deleted claim
            if sub != -1:
                try:
                    self._walk(sub, f"{key}/", out)
                finally:
                    os.close(sub)
            elif not name.startswith(_TMP_PREFIX) or stat.S_ISLNK(st.st_mode):
                # Symlinks, FIFOs and devices are listed too, so callers see (and refuse) them.
                out.append(ObjectInfo(key, st.st_size, _etag(st), is_link=stat.S_ISLNK(st.st_mode)))

    def _stream(self, fd: int, opened: os.stat_result, key: str) -> Iterator[bytes]:
        with os.fdopen(fd, "rb", buffering=0) as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk
            now = os.fstat(handle.fileno())
        if now.st_size != opened.st_size or now.st_mtime_ns != opened.st_mtime_ns:
            raise ObjectChanged(f"{self.url}/{key} was modified while it was being read", field="key")

    def _write(self, key: str, chunks: Iterable[bytes], *, exclusive: bool) -> bool:
        *dirs, name = key.split("/")
        try:
            dir_fd = self._open_dir(dirs, create=True, key=key)
        except OSError as exc:
            raise StoreError(f"{self.url}/{key}: cannot create its directory: {exc.strerror}", field="key") from exc
        tmp = f"{_TMP_PREFIX}{name}.{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, _TMP_FLAGS, 0o644, dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb") as handle:
                    for chunk in chunks:
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
                if exclusive:
                    try:
                        os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                    except FileExistsError:
                        return False
                else:
                    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                os.fsync(dir_fd)
                return True
            finally:
                try:
                    os.unlink(tmp, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
        except OSError as exc:
            raise StoreError(f"{self.url}/{key}: write failed: {exc.strerror}", field="key") from exc
        finally:
            os.close(dir_fd)


def _file_chunks(source: BinaryIO, progress: ProgressCallback | None) -> Iterator[bytes]:
    """Read an open binary file in chunks, closing it at the end and reporting each chunk's size."""
    with source:
        while chunk := source.read(CHUNK_BYTES):
            if progress is not None:
                progress(len(chunk))
            yield chunk
