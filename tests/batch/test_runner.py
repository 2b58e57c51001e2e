"""`modelfn batch` on the local engine: walking files, folders and S3 prefixes, failures, re-runs."""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelfn.batch.runner import check_output_outside, run_local, walk_input
from modelfn.errors import ConfigError, ObjectNotFound, UntrustedKeyError
from tests.fixtures.bundles import Published
from tests.fixtures.keys import SigningKey
from tests.fixtures.models import tiny_onnx_expected

FEATURES = ["f0", "f1", "f2", "f3"]


def rows(n: int, seed: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def csv_bytes(x: npt.NDArray[np.float32]) -> bytes:
    lines = [",".join(FEATURES)] + [",".join(repr(float(v)) for v in row) for row in x]
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(x: npt.NDArray[np.float32]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({name: x[:, j] for j, name in enumerate(FEATURES)}), sink)
    return sink.getvalue()


def predictions(table: pa.Table) -> npt.NDArray[np.float64]:
    return np.column_stack([table.column(f"y_{j}").to_numpy() for j in range(3)]).astype(np.float64)


def features(table: pa.Table) -> npt.NDArray[np.float32]:
    return np.column_stack([table.column(name).to_numpy() for name in FEATURES]).astype(np.float32)


def results(out: Path) -> dict[str, pa.Table]:
    """Every result file under ``out`` by its input key, read back as a table."""
    from pyarrow import csv

    found = {}
    for path in sorted(out.rglob("tiny-v1-*")):
        if path.name.endswith(".json"):
            continue
        key = str(path.parent.relative_to(out))
        found[key] = pq.read_table(path) if path.suffix == ".parquet" else csv.read_csv(path)
    return found


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    """A folder of two CSV objects (one nested), one Parquet object, a text file and hidden/marker files."""
    folder = tmp_path / "in"
    (folder / "day=2").mkdir(parents=True)
    (folder / "a.csv").write_bytes(csv_bytes(rows(50, 1)))
    (folder / "day=2" / "b.csv").write_bytes(csv_bytes(rows(30, 2)))
    (folder / "c.parquet").write_bytes(parquet_bytes(rows(70, 3)))
    (folder / "notes.txt").write_text("not data\n")
    (folder / ".hidden.csv").write_bytes(csv_bytes(rows(5, 4)))
    (folder / "_SUCCESS").write_bytes(b"")
    return folder


def test_a_folder_is_scored_object_by_object_and_a_rerun_writes_nothing(
    data_folder: Path, tmp_path: Path, local_published: Published
) -> None:
    # GIVEN a folder of CSV and Parquet objects beside files no format reads
    out = tmp_path / "out"

    # WHEN the local engine scores it
    summary = run_local(local_published.settings, str(data_folder), str(out), chunk_rows=16)

    # THEN each data object has its result under its own key, predictions equal to the model's
    assert summary.ok and summary.rows == 150
    assert sorted(summary.skipped) == [".hidden.csv", "_SUCCESS", "notes.txt"]
    tables = results(out)
    assert sorted(tables) == ["a.csv", "c.parquet", "day=2/b.csv"]
    for table in tables.values():
        np.testing.assert_allclose(predictions(table), tiny_onnx_expected(features(table)), rtol=1e-5, atol=1e-5)
    assert "3 scored, 0 failed, 3 skipped: 150 rows" in summary.line()

    # WHEN it runs again on the same input and model
    files_before = sorted(p.relative_to(out) for p in out.rglob("*"))
    again = run_local(local_published.settings, str(data_folder), str(out))

    # THEN every object is reported as already done, with its rows, and nothing new is written
    assert [o.already_done for o in again.outcomes] == [True, True, True] and again.rows == 150
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == files_before
    assert "(3 already done)" in again.line()


def test_a_bad_object_is_listed_and_the_others_are_still_scored(
    data_folder: Path, tmp_path: Path, local_published: Published
) -> None:
    # GIVEN a folder where one CSV has three feature columns instead of four
    (data_folder / "bad.csv").write_text("f0,f1,f2\n1,2,3\n")
    out = tmp_path / "out"

    # WHEN the local engine scores it (with the progress bar on)
    summary = run_local(local_published.settings, str(data_folder), str(out), progress=True)

    # THEN exactly that object failed, naming the problem, and the other three were written
    assert [(f.key, f.code) for f in summary.failures] == [("bad.csv", "unprocessable_input")]
    assert "4 feature columns" in summary.failures[0].message
    assert not summary.ok and len(summary.outcomes) == 3 and summary.rows == 150
    assert "1 failed" in summary.line()
    assert sorted(results(out)) == ["a.csv", "c.parquet", "day=2/b.csv"]
    assert len(list((out / "bad.csv").glob("*.error.json"))) == 1


def test_a_single_file_is_its_own_key(data_folder: Path, tmp_path: Path, local_published: Published) -> None:
    # GIVEN one file named directly (file:// URL)
    out = tmp_path / "out"

    # WHEN it is scored
    summary = run_local(local_published.settings, (data_folder / "c.parquet").as_uri(), str(out))

    # THEN only it is scored, under its file name
    assert summary.rows == 70 and sorted(results(out)) == ["c.parquet"]


def test_an_untrusted_bundle_is_refused_before_any_input_is_read(
    data_folder: Path, tmp_path: Path, local_published: Published, other_signing_key: SigningKey
) -> None:
    # GIVEN settings that trust only another key
    settings = local_published.settings.replace(trusted_keys=(str(other_signing_key.public_path),))
    out = tmp_path / "out"

    # WHEN / THEN the run is refused and nothing is written
    with pytest.raises(UntrustedKeyError):
        run_local(settings, str(data_folder), str(out))
    assert not out.exists() or list(out.rglob("*")) == []


def test_an_output_inside_the_input_or_an_empty_input_is_refused(data_folder: Path, tmp_path: Path) -> None:
    # GIVEN an output folder below the input folder / an input folder with nothing to score
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("hello\n")

    # WHEN / THEN both are refused with errors naming the argument
    with pytest.raises(ConfigError, match="inside input") as inside:
        check_output_outside(str(data_folder), str(data_folder / "scored"))
    assert inside.value.field == "output"
    check_output_outside(str(data_folder), str(tmp_path / "in-scored"))  # a sibling sharing a name prefix is fine
    with pytest.raises(ConfigError, match="inside input"):
        check_output_outside("s3://bucket/data", "s3://bucket/data/out")
    check_output_outside("s3://bucket/data", "s3://other/data/out")
    with pytest.raises(ObjectNotFound, match="nothing to score"):
        walk_input(str(empty))
    with pytest.raises(ObjectNotFound, match="neither a file nor a folder"):
        walk_input(str(tmp_path / "absent"))


def test_an_s3_prefix_and_a_single_s3_object_are_scored_into_s3(s3_bucket: str, s3_published: Published) -> None:
    # GIVEN CSV and Parquet objects under a prefix of a bucket on the S3 emulator
    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="data/x.csv", Body=csv_bytes(rows(40, 5)))
    s3.put_object(Bucket=s3_bucket, Key="data/y.parquet", Body=parquet_bytes(rows(25, 6)))
    s3.put_object(Bucket=s3_bucket, Key="data/x.csv.bak", Body=b"old")

    # WHEN the prefix is scored into another prefix
    summary = run_local(s3_published.settings, f"s3://{s3_bucket}/data", f"s3://{s3_bucket}/scored")

    # THEN both objects have results with the model's predictions, and the unknown extension was skipped
    assert summary.ok and summary.rows == 65 and summary.skipped == ["x.csv.bak"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="scored/")["Contents"]]
    result = next(k for k in keys if k.startswith("scored/y.parquet/tiny-v1-") and k.endswith(".parquet"))
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=s3_bucket, Key=result)["Body"].read()))
    np.testing.assert_allclose(predictions(table), tiny_onnx_expected(features(table)), rtol=1e-5, atol=1e-5)

    # WHEN one object is named by its full URL
    one = run_local(s3_published.settings, f"s3://{s3_bucket}/data/x.csv", f"s3://{s3_bucket}/one")

    # THEN only that object is scored, keyed by its name
    assert one.rows == 40 and [o.output_key.split("/")[0] for o in one.outcomes] == ["x.csv"]
