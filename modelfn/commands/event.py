"""``modelfn event``: print a realistic Lambda event for a trigger, to replay with ``modelfn invoke --event``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from modelfn.commands._options import fail

SOURCE_HELP = "Trigger: s3 (bucket notification), sqs (S3 notifications via SQS), eventbridge (S3 Object Created), http"


def event(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP, metavar="s3|sqs|eventbridge|http")],
    bucket: Annotated[str, typer.Option("--bucket", help="s3/sqs/eventbridge: bucket name")] = "example-bucket",
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="s3/sqs/eventbridge: object key, unencoded; repeat for several records"),
    ] = None,
    size: Annotated[int, typer.Option("--size", min=0, help="s3/sqs/eventbridge: object size in bytes")] = 1024,
    etag: Annotated[
        str, typer.Option("--etag", help="s3/sqs/eventbridge: object ETag")
    ] = "0123456789abcdef0123456789abcdef",
    lookup: Annotated[
        bool,
        typer.Option(
            "--lookup", help="s3/sqs/eventbridge: read size, ETag and version id from S3 (the handler pins them)"
        ),
    ] = False,
    region: Annotated[str, typer.Option("--region", help="AWS region written into the event")] = "us-east-1",
    queue: Annotated[str, typer.Option("--queue", help="sqs: queue name in eventSourceARN")] = "modelfn-storage",
    data: Annotated[str | None, typer.Option("--data", "-d", help="http: JSON body (or @file.json)")] = None,
    path: Annotated[str, typer.Option("--path", help="http: request path")] = "/predict",
    method: Annotated[str, typer.Option("--method", help="http: request method")] = "POST",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the event here instead of stdout")] = None,
) -> None:
    """Print a Lambda event (the shapes `sam local generate-event` writes); replay it with `modelfn invoke --event`."""
    from modelfn.emulate import events
    from modelfn.errors import InvalidRequest, ModelfnError

    keys = key or ["incoming/example.jsonl"]
    try:
        if source in ("s3", "sqs", "eventbridge"):
            if source == "eventbridge" and len(keys) != 1:
                raise InvalidRequest("an EventBridge event carries exactly one object: give one --key", field="key")
            objects = events.lookup(bucket, keys) if lookup else [events.StoredObject(k, size, etag) for k in keys]
        if source == "s3":
            payload = events.s3_event(bucket, objects, region=region)
        elif source == "sqs":
            payload = events.sqs_event(bucket, objects, region=region, queue=queue)
        elif source == "eventbridge":
            payload = events.eventbridge_event(bucket, objects[0], region=region)
        elif source == "http":
            payload = events.http_event(_http_body(data, method), path=path, method=method)
        else:
            raise InvalidRequest(
                f"unknown event source {source!r}; choose one of {', '.join(events.SOURCES)}", field="source"
            )
    except ModelfnError as exc:
        raise fail(exc) from exc
    text = json.dumps(payload, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {source} event -> {out}", err=True)


def _http_body(data: str | None, method: str) -> bytes:
    from modelfn.errors import InvalidRequest

    if data is None:
        if method.upper() in ("GET", "HEAD"):
            return b""
        raise InvalidRequest(f"an http {method.upper()} event needs --data (JSON text or @file.json)", field="data")
    if not data.startswith("@"):
        return data.encode()
    try:
        return Path(data[1:]).read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read --data file {data[1:]}: {exc.strerror}", field="data") from exc
