"""Generate → invoke for storage triggers: `modelfn event s3|sqs|eventbridge` output runs the storage handler as-is."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import numpy as np
import pytest
from typer.testing import CliRunner

from modelfn.cli import app
from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected

runner = CliRunner()
ROWS = np.arange(12, dtype=np.float32).reshape(3, 4) / 10


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def put_rows(bucket: str, key: str) -> None:
    buffer = io.BytesIO()
    np.save(buffer, ROWS)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def read_npz(bucket: str, key: str) -> dict[str, np.ndarray]:
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with np.load(io.BytesIO(body)) as loaded:
        return dict(loaded)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["s3", "sqs", "eventbridge"])
def test_generated_storage_event_scores_the_object(
    source: str, s3_published: Published, s3_bucket: str, tmp_path: Path
) -> None:
    # GIVEN an input object in the bucket (moto_server) and the model published in the same bucket
    key = f"incoming/{source} rows.npy"
    put_rows(s3_bucket, key)
    # WHEN `modelfn event SOURCE --lookup` describes it and `modelfn invoke --event` replays the event
    event_file = tmp_path / "event.json"
    run("event", source, "--bucket", s3_bucket, "--key", key, "--lookup", "--out", str(event_file))
    out = run("invoke", "--event", str(event_file), "--store", s3_published.settings.store_url,
              "--model", s3_published.name, "--trust", s3_published.settings.trusted_keys[0],
              "--output", f"s3://{s3_bucket}/results")  # fmt: skip
    # THEN the storage handler scored it and wrote the predictions under the output prefix
    response = json.loads(out)
    if source == "sqs":
        assert response == {"batchItemFailures": []}
    else:
        [result] = response["results"]
        assert result["rows"] == 3 and result["output"].startswith(f"s3://{s3_bucket}/results/")
    written = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="results/")["Contents"]
    [output] = [obj["Key"] for obj in written if obj["Key"].endswith(".npz")]
    np.testing.assert_allclose(read_npz(s3_bucket, output)["y"], tiny_onnx_expected(ROWS), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_lookup_of_a_missing_object_exits_2_naming_it(s3_bucket: str) -> None:
    result = runner.invoke(app, ["event", "s3", "--bucket", s3_bucket, "--key", "absent.npy", "--lookup"])
    assert result.exit_code == 2 and f"s3://{s3_bucket}/absent.npy does not exist" in result.output
