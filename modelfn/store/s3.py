"""S3 store (``s3://bucket/prefix``) through boto3.

boto3 is imported only when the first request is made, so importing this module stays cheap. boto3
itself honours ``AWS_ENDPOINT_URL`` (tests point it at moto_server, users at MinIO or LocalStack).
Every client is built with bounded connect/read timeouts and a bounded retry budget
(``StoreTimeouts``; botocore's defaults let a stalled endpoint hold a call for ~5 minutes).
Reads are pinned with ``If-Match`` on the ETag seen in the listing (and the version id when known),
so an object replaced between the signature check and the download is refused, not loaded.
Every botocore error becomes a ``StoreError`` naming the bucket, key and what went wrong.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfn.errors import ConfigError, ObjectChanged, ObjectNotFound, StoreError, UnsafeBundleError
from modelfn.store.base import CHUNK_BYTES, ObjectInfo, ProgressCallback, StoreTimeouts, check_key, check_prefix

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

CHECKSUM_ALGORITHM = "SHA256"
MULTIPART_CHUNK_BYTES = 16 * 1024 * 1024
_CONFLICT_RETRIES = 3
_DENIED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "ExpiredToken")


class S3Store:
    """Objects are S3 objects under ``s3://bucket/prefix/``; keys are relative to the prefix."""

    def __init__(
        self, bucket: str, prefix: str = "", client: S3Client | None = None, *, timeouts: StoreTimeouts | None = None
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid S3 bucket name {bucket!r}", field="store_url")
        prefix = prefix.strip("/")
        if prefix:
            try:
                check_key(prefix)
            except UnsafeBundleError as exc:
                raise ConfigError(f"invalid S3 prefix {prefix!r}: {exc.message}", field="store_url") from exc
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"s3://{bucket}/{prefix}"
        self._client = client
        self.timeouts = timeouts

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, {self.prefix!r})"

    @property
    def client(self) -> S3Client:
        """The boto3 client, created on first use (region, credentials and endpoint from the environment)."""
        if self._client is None:
            self._client = new_client(self.timeouts)
        return self._client

    # --- Store protocol -----------------------------------------------------------------------

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object under ``prefix`` with its size and ETag, sorted by key (folder markers skipped)."""
        from botocore.exceptions import BotoCoreError, ClientError

        check_prefix(prefix)
        found: list[ObjectInfo] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    if key and not key.endswith("/"):
                        found.append(ObjectInfo(key, obj["Size"], obj.get("ETag")))
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, prefix, "list") from exc
        return sorted(found, key=lambda info: info.key)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """ListObjectsV2 with ``Delimiter='/'``: the common prefixes only (1,000 per page, no object entries)."""
        from botocore.exceptions import BotoCoreError, ClientError

        check_prefix(prefix)
        start = len(self.prefix + prefix)
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/"
            )
            for page in pages:
                found.extend(p["Prefix"][start:-1] for p in page.get("CommonPrefixes", []))
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, prefix, "list") from exc
        return sorted(name for name in found if name)

    def list_after(self, prefix: str, start_after: str, page_size: int) -> Iterator[ObjectInfo]:
        """ListObjectsV2 with ``StartAfter`` and ``MaxKeys=page_size``; the next page is asked for only when read."""
        from botocore.exceptions import BotoCoreError, ClientError

        check_prefix(prefix)
        check_prefix(start_after)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=self.prefix + prefix,
                StartAfter=self.prefix + start_after,
                PaginationConfig={"PageSize": page_size},
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    if key and not key.endswith("/"):
                        yield ObjectInfo(key, obj["Size"], obj.get("ETag"))
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, prefix, "list") from exc

    def read(self, key: str, *, pin: ObjectInfo | None = None) -> Iterator[bytes]:
        """GetObject now (``If-Match`` the pinned ETag, ``VersionId`` when pinned) and stream the body."""
        from botocore.exceptions import BotoCoreError, ClientError

        check_key(key)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + key}
        if pin is not None and pin.etag:
            args["IfMatch"] = pin.etag
        if pin is not None and pin.version_id:
            args["VersionId"] = pin.version_id
        try:
            response = self.client.get_object(**args)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "read") from exc
        body = response["Body"]
        if pin is not None and response.get("ContentLength") != pin.size:
            body.close()
            raise ObjectChanged(f"{self._where(key)} changed since it was listed (size differs)", field="key")
        return self._stream(body, key)

    def write_file(self, key: str, path: Path, *, progress: ProgressCallback | None = None) -> None:
        """Upload with S3's managed transfer (multipart when large), SHA-256 checksums and a progress callback."""
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        check_key(key)
        if not Path(path).is_file():
            raise StoreError(f"cannot upload {path}: not a readable file", field="path")
        config = TransferConfig(multipart_threshold=MULTIPART_CHUNK_BYTES, multipart_chunksize=MULTIPART_CHUNK_BYTES)
        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                self.prefix + key,
                ExtraArgs={"ChecksumAlgorithm": CHECKSUM_ALGORITHM},
                Callback=progress,
                Config=config,
            )
        except S3UploadFailedError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, BotoCoreError | ClientError):
                raise self._error(cause, key, "upload") from exc
            raise StoreError(f"cannot upload {path} to {self._where(key)}: {exc}", field="key") from exc
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "upload") from exc
        except OSError as exc:
            raise StoreError(f"cannot upload {path}: {exc.strerror}", field="path") from exc

    def delete(self, key: str) -> None:
        """DeleteObject (S3 answers success for a missing key too)."""
        from botocore.exceptions import BotoCoreError, ClientError

        check_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "delete") from exc

    def write_bytes(self, key: str, data: bytes, *, if_none_match: bool = False) -> bool:
        """PutObject (SHA-256 checksum); with ``if_none_match`` send ``If-None-Match: *`` and map 412 to False."""
        from botocore.exceptions import BotoCoreError, ClientError

        check_key(key)
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.prefix + key,
            "Body": data,
            "ChecksumAlgorithm": CHECKSUM_ALGORITHM,
        }
        if if_none_match:
            args["IfNoneMatch"] = "*"
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self.client.put_object(**args)
                return True
            except ClientError as exc:
                code = _code(exc)
                if if_none_match and (code == "PreconditionFailed" or _status(exc) == 412):
                    return False
                if code == "ConditionalRequestConflict" and attempt + 1 < _CONFLICT_RETRIES:
                    # Another conditional write of the same key is in flight: S3 asks us to retry.
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise self._error(exc, key, "write") from exc
            except BotoCoreError as exc:
                raise self._error(exc, key, "write") from exc
        raise StoreError(f"cannot write {self._where(key)}: conflicting concurrent writes", field="key")

    # --- helpers --------------------------------------------------------------------------------

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _stream(self, body: StreamingBody, key: str) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        except BotoCoreError as exc:
            raise StoreError(f"reading {self._where(key)} failed mid-stream: {exc}", field="key") from exc
        finally:
            body.close()

    def _error(self, exc: Exception, key: str, action: str) -> StoreError:
        """One clear, typed error for a botocore failure (the cause stays chained for logs)."""
        from botocore.exceptions import ClientError

        where = self._where(key)
        if not isinstance(exc, ClientError):
            return StoreError(f"cannot {action} {where}: {exc}", field="key")
        code, status = _code(exc), _status(exc)
        if code == "NoSuchBucket":
            return StoreError(f"cannot {action} {where}: bucket {self.bucket!r} does not exist", field="store_url")
        if code in ("NoSuchKey", "NotFound") or status == 404:
            return ObjectNotFound(f"{where} does not exist", field="key")
        if code in ("PreconditionFailed", "NoSuchVersion") or status == 412:
            return ObjectChanged(
                f"{where} changed since it was listed (ETag or version no longer matches)", field="key"
            )
        if code in _DENIED or status == 403:
            return StoreError(
                f"cannot {action} {where}: access denied ({code}); check credentials and bucket policy", field="key"
            )
        message = str(exc.response.get("Error", {}).get("Message", "")).strip()
        return StoreError(f"cannot {action} {where}: {code or status} {message}".rstrip(), field="key")


def new_client(timeouts: StoreTimeouts | None = None) -> S3Client:
    """A boto3 S3 client whose every call is bounded: connect/read timeouts and ``standard`` retries.

    Without ``timeouts``, the bounds come from the settings (``MODELFN_STORE_*`` or the settings file).
    """
    import boto3
    from botocore.config import Config

    if timeouts is None:
        from modelfn.config import Settings

        timeouts = StoreTimeouts.from_settings(Settings.load())
    config = Config(
        connect_timeout=timeouts.connect_s,
        read_timeout=timeouts.read_s,
        retries={"mode": "standard", "total_max_attempts": timeouts.max_attempts},
    )
    return boto3.client("s3", config=config)


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: Any) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None
