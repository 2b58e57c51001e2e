"""SECURITY.md rule 25: a storage-event process killed (SIGKILL) mid-batch leaves no partial objects, and the retry
completes the batch without duplicates. The handler runs in a real subprocess that kills itself at a chosen point."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from modelfn.batch.sink import PART_BYTES
from modelfn.batch.trigger import build_storage_handler
from modelfn.config import Settings
from tests.batch.s3_events import body, csv_rows, keys, put, sqs_of
from tests.fixtures.bundles import Published
from tests.handlers.events import LambdaContext

pytestmark = pytest.mark.slow

BIG_ROWS = 200_000
"""Enough rows for a CSV result over two multipart parts (PART_BYTES each)."""

# Runs the real handler; after the result's first multipart part is uploaded, the process SIGKILLs itself.
CHILD = """
import json, os, signal, sys
from modelfn.batch import sink
from modelfn.batch.trigger import build_storage_handler
from modelfn.config import Settings

upload_part = sink.S3Sink._flush_part
def upload_then_die(self):
    upload_part(self)
    os.kill(os.getpid(), signal.SIGKILL)
sink.S3Sink._flush_part = upload_then_die

handler = build_storage_handler(Settings.load())
print(json.dumps(handler(json.load(open(sys.argv[1])), None)))
"""


def _big_csv() -> bytes:
    x = np.random.default_rng(7).normal(size=(BIG_ROWS, 4)).astype(np.float32)
    out = io.BytesIO()
    np.savetxt(out, x, delimiter=",", header="a,b,c,d", comments="", fmt="%.6f")
    return out.getvalue()


def test_rule_25_killed_mid_batch_leaves_nothing_partial_and_the_retry_completes(
    s3_published: Published, s3_bucket: str, tmp_path: Path
) -> None:
    """SECURITY.md rule 25: killing the process mid-batch and retrying → no partial objects, no duplicates."""
    # GIVEN an SQS batch of a small CSV and one whose result spans several multipart parts
    small = put(s3_bucket, "incoming/small.csv", csv_rows(np.ones((3, 4), dtype=np.float32)))
    big = put(s3_bucket, "incoming/big.csv", _big_csv())
    event = sqs_of(small, big)
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))
    env = {
        **os.environ,
        **s3_published.env,
        "MODELFN_OUTPUT_URL": f"s3://{s3_bucket}/results/",
        "MODELFN_INPUT_URL": f"s3://{s3_bucket}/incoming/",
        "MODELFN_CHUNK_ROWS": "5000",
    }
    # WHEN the handler process is SIGKILLed after uploading the first part of the big result
    child = subprocess.run([sys.executable, "-c", CHILD, str(event_path)], env=env, capture_output=True, timeout=240)
    # THEN the process really died by SIGKILL mid-object: one multipart upload is in flight, unfinished
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    client = boto3.client("s3")
    uploads = client.list_multipart_uploads(Bucket=s3_bucket, Prefix="results/").get("Uploads", [])
    assert [u["Key"].split("/")[2] for u in uploads] == ["big.csv"]
    # AND the small object's result is complete while nothing of the big one is visible
    visible = keys(s3_bucket, "results/")
    assert [k.split("/")[2] for k in visible] == ["small.csv", "small.csv"]  # result + meta
    assert not any("/big.csv/" in k for k in visible)

    # WHEN SQS redelivers the whole batch to a fresh handler
    settings = Settings.load(environ=env)
    answer = build_storage_handler(settings)(event, LambdaContext())
    # THEN both records succeed, the big result is whole, and nothing is duplicated
    assert answer == {"batchItemFailures": []}
    visible_after = keys(s3_bucket, "results/")
    assert set(visible) <= set(visible_after)
    assert sorted(k.split("/")[2] for k in visible_after) == ["big.csv", "big.csv", "small.csv", "small.csv"]
    big_key = next(k for k in visible_after if "/big.csv/" in k and k.endswith(".csv"))
    head: dict[str, Any] = client.head_object(Bucket=s3_bucket, Key=big_key)
    assert head["ContentLength"] > PART_BYTES
    assert "-" in head["ETag"]  # a multipart object
    lines = body(s3_bucket, big_key).decode().splitlines()
    assert len(lines) == BIG_ROWS + 1 and lines[0] == "a,b,c,d,y_0,y_1,y_2"
    assert json.loads(body(s3_bucket, big_key + ".meta.json"))["rows"] == BIG_ROWS
