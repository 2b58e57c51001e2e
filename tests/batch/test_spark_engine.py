"""`modelfn batch --engine spark`: the same signed bundle scores a data set on Spark (local[2]).

One JVM for the module (starting one costs seconds on two cores); the Spark-free parts (the
per-worker cache, the executor function, settings made portable) are checked without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelfn.batch import spark_engine
from modelfn.batch.runner import run_local
from modelfn.batch.spark_engine import loaded, portable_settings, run_spark, score_frames, spark_session
from modelfn.errors import IntegrityError, UnprocessableInput, UntrustedKeyError
from tests.batch.test_runner import FEATURES, csv_bytes, rows
from tests.fixtures.bundles import Published
from tests.fixtures.keys import SigningKey
from tests.fixtures.models import tiny_onnx_expected

PREDICTIONS = ["y_0", "y_1", "y_2"]


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2], UI-less session with few shuffle partitions, shared by every Spark test."""
    session = spark_session(
        "local[2]",
        config={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.memory": "512m",
        },
    )
    yield session
    session.stop()


def _frame(path: Path) -> pd.DataFrame:
    """Every row of a Parquet/CSV file or Spark output folder, ordered by its feature columns."""
    if path.is_dir():
        parts = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".parquet", ".csv"))
        frame = pd.concat([_frame(p) for p in parts], ignore_index=True)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path)
    else:
        frame = pq.read_table(path).to_pandas()
    return frame.sort_values(FEATURES, ignore_index=True)


@pytest.mark.slow
def test_spark_scores_a_parquet_folder_like_the_local_engine_row_for_row(
    spark: Any, tmp_path: Path, local_published: Published
) -> None:
    # GIVEN 3,000 rows in three Parquet files
    data = tmp_path / "data"
    data.mkdir()
    for i, n in enumerate((1200, 1000, 800)):
        x = rows(n, 10 + i)
        pq.write_table(pa.table({name: x[:, j] for j, name in enumerate(FEATURES)}), data / f"part{i}.parquet")

    # WHEN Spark on local[2] scores the folder, in Arrow batches of 250 rows, and the local engine scores it too
    outcome = run_spark(local_published.settings, str(data), str(tmp_path / "spark"), chunk_rows=250, session=spark)
    local = run_local(local_published.settings, str(data), str(tmp_path / "local"))

    # THEN Spark wrote a Parquet dataset with the input columns then the prediction columns
    assert outcome.rows == 3000 and not outcome.already_done and outcome.format == "parquet"
    result = Path(outcome.output)
    assert result.parent == tmp_path / "spark" / "data" and result.name.startswith("tiny-v1-")
    assert (result / "_SUCCESS").is_file()
    assert list(spark.read.parquet(str(result)).columns) == FEATURES + PREDICTIONS
    # AND row for row it equals the local engine's results and the model's own answer
    by_spark = _frame(result)
    by_local = _frame(tmp_path / "local")
    assert local.rows == 3000 and len(by_spark) == 3000
    pd.testing.assert_frame_equal(by_spark, by_local, check_dtype=False, rtol=1e-6, atol=1e-6)
    expected = tiny_onnx_expected(by_spark[FEATURES].to_numpy(np.float32))
    np.testing.assert_allclose(by_spark[PREDICTIONS].to_numpy(), expected, rtol=1e-5, atol=1e-5)

    # WHEN the same input is scored again by the same model
    files_before = sorted(result.rglob("*"))
    again = run_spark(local_published.settings, str(data), str(tmp_path / "spark"), session=spark)

    # THEN the finished result is reported as done and left as it was
    assert again.already_done and again.output == outcome.output
    assert sorted(result.rglob("*")) == files_before


@pytest.mark.slow
def test_spark_reads_and_writes_csv_and_reports_bad_columns_as_a_typed_error(
    spark: Any, tmp_path: Path, local_published: Published
) -> None:
    # GIVEN a CSV file
    source = tmp_path / "input.csv"
    source.write_bytes(csv_bytes(rows(500, 7)))

    # WHEN Spark scores it
    outcome = run_spark(local_published.settings, str(source), str(tmp_path / "out"), session=spark)

    # THEN the result is a CSV dataset with a header and the local engine's predictions
    assert outcome.format == "csv" and outcome.rows == 500
    by_spark = _frame(Path(outcome.output))
    assert list(by_spark.columns) == FEATURES + PREDICTIONS
    run_local(local_published.settings, str(source), str(tmp_path / "local"))
    pd.testing.assert_frame_equal(by_spark, _frame(tmp_path / "local"), check_dtype=False, rtol=1e-6, atol=1e-6)

    # GIVEN a CSV with a column too many for the model's four features
    wide = tmp_path / "wide.csv"
    wide.write_text("f0,f1,f2,f3,f4\n1,2,3,4,5\n")

    # WHEN / THEN the run is refused with the column-mapping error, and no result is committed
    with pytest.raises(UnprocessableInput, match="4 feature columns"):
        run_spark(local_published.settings, str(wide), str(tmp_path / "wide-out"), session=spark)
    assert list((tmp_path / "wide-out").rglob("_SUCCESS")) == []


@pytest.mark.slow
def test_executors_verify_the_bundle_themselves(spark: Any, tmp_path: Path, local_published: Published) -> None:
    # GIVEN a driver that verified and loaded the bundle, then the store's model.onnx changed under it
    bundle = loaded(portable_settings(local_published.settings))
    onnx_file = next(Path(local_published.settings.store_url).rglob("model.onnx"))
    data = bytearray(onnx_file.read_bytes())
    data[-1] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    source = tmp_path / "input.csv"
    source.write_bytes(csv_bytes(rows(100, 11)))

    # WHEN / THEN the executors' own verification refuses it: the job fails with the typed error naming the file
    with pytest.raises(IntegrityError, match="model.onnx"):
        run_spark(local_published.settings, str(source), str(tmp_path / "out"), session=spark, bundle=bundle)
    assert list((tmp_path / "out").rglob("_SUCCESS")) == []


def test_each_worker_verifies_and_loads_the_bundle_once_per_settings(local_published: Published) -> None:
    # GIVEN settings made portable for executors (keys inline, local store path absolute)
    settings = portable_settings(local_published.settings)
    assert all("BEGIN PUBLIC KEY" in key for key in settings.trusted_keys)
    assert Path(settings.store_url).is_absolute()
    spark_engine._LOADED.pop(settings, None)

    # WHEN the executor function maps two pandas batches, twice
    x = rows(20, 8)
    batches = [pd.DataFrame(x[:12], columns=FEATURES), pd.DataFrame(x[12:], columns=FEATURES)]
    first = list(score_frames(settings, iter(batches)))
    bundle = loaded(settings)
    second = list(score_frames(settings, iter(batches)))

    # THEN the bundle was loaded once and every batch gained the model's predictions
    assert loaded(settings) is bundle and spark_engine._LOADED[settings] is bundle
    for out, batch in zip(first, batches, strict=True):
        assert list(out.columns) == FEATURES + PREDICTIONS
        expected = tiny_onnx_expected(batch.to_numpy(np.float32))
        np.testing.assert_allclose(out[PREDICTIONS].to_numpy(), expected, rtol=1e-6)
    pd.testing.assert_frame_equal(pd.concat(first), pd.concat(second))


def test_a_worker_refuses_a_tampered_or_untrusted_bundle(
    local_published: Published, other_signing_key: SigningKey
) -> None:
    # GIVEN the published model's ONNX file with one byte flipped in the store
    settings = portable_settings(local_published.settings)
    spark_engine._LOADED.pop(settings, None)
    onnx_file = next(Path(settings.store_url).rglob("model.onnx"))
    data = bytearray(onnx_file.read_bytes())
    data[-1] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    batch = pd.DataFrame(rows(3, 9), columns=FEATURES)

    # WHEN / THEN the executor function refuses it, naming the file, before scoring anything
    with pytest.raises(IntegrityError, match="model.onnx"):
        next(score_frames(settings, iter([batch])))
    assert settings not in spark_engine._LOADED

    # AND a trust set without the signer refuses it too
    untrusted = portable_settings(local_published.settings.replace(trusted_keys=(str(other_signing_key.public_path),)))
    with pytest.raises(UntrustedKeyError):
        next(score_frames(untrusted, iter([batch])))


def test_only_the_spark_engine_and_build_time_adapters_name_pyspark() -> None:
    import ast

    import modelfn

    # GIVEN every module of the package
    root = Path(modelfn.__file__).parent
    allowed = root / "batch" / "spark_engine.py"

    # WHEN their imports (module level or inside functions) are read
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            build_time = path.relative_to(root).parts[0] == "adapters"
            if any(n == "pyspark" or n.startswith("pyspark.") for n in names) and path != allowed and not build_time:
                offenders.append(f"{path.relative_to(root)}: {names}")

    # THEN no run-time module imports Spark
    assert offenders == []
