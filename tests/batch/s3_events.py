"""Storage events for objects that really exist on moto_server, built from the stored shapes in tests/events/."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any
from urllib.parse import quote_plus

from tests.handlers.events import load_event


def put(bucket: str, key: str, data: bytes) -> dict[str, Any]:
    """Upload ``data`` and return what S3 would announce: key, size, ETag (unquoted) and version id."""
    import boto3

    client = boto3.client("s3")
    answer = client.put_object(Bucket=bucket, Key=key, Body=data)
    return {
        "bucket": bucket,
        "key": key,
        "size": len(data),
        "etag": answer["ETag"].strip('"'),
        "version_id": answer.get("VersionId"),
    }


def s3_event(*objects: dict[str, Any]) -> dict[str, Any]:
    """An S3 ObjectCreated notification announcing ``objects`` (keys URL-encoded as S3 sends them)."""
    event = load_event("s3_object_created")
    template = event["Records"][0]
    records = []
    for obj in objects:
        record = copy.deepcopy(template)
        record["s3"]["bucket"].update(name=obj["bucket"], arn=f"arn:aws:s3:::{obj['bucket']}")
        record["s3"]["object"] = {"key": quote_plus(obj["key"]), "size": obj["size"], "eTag": obj["etag"],
                                  "sequencer": "0A1B2C3D4E5F678901"}  # fmt: skip
        if obj.get("version_id"):
            record["s3"]["object"]["versionId"] = obj["version_id"]
        records.append(record)
    event["Records"] = records
    return event


def sqs_event(*bodies: str) -> dict[str, Any]:
    """An SQS batch with one record per body, each with its own message id."""
    event = load_event("sqs_s3")
    template = event["Records"][0]
    event["Records"] = [{**copy.deepcopy(template), "messageId": str(uuid.uuid4()), "body": body} for body in bodies]
    return event


def sqs_of(*objects: dict[str, Any]) -> dict[str, Any]:
    """An SQS batch whose records each carry the S3 notification of one object."""
    return sqs_event(*(json.dumps(s3_event(obj)) for obj in objects))


def eventbridge_event(obj: dict[str, Any]) -> dict[str, Any]:
    """An EventBridge ``Object Created`` event for ``obj``."""
    event = load_event("eventbridge_object_created")
    event["resources"] = [f"arn:aws:s3:::{obj['bucket']}"]
    event["detail"]["bucket"]["name"] = obj["bucket"]
    event["detail"]["object"].update(key=quote_plus(obj["key"]), size=obj["size"], etag=obj["etag"])
    if obj.get("version_id"):
        event["detail"]["object"]["version-id"] = obj["version_id"]
    else:
        event["detail"]["object"].pop("version-id")
    return event


def keys(bucket: str, prefix: str) -> list[str]:
    """Every visible object key under ``prefix``."""
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def body(bucket: str, key: str) -> bytes:
    import boto3

    data: bytes = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def csv_rows(x: Any, header: str = "a,b,c,d") -> bytes:
    """A CSV with ``header`` and one line per row of ``x``."""
    lines = [header, *(",".join(repr(float(v)) for v in row) for row in x.tolist())]
    return ("\n".join(lines) + "\n").encode()
