"""Bounded memory: an object many chunks long is scored with a peak RSS that does not grow with its size.

The bound: while one object is scored, resident memory grows by at most ``CHUNK_BOUND`` (up to four
chunks in flight: one parsed ahead, one being parsed, one predicted, one being written; their lines,
arrays and output text, numpy's parser buffers, the threads' allocator arenas) plus, for S3 outputs,
two multipart parts (``PART_BYTES``: the buffer, then the body the SDK sends). The object here is
200 chunks and larger than the bound on both the input and the output side, so holding either whole
would break it. Measured in a fresh subprocess: the load phase's peak is reset
(``/proc/self/clear_refs``) right before scoring, then the kernel's high-water mark (VmHWM, what
``ru_maxrss`` reports) is read after.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelfn.batch.sink import PART_BYTES
from tests.fixtures.bundles import Published

ROWS = 1_000_000
CHUNK_ROWS = 5_000
CHUNK_BOUND = 24 * 1024 * 1024

CHILD = """
import json, sys
from modelfn.batch.job import score_object
from modelfn.batch.sink import output_for
from modelfn.config import Settings
from modelfn.loader import load_bundle
from modelfn.store.registry import store_for

def status(field):
    return 1024 * int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])

bundle = load_bundle(Settings.load())
source, key, output, chunk_rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store, out = store_for(source), output_for(output)
store.list(key), out.exists("warm-up")  # clients are built once per process, not per object: before the reset
rss_before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as reset:
    reset.write("5")  # restart the peak-RSS high-water mark from the current RSS
outcome = score_object(bundle, store, key, out, chunk_rows=chunk_rows)
print(json.dumps({"rss_before": rss_before, "peak": status("VmHWM:"), "rows": outcome.rows,
                  "output_key": outcome.output_key}))
"""


def _big_csv() -> bytes:
    x = np.random.default_rng(3).normal(size=(ROWS, 4)).astype(np.float32)
    buffer = io.BytesIO()
    np.savetxt(buffer, x, delimiter=",", header="a,b,c,d", comments="", fmt="%.6f")
    return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "s3"])
def test_peak_memory_does_not_grow_with_the_object(
    where: str, local_published: Published, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # GIVEN a CSV of 200 chunks, larger than the memory bound, in a local folder or an S3 bucket
    data = _big_csv()
    bound = CHUNK_BOUND + (2 * PART_BYTES if where == "s3" else 0)
    assert len(data) > bound
    if where == "s3":
        import boto3

        bucket = request.getfixturevalue("s3_bucket")
        boto3.client("s3").put_object(Bucket=bucket, Key="in/big.csv", Body=data)
        source, output = f"s3://{bucket}/in", f"s3://{bucket}/out"
    else:
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "big.csv").write_bytes(data)
        source, output = str(tmp_path / "in"), str(tmp_path / "out")
    # WHEN a fresh process loads the model and scores it
    child = subprocess.run(
        [sys.executable, "-c", CHILD, source, "big.csv", output, str(CHUNK_ROWS)],
        env={**os.environ, **local_published.env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.splitlines()[-1])
    # THEN every row was scored, and the peak RSS grew by less than the stated bound
    assert report["rows"] == ROWS
    growth = report["peak"] - report["rss_before"]
    print(f"{where}: input {len(data) / 2**20:.1f} MiB, peak RSS growth {growth / 2**20:.1f} MiB")
    assert growth < bound
