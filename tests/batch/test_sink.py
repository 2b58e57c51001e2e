"""Write-once, all-or-nothing outputs: S3 PutObject / multipart with If-None-Match on moto_server, local link(2),
and a local writer killed mid-object (SIGKILL) leaving nothing visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest

from modelfn.batch.sink import PART_BYTES, PARTIAL_PREFIX, LocalOutput, output_for
from modelfn.errors import ConfigError

BIG = bytes(range(256)) * (PART_BYTES // 256) + b"tail" * 1000
"""One full part and a bit: a two-part multipart upload."""


@pytest.mark.slow
def test_s3_multipart_output_appears_once_and_a_second_writer_gets_412(s3_bucket: str) -> None:
    # GIVEN an S3 output location and a result larger than one part
    out = output_for(f"s3://{s3_bucket}/results")
    client = boto3.client("s3")
    first = out.open("k/result.csv")
    first.write(BIG[: PART_BYTES + 10])  # the first part is uploaded now
    # THEN nothing is visible while the upload is open
    assert not out.exists("k/result.csv")
    assert len(client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])) == 1
    first.write(BIG[PART_BYTES + 10 :])
    # WHEN it commits, and a second writer of the same key commits different bytes afterwards
    assert first.commit() is True
    second = out.open("k/result.csv")
    second.write(b"other" * (PART_BYTES // 4))
    assert second.commit() is False
    # THEN the first object stands unchanged, it is a multipart object, and no upload is left open
    head = client.head_object(Bucket=s3_bucket, Key="results/k/result.csv")
    assert "-2" in head["ETag"]
    assert client.get_object(Bucket=s3_bucket, Key="results/k/result.csv")["Body"].read() == BIG
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


@pytest.mark.slow
def test_s3_small_output_is_one_conditional_put_and_abort_leaves_nothing(s3_bucket: str) -> None:
    out = output_for(f"s3://{s3_bucket}/results/")
    sink = out.open("a.json")
    sink.write(b"{}")
    sink.abort()
    assert not out.exists("a.json")
    assert out.put("a.json", b"1") is True
    assert out.put("a.json", b"2") is False
    assert out.read("a.json") == b"1"
    assert out.read("missing.json") is None


def test_local_concurrent_writers_of_one_key_one_wins(tmp_path: Path) -> None:
    # GIVEN eight threads writing different bytes to the same key
    out = LocalOutput(tmp_path)
    outcomes: dict[int, bool] = {}

    def write(i: int) -> None:
        sink = out.open("x/result.csv")
        sink.write(str(i).encode() * 1000)
        outcomes[i] = sink.commit()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly one commit succeeded, its bytes are the file, and no temporary file is left
    (winner,) = [i for i, won in outcomes.items() if won]
    assert (tmp_path / "x" / "result.csv").read_bytes() == str(winner).encode() * 1000
    assert os.listdir(tmp_path / "x") == ["result.csv"]


KILLED_WRITER = """
import os, signal, sys
from modelfn.batch.sink import LocalOutput
sink = LocalOutput(sys.argv[1]).open("k/result.csv")
sink.write(b"half of a result\\n" * 1000)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_local_writer_killed_mid_object_leaves_nothing_visible_and_the_retry_cleans_up(tmp_path: Path) -> None:
    # GIVEN a real process killed (SIGKILL) halfway through writing an output
    child = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], capture_output=True, timeout=60)
    assert child.returncode == -signal.SIGKILL
    # THEN only its hidden temporary file exists: no result is visible
    leftovers = os.listdir(tmp_path / "k")
    assert len(leftovers) == 1 and leftovers[0].startswith(PARTIAL_PREFIX)
    out = LocalOutput(tmp_path)
    assert not out.exists("k/result.csv")
    # WHEN the retry writes the same key
    sink = out.open("k/result.csv")
    sink.write(b"whole")
    assert sink.commit()
    # THEN the dead writer's temporary file is gone and the complete result is the only file
    assert os.listdir(tmp_path / "k") == ["result.csv"]
    assert (tmp_path / "k" / "result.csv").read_bytes() == b"whole"


def test_unsupported_output_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="scheme"):
        output_for("gs://bucket/out")
