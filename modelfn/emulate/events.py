"""Realistic Lambda events for every trigger modelfn handles, without Docker or a cloud account.

The shapes are those ``sam local generate-event`` writes (``s3 put``, ``sqs receive-message``,
``apigateway http-api-proxy``) and the S3 "Object Created" event EventBridge delivers. In bucket
notifications (direct or via SQS) object keys are URL-encoded as S3 encodes them (``quote_plus``:
a space becomes ``+``); EventBridge carries them as they are. ``lookup`` reads an object's real
size, ETag and version id, which the storage handler pins its read to (a stale ETag is skipped as
superseded, as on Lambda). The HTTP event is ``modelfn.invoke.http_api_event``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote_plus

from modelfn.errors import InvalidRequest, ObjectNotFound, StoreError

Source = Literal["s3", "sqs", "eventbridge", "http"]
SOURCES: tuple[Source, ...] = ("s3", "sqs", "eventbridge", "http")
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_ETAG = "0123456789abcdef0123456789abcdef"


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """An object an event announces: its (unencoded) key and what S3 reports about it."""

    key: str
    size: int = 1024
    etag: str = DEFAULT_ETAG
    version_id: str | None = None


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _check(bucket: str, objects: Sequence[StoredObject]) -> None:
    if not bucket:
        raise InvalidRequest("a storage event needs a bucket name", field="bucket")
    if not objects or any(not obj.key for obj in objects):
        raise InvalidRequest("a storage event needs at least one non-empty object key", field="key")


def lookup(bucket: str, keys: Sequence[str]) -> list[StoredObject]:
    """Each object's size, ETag and version id from S3 (HeadObject; honours ``AWS_ENDPOINT_URL``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from modelfn.store.s3 import S3Store

    client = S3Store(bucket).client
    found = []
    for key in keys:
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ObjectNotFound(f"s3://{bucket}/{key} does not exist", field="key") from exc
            raise StoreError(f"cannot read s3://{bucket}/{key}: {exc}", field="key") from exc
        except BotoCoreError as exc:
            raise StoreError(f"cannot reach S3 for s3://{bucket}/{key}: {exc}", field="key") from exc
        etag = str(head.get("ETag", "")).strip('"') or DEFAULT_ETAG
        found.append(StoredObject(key, int(head["ContentLength"]), etag, head.get("VersionId")))
    return found


def s3_record(bucket: str, obj: StoredObject, *, region: str = DEFAULT_REGION) -> dict[str, Any]:
    """One ``Records[]`` entry of an S3 ``ObjectCreated:Put`` notification."""
    s3_object: dict[str, Any] = {"key": quote_plus(obj.key, safe="/"), "size": obj.size, "eTag": obj.etag}
    if obj.version_id:
        s3_object["versionId"] = obj.version_id
    s3_object["sequencer"] = "0A1B2C3D4E5F678901"
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": _iso_now(),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": "EXAMPLE123456789",
            "x-amz-id-2": "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "modelfn-local",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": s3_object,
        },
    }


def s3_event(bucket: str, objects: Sequence[StoredObject], *, region: str = DEFAULT_REGION) -> dict[str, Any]:
    """An S3 bucket notification sent straight to Lambda: one record per object."""
    _check(bucket, objects)
    return {"Records": [s3_record(bucket, obj, region=region) for obj in objects]}


def sqs_event(
    bucket: str,
    objects: Sequence[StoredObject],
    *,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
    queue: str = "modelfn-storage",
) -> dict[str, Any]:
    """S3 notifications delivered through SQS: one message per object, each body an S3 event of one record."""
    _check(bucket, objects)
    now_ms = str(int(time.time() * 1000))
    records = []
    for obj in objects:
        body = json.dumps(s3_event(bucket, [obj], region=region))
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"AQEB{uuid.uuid4().hex}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "AIDAJHIPRHEMV73VRJEBU",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{region}:{account}:{queue}",
                "awsRegion": region,
            }
        )
    return {"Records": records}


def eventbridge_event(
    bucket: str, obj: StoredObject, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT
) -> dict[str, Any]:
    """The "Object Created" event S3 sends to EventBridge (one object per event)."""
    _check(bucket, [obj])
    detail_object: dict[str, Any] = {"key": obj.key, "size": obj.size, "etag": obj.etag}
    if obj.version_id:
        detail_object["version-id"] = obj.version_id
    detail_object["sequencer"] = "617f08299329d189"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": detail_object,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }


def http_event(body: bytes, *, path: str = "/predict", method: str = "POST") -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2.0) request, as ``modelfn invoke --data`` sends it."""
    from modelfn.invoke import http_api_event

    return http_api_event(body, path=path, method=method.upper())
