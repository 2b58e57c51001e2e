"""``score_object`` on local files: every format, chunking, idempotency keys and data errors."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfn.batch.job import score_object
from modelfn.errors import InvalidRequest, PayloadTooLarge, UnprocessableInput, UnsupportedMediaType
from modelfn.loader import LoadedBundle
from modelfn.store.local import LocalStore
from tests.batch.s3_events import csv_rows
from tests.fixtures.models import tiny_onnx_expected

X = (np.arange(28, dtype=np.float32).reshape(7, 4) - 9) / 4


@pytest.fixture
def inputs(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "in")


def _write(store: LocalStore, key: str, data: bytes) -> None:
    path = store.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_csv_gets_prediction_columns_and_keeps_its_own(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    # GIVEN a CSV of four feature columns for the tiny model's single input x [-1, 4]
    _write(inputs, "in.csv", csv_rows(X))
    # WHEN it is scored in chunks of 3 rows
    outcome = score_object(tiny, inputs, "in.csv", str(tmp_path / "out"), chunk_rows=3)
    # THEN every input line is kept byte for byte with the predictions appended
    text = (tmp_path / "out" / outcome.output_key).read_text().splitlines()
    source = csv_rows(X).decode().splitlines()
    assert text[0] == source[0] + ",y_0,y_1,y_2"
    assert [line.rsplit(",", 3)[0] for line in text[1:]] == source[1:]
    got = np.array([[float(v) for v in line.split(",")[4:]] for line in text[1:]], dtype=np.float32)
    np.testing.assert_allclose(got, tiny_onnx_expected(X), rtol=1e-6, atol=1e-6)
    assert outcome.rows == 7 and outcome.format == "csv" and not outcome.already_done


def test_chunk_size_does_not_change_the_bytes(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    _write(inputs, "in.csv", csv_rows(X))
    small = score_object(tiny, inputs, "in.csv", str(tmp_path / "a"), chunk_rows=2)
    large = score_object(tiny, inputs, "in.csv", str(tmp_path / "b"), chunk_rows=1000)
    assert small.output_key == large.output_key
    assert (tmp_path / "a" / small.output_key).read_bytes() == (tmp_path / "b" / large.output_key).read_bytes()


def test_classifier_csv_gets_a_label_and_one_column_per_class(
    classifier: LoadedBundle, sklearn_classifier: tuple[Any, Any], inputs: LocalStore, tmp_path: Path
) -> None:
    # GIVEN iris rows as CSV
    model, x = sklearn_classifier
    _write(inputs, "iris.csv", csv_rows(x, header="sepal_length,sepal_width,petal_length,petal_width"))
    # WHEN scored
    outcome = score_object(classifier, inputs, "iris.csv", str(tmp_path / "out"), chunk_rows=5)
    # THEN the label column agrees with scikit-learn and the probabilities are named per class
    lines = (tmp_path / "out" / outcome.output_key).read_text().splitlines()
    header = lines[0].split(",")
    assert header[4:] == ["label", "probabilities_0", "probabilities_1", "probabilities_2"]
    labels = [int(line.split(",")[4]) for line in lines[1:]]
    assert labels == model.predict(x).tolist()


def test_jsonl_lines_keep_their_keys(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    lines = b"".join(json.dumps({"id": f"r{i}", "x": row}).encode() + b"\n" for i, row in enumerate(X.tolist()))
    _write(inputs, "rows.jsonl", lines + b"\n")  # a trailing blank line is not a row
    outcome = score_object(tiny, inputs, "rows.jsonl", str(tmp_path / "out"), chunk_rows=3)
    records = [json.loads(line) for line in (tmp_path / "out" / outcome.output_key).read_text().splitlines()]
    assert [r["id"] for r in records] == [f"r{i}" for i in range(7)]
    np.testing.assert_allclose([r["y"] for r in records], tiny_onnx_expected(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "document",
    [
        {"instances": X.tolist()},
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [7, 4], "data": X.reshape(-1).tolist()}]},
    ],
    ids=["instances", "v2"],
)
def test_json_gets_a_v2_response(
    document: dict[str, Any], tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path
) -> None:
    _write(inputs, "req.json", json.dumps(document).encode())
    outcome = score_object(tiny, inputs, "req.json", str(tmp_path / "out"), chunk_rows=3)
    response = json.loads((tmp_path / "out" / outcome.output_key).read_bytes())
    assert response["model_name"] == "tiny" and response["model_version"] == "1"
    (y,) = response["outputs"]
    assert y["name"] == "y" and y["datatype"] == "FP32" and y["shape"] == [7, 3]
    np.testing.assert_allclose(np.reshape(y["data"], (7, 3)), tiny_onnx_expected(X), rtol=1e-6, atol=1e-6)


def test_npy_gets_an_npz_of_outputs(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, X)
    _write(inputs, "x.npy", buffer.getvalue())
    outcome = score_object(tiny, inputs, "x.npy", str(tmp_path / "out"), chunk_rows=3)
    assert outcome.output_key.endswith(".npz")
    with np.load(tmp_path / "out" / outcome.output_key) as archive:
        assert archive.files == ["y"]
        np.testing.assert_allclose(archive["y"], tiny_onnx_expected(X), rtol=1e-6, atol=1e-6)


def test_npy_object_arrays_are_refused_unread(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    _write(inputs, "p.npy", buffer.getvalue())
    with pytest.raises(UnprocessableInput, match="unpickle"):
        score_object(tiny, inputs, "p.npy", str(tmp_path / "out"))


def test_parquet_gets_prediction_columns(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({name: X[:, i] for i, name in enumerate("abcd")}), buffer)
    _write(inputs, "t.parquet", buffer.getvalue())
    outcome = score_object(tiny, inputs, "t.parquet", str(tmp_path / "out"), chunk_rows=3)
    table = pq.read_table(tmp_path / "out" / outcome.output_key)
    assert table.column_names == ["a", "b", "c", "d", "y_0", "y_1", "y_2"]
    got = np.column_stack([table.column(f"y_{i}").to_numpy() for i in range(3)])
    np.testing.assert_allclose(got, tiny_onnx_expected(X), rtol=1e-6, atol=1e-6)


def test_a_second_run_is_already_done_and_a_new_input_version_is_not(
    tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path
) -> None:
    # GIVEN one scored object
    _write(inputs, "in.csv", csv_rows(X))
    first = score_object(tiny, inputs, "in.csv", str(tmp_path / "out"))
    result = tmp_path / "out" / first.output_key
    before = result.read_bytes()
    # WHEN the same object is scored again
    again = score_object(tiny, inputs, "in.csv", str(tmp_path / "out"))
    # THEN nothing is written and the first run's row count is reported
    assert again.already_done and again.rows == 7 and again.output_key == first.output_key
    assert result.read_bytes() == before
    # WHEN the input is replaced by new content
    _write(inputs, "in.csv", csv_rows(X[:2]))
    replaced = score_object(tiny, inputs, "in.csv", str(tmp_path / "out"))
    # THEN it gets its own result beside the first, found under the same input key
    assert not replaced.already_done and replaced.output_key != first.output_key
    assert replaced.output_key.startswith("in.csv/tiny-v1-")
    assert len(_files(tmp_path / "out")) == 4  # two results, two meta records


def test_unparseable_value_names_row_and_column(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    # GIVEN a CSV whose 3rd data row has text in column c
    _write(inputs, "bad.csv", b"a,b,c,d\n1,2,3,4\n5,6,7,8\n9,10,x!,12\n")
    # WHEN it is scored
    with pytest.raises(UnprocessableInput) as refused:
        score_object(tiny, inputs, "bad.csv", str(tmp_path / "out"), chunk_rows=2)
    # THEN the error names the row and column, is recorded beside the would-be result, and no result exists
    assert refused.value.field == "c" and "row 3" in refused.value.message
    (error_file,) = _files(tmp_path / "out")
    assert error_file.endswith(".csv.error.json")
    record = json.loads((tmp_path / "out" / error_file).read_bytes())
    assert record["field"] == "c" and "row 3" in record["error"]
    assert record["model"]["name"] == "tiny" and record["input"]["url"].endswith("/bad.csv")


def test_ragged_row_is_named(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    _write(inputs, "ragged.csv", b"a,b,c,d\n1,2,3,4\n5,6,7\n")
    with pytest.raises(UnprocessableInput, match="row 2 has 3 fields"):
        score_object(tiny, inputs, "ragged.csv", str(tmp_path / "out"))


def test_unknown_format_is_refused_with_a_record(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    _write(inputs, "notes.txt", b"hello")
    with pytest.raises(UnsupportedMediaType, match=".csv"):
        score_object(tiny, inputs, "notes.txt", str(tmp_path / "out"))
    (error_file,) = _files(tmp_path / "out")
    assert error_file.startswith("notes.txt/tiny-v1-") and error_file.endswith(".error.json")


def test_json_documents_over_the_cap_are_refused(
    tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelfn.batch._json as json_format

    monkeypatch.setattr(json_format, "MAX_JSON_BYTES", 64)
    _write(inputs, "big.json", json.dumps({"instances": X.tolist()}).encode())
    with pytest.raises(PayloadTooLarge, match="at most 64 bytes"):
        score_object(tiny, inputs, "big.json", str(tmp_path / "out"))


def test_stopping_between_chunks_writes_nothing_and_leaves_no_threads(
    tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path
) -> None:
    import threading

    from modelfn.errors import DeadlineExceeded

    # GIVEN a CSV of many chunks and a deadline check that fails at the fourth chunk
    _write(inputs, "long.csv", csv_rows(np.ones((5_000, 4), dtype=np.float32)))
    checks = []

    def out_of_time() -> None:
        checks.append(1)
        if len(checks) > 3:
            raise DeadlineExceeded("out of time", field="deadline")

    # WHEN it is scored
    with pytest.raises(DeadlineExceeded):
        score_object(tiny, inputs, "long.csv", str(tmp_path / "out"), chunk_rows=500, between_chunks=out_of_time)
    # THEN no file was written (not even a partial one) and the reader/writer threads have ended
    assert _files(tmp_path / "out") == []
    assert [t.name for t in threading.enumerate() if t.name.startswith("modelfn-batch")] == []


def test_a_result_left_without_its_meta_record_gets_one_on_retry(
    tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path
) -> None:
    # GIVEN a result whose run stopped before writing the meta record
    _write(inputs, "in.csv", csv_rows(X))
    first = score_object(tiny, inputs, "in.csv", str(tmp_path / "out"))
    meta = tmp_path / "out" / (first.output_key + ".meta.json")
    meta.unlink()
    result = (tmp_path / "out" / first.output_key).read_bytes()
    # WHEN the object is scored again
    again = score_object(tiny, inputs, "in.csv", str(tmp_path / "out"))
    # THEN the result is untouched and a meta record names it, without the row count only the first run knew
    assert again.already_done and (tmp_path / "out" / first.output_key).read_bytes() == result
    record = json.loads(meta.read_bytes())
    assert record["rows"] is None and record["output"]["key"] == first.output_key


@pytest.mark.parametrize(
    ("lines", "field", "words"),
    [
        (b'{"x": [1, 2, 3, 4]}\n{"x": [1, 2, 3, 4], "y": 0}\n', "y", "row 2: key 'y' is also a model output name"),
        (b'{"x": [1, 2, 3, 4]}\n{"x": [1, 2, 3, 4]\n', "row 2", "row 2 is not valid JSON"),
        (b'{"x": [1, 2, 3, 4]}\n{"z": [1, 2, 3, 4]}\n', "x", "row 2 has no key 'x'"),
    ],
    ids=["output-name-taken", "bad-json", "missing-input"],
)
def test_jsonl_data_errors_name_the_row(
    lines: bytes, field: str, words: str, tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path
) -> None:
    _write(inputs, "rows.jsonl", lines)
    with pytest.raises((UnprocessableInput, InvalidRequest)) as refused:
        score_object(tiny, inputs, "rows.jsonl", str(tmp_path / "out"), chunk_rows=1)
    assert refused.value.field == field and words in refused.value.message
    (error_file,) = _files(tmp_path / "out")
    assert error_file.endswith(".jsonl.error.json")


def test_batch_settings_are_validated_by_name() -> None:
    from modelfn.config import Settings
    from modelfn.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        Settings.load(environ={"MODELFN_CHUNK_ROWS": "0"})
    assert refused.value.field == "chunk_rows"
    settings = Settings.load(environ={"MODELFN_CHUNK_ROWS": "250", "MODELFN_INPUT_URL": "s3://in/x"})
    assert settings.chunk_rows == 250 and settings.input_url == "s3://in/x"


@pytest.mark.parametrize(
    ("input_url", "output_url", "overlaps"),
    [
        ("in", "in/results", True),
        ("in/", "in", True),
        ("file://{tmp}/in", "{tmp}/in/out", True),
        ("in", "out", False),
        ("in", "inbox", False),
        ("s3://b/in", "s3://b/out", False),
        ("s3://b/in", "s3://other/in", False),
        ("s3://b/in/", "s3://b", True),
    ],
)
def test_output_overlapping_the_trigger_location_is_refused(
    input_url: str, output_url: str, overlaps: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelfn.batch.trigger import check_locations
    from modelfn.config import Settings
    from modelfn.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    settings = Settings(input_url=input_url.format(tmp=tmp_path), output_url=output_url.format(tmp=tmp_path))
    if overlaps:
        with pytest.raises(ConfigError, match="overlaps"):
            check_locations(settings)
    else:
        check_locations(settings)


def test_csv_that_is_not_utf8_is_refused_by_row(tiny: LoadedBundle, inputs: LocalStore, tmp_path: Path) -> None:
    _write(inputs, "latin.csv", b"a,b,c,d\n1,2,3,4\n5,\xff,7,8\n")
    with pytest.raises(InvalidRequest, match="row 2 is not UTF-8") as refused:
        score_object(tiny, inputs, "latin.csv", str(tmp_path / "out"))
    assert refused.value.field == "row 2"
