"""Storage event shapes → the objects they announce, read through Powertools' typed event classes.

Three deliveries of "an object was created" are understood, each with a cheap predicate (first
match wins, as Mangum dispatches HTTP sources):

* ``s3``: an S3 event notification invoking the function directly (``Records[].eventSource = aws:s3``);
* ``sqs``: SQS records whose body is such a notification (directly, or in the ``Message`` of an SNS
  envelope when S3 → SNS → SQS fans out), or S3's ``s3:TestEvent`` (acknowledged, ignored);
* ``eventbridge``: an EventBridge ``Object Created`` event from ``aws.s3``.

Keys arrive URL-encoded (``+`` for spaces) in both notification shapes and are decoded here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import unquote_plus

from modelfn.errors import InvalidRequest

Source = Literal["s3", "sqs", "eventbridge"]
SOURCES: tuple[Source, ...] = ("s3", "sqs", "eventbridge")
TEST_EVENT = "s3:TestEvent"


@dataclasses.dataclass(frozen=True)
class CreatedObject:
    """One new object, as the event saw it (ETag / version id / size pin the read)."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None

    @property
    def url(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"


def event_source(event: Mapping[str, Any]) -> Source | None:
    """Which storage delivery ``event`` is, or None when it is none of them."""
    if not isinstance(event, Mapping):
        return None
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        first = records[0]
        if first.get("eventSource") == "aws:s3":
            return "s3"
        if first.get("eventSource") == "aws:sqs" and _carries_s3(first.get("body")):
            return "sqs"
        return None
    if event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
        return "eventbridge"
    return None


def s3_notification_objects(event: Mapping[str, Any]) -> list[CreatedObject]:
    """Objects announced by an S3 notification's ``ObjectCreated:*`` records (other records are skipped)."""
    from aws_lambda_powertools.utilities.data_classes import S3Event

    created: list[CreatedObject] = []
    try:
        for record in S3Event(dict(event)).records:
            if not record.event_name.startswith("ObjectCreated:"):
                continue
            obj = record.s3.get_object
            key = unquote_plus(obj.key)  # per-record keys are not decoded by Powertools (only S3Event.object_key)
            created.append(CreatedObject(record.s3.bucket.name, key, obj.get("size"), obj.etag or None, obj.version_id))
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidRequest(f"malformed S3 notification: missing {exc}", field="Records") from exc
    return created


def sqs_body_objects(body: str) -> list[CreatedObject]:
    """Objects in one SQS message body: an S3 notification, or none for ``s3:TestEvent``."""
    import orjson

    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"SQS message body is not JSON: {exc.msg}", field="body") from exc
    message = payload.get("Message") if isinstance(payload, Mapping) and payload.get("Type") == "Notification" else None
    if isinstance(message, str):  # S3 → SNS → SQS without raw message delivery: the notification is the Message
        try:
            payload = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"the SNS Message in the SQS body is not JSON: {exc.msg}", field="body") from exc
    if isinstance(payload, Mapping) and payload.get("Event") == TEST_EVENT:
        return []
    if event_source(payload) != "s3":
        raise InvalidRequest("SQS message body is not an S3 event notification", field="body")
    return s3_notification_objects(payload)


def eventbridge_object(event: Mapping[str, Any]) -> CreatedObject:
    """The object of an EventBridge ``Object Created`` event."""
    from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent

    try:
        detail = S3EventBridgeNotificationEvent(dict(event)).detail
        obj = detail.object
        return CreatedObject(detail.bucket.name, obj.key, obj.size, obj.etag or None, obj.get("version-id"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidRequest(f"malformed EventBridge Object Created event: missing {exc}", field="detail") from exc


def _carries_s3(body: Any) -> bool:
    """True when an SQS body holds an S3 notification or S3's test event (checked without full parsing)."""
    return isinstance(body, str) and ("aws:s3" in body or TEST_EVENT in body)
