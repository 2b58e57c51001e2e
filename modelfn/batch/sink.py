"""Where batch outputs go: atomic, write-once objects under ``output_url`` (a local path or ``s3://``).

An output becomes visible all at once or not at all, and at most once:

* **S3**: bytes are buffered up to one part (``PART_BYTES``); a small output is one PutObject, a
  larger one a multipart upload whose parts stay invisible until CompleteMultipartUpload. Both send
  ``If-None-Match: *``, and a 412 means another run already wrote this key: the write is dropped
  and reported as "already done". A process killed mid-upload leaves only an incomplete multipart
  upload, which S3 never shows as an object (a bucket lifecycle rule
  ``AbortIncompleteMultipartUpload`` reclaims its parts).
* **Local**: bytes go to a hidden temporary file beside the target, which is hard-linked into
  place (``link(2)`` fails when the name exists, so of two writers exactly one wins) and removed.
  Temporary files left by a killed process are removed by the next write of the same key.

Memory per open S3 output is about two parts (the buffer, then the body the SDK sends), whatever the
object's size; local outputs buffer nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelfn.errors import ConfigError, StoreError
from modelfn.store.base import check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PART_BYTES = 5 * 1024 * 1024
"""Multipart part size: S3's minimum, so the buffer is small; 10,000 parts still allow objects of 50 GiB."""
PARTIAL_PREFIX = ".modelfn-partial-"
_CONFLICT_RETRIES = 3


class Sink(Protocol):
    """One output object being written: bytes in, then commit (visible at once) or abort (nothing)."""

    url: str

    def write(self, data: bytes) -> int:
        """Append bytes; returns how many were taken."""
        ...

    def commit(self) -> bool:
        """Make the object visible; False when the key already existed (nothing was changed)."""
        ...

    def abort(self) -> None:
        """Drop everything written so far; nothing becomes visible."""
        ...


class Output(Protocol):
    """An output location: write-once objects by key."""

    url: str

    def exists(self, key: str) -> bool:
        """True when an object with this key is visible."""
        ...

    def read(self, key: str) -> bytes | None:
        """A small object's bytes (meta/error records), or None when absent."""
        ...

    def open(self, key: str) -> Sink:
        """Start writing ``key``; nothing is visible until ``commit``."""
        ...

    def put(self, key: str, data: bytes) -> bool:
        """Write a small object once; False when it already existed."""
        ...


def output_for(url: str) -> Output:
    """The output location an ``output_url`` names (same URL forms as stores)."""
    from modelfn.store.registry import store_for

    store = store_for(url)
    from modelfn.store.s3 import S3Store

    if isinstance(store, S3Store):
        return S3Output(store)
    from modelfn.store.local import LocalStore

    if isinstance(store, LocalStore):
        return LocalOutput(store.root)
    raise ConfigError(f"output_url {url!r}: only local paths and s3:// are supported", field="output_url")


# --- local ------------------------------------------------------------------------------------


class LocalOutput:
    """Files under ``root``; keys are '/'-separated relative paths (checked like store keys)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def open(self, key: str) -> LocalSink:
        return LocalSink(self._path(key))

    def put(self, key: str, data: bytes) -> bool:
        sink = self.open(key)
        sink.write(data)
        return sink.commit()


class LocalSink:
    """A hidden temporary file, hard-linked to its final name on commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = path.as_uri()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_dead_partials(path)
            self._tmp = path.with_name(f"{PARTIAL_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            self._file = open(self._tmp, "xb")  # closed by commit/abort
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror}", field="output_url") from exc

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def commit(self) -> bool:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            try:
                os.link(self._tmp, self.path)
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            raise StoreError(f"cannot write {self.path}: {exc.strerror}", field="output_url") from exc
        finally:
            self.abort()

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


def _remove_dead_partials(path: Path) -> None:
    """Remove temporary files of this key left by processes that no longer run (killed mid-write)."""
    for partial in path.parent.glob(f"{PARTIAL_PREFIX}{path.name}.*"):
        pid_text = partial.name[len(PARTIAL_PREFIX) + len(path.name) + 1 :].split(".", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- S3 ---------------------------------------------------------------------------------------


class S3Output:
    """Objects under ``s3://bucket/prefix/``, written with ``If-None-Match: *``."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.url = store.url

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.store.client.head_object(Bucket=self.store.bucket, Key=self.store.prefix + check_key(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise self.store._error(exc, key, "check") from exc
        return True

    def read(self, key: str) -> bytes | None:
        from modelfn.errors import ObjectNotFound

        try:
            return b"".join(self.store.read(key))
        except ObjectNotFound:
            return None

    def open(self, key: str) -> S3Sink:
        return S3Sink(self.store.client, self.store.bucket, self.store.prefix + check_key(key), self.store.url + key)

    def put(self, key: str, data: bytes) -> bool:
        return bool(self.store.write_bytes(key, data, if_none_match=True))


class S3Sink:
    """PutObject for small outputs, a multipart upload for large ones; both conditional on absence."""

    def __init__(self, client: S3Client, bucket: str, key: str, url: str) -> None:
        self.client, self.bucket, self.key, self.url = client, bucket, key, url
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> int:
        self._pending.append(bytes(data))
        self._pending_bytes += len(data)
        if self._pending_bytes >= PART_BYTES:
            self._flush_part()
        return len(data)

    def commit(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self._upload_id is None:
                body = self._take()  # taken once: a retried conditional write sends the same bytes
                return self._conditional(
                    lambda: self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body, IfNoneMatch="*")
                )
            if self._pending or not self._parts:
                self._flush_part()
            upload: Any = {"Parts": self._parts}
            done = self._conditional(
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=str(self._upload_id),
                    MultipartUpload=upload,
                    IfNoneMatch="*",
                )  # fmt: skip
            )
            if done:
                self._upload_id = None
            return done
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"cannot write {self.url}: {exc}", field="output_url") from exc
        finally:
            self.abort()

    def abort(self) -> None:
        self._pending, self._pending_bytes = [], 0
        if self._upload_id is not None:
            from botocore.exceptions import BotoCoreError, ClientError

            upload_id, self._upload_id = self._upload_id, None
            with contextlib.suppress(BotoCoreError, ClientError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)

    def _flush_part(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self._upload_id is None:
                self._upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
            number = len(self._parts) + 1
            answer = self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=self._take()
            )
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"cannot upload part of {self.url}: {exc}", field="output_url") from exc
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})

    def _take(self) -> bytes:
        """The buffered bytes as one body; the buffer is released before the upload starts."""
        body = b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        return body

    def _conditional(self, call: Any) -> bool:
        """Run a conditional write: True written, False on 412; retry S3's 409 ConditionalRequestConflict."""
        from botocore.exceptions import ClientError

        for attempt in range(_CONFLICT_RETRIES):
            try:
                call()
                return True
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code == "PreconditionFailed" or status == 412:
                    return False
                if code == "ConditionalRequestConflict" and attempt + 1 < _CONFLICT_RETRIES:
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise
        return False
