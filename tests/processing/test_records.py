"""records_to_feeds / parse_csv: named features to the model's inputs, errors naming the row and feature."""

from __future__ import annotations

import numpy as np
import pytest

from modelfn.bundle.manifest import TensorSpec
from modelfn.bundle.processing import Processing, RecordProcessing
from modelfn.errors import InvalidRequest, PayloadTooLarge, UnprocessableInput
from modelfn.processing.records import parse_csv, records_to_feeds
from tests.serving.tiny_models import manifest

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS = RecordProcessing(input="x", features=FEATURES)
X = TensorSpec(name="x", dtype="float32", shape=[-1, 4])
IRIS_MANIFEST = manifest("iris", [X], [TensorSpec(name="y", dtype="float32", shape=[-1, 3])]).replace(
    processing=Processing(records=IRIS)
)
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def test_rows_by_feature_name_map_to_the_input_order() -> None:
    # GIVEN rows whose keys come in another order than the model's
    rows = [dict(reversed(list(ROW.items()))), {**ROW, "petal_width": 2}]
    # WHEN mapped
    feeds = records_to_feeds(rows, IRIS, IRIS_MANIFEST, field="instances")
    # THEN one float32 [2, 4] input in the declared feature order
    assert feeds["x"].dtype == np.float32
    np.testing.assert_allclose(feeds["x"], [[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4, 2.0]], rtol=1e-6)


@pytest.mark.parametrize(
    ("rows", "message", "field"),
    [
        ([ROW, ROW, ROW, {k: v for k, v in ROW.items() if k != "petal_width"}],
         "instances[3] is missing feature 'petal_width'", "instances[3].petal_width"),
        ([{**ROW, "color": 1}], "instances[0] has unknown feature 'color'", "instances[0].color"),
        ([ROW, {**ROW, "sepal_width": "wide"}],
         "instances[1].sepal_width must be a number", "instances[1].sepal_width"),
        ([{**ROW, "sepal_width": True}], "instances[0].sepal_width must be a number", "instances[0].sepal_width"),
        ([ROW, [1, 2, 3, 4]], "instances[1] must be an object of features", "instances[1]"),
        ([{**ROW, "petal_width": 1e300}], "outside the float32 range", "petal_width"),
    ],
)  # fmt: skip
def test_bad_rows_are_422_naming_row_and_feature(rows: list, message: str, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(UnprocessableInput) as caught:
        records_to_feeds(rows, IRIS, IRIS_MANIFEST, field="instances")
    assert message in caught.value.message and caught.value.field == field and caught.value.status_code == 422


def test_per_input_features_with_int_and_string_inputs() -> None:
    # GIVEN a Spark-style model: each feature is its own input (an int64 [-1, 1] and a string [-1])
    spec = RecordProcessing(features=["age", "city"])
    model = manifest(
        "spark",
        [TensorSpec(name="age", dtype="int64", shape=[-1, 1]), TensorSpec(name="city", dtype="string", shape=[-1])],
        [TensorSpec(name="p", dtype="float32", shape=[-1, 2])],
    ).replace(processing=Processing(records=spec))
    feeds = records_to_feeds([{"age": 31, "city": "Oslo"}, {"age": 40.0, "city": "Lima"}], spec, model, field="rows")
    assert feeds["age"].tolist() == [[31], [40]] and feeds["age"].dtype == np.int64
    assert feeds["city"].tolist() == ["Oslo", "Lima"] and feeds["city"].dtype == object
    # a fraction for an integer feature, or a number for a string one, is named
    with pytest.raises(UnprocessableInput, match=r"rows\[1\].age is 40.5; int64 needs a whole number"):
        records_to_feeds([{"age": 1, "city": "a"}, {"age": 40.5, "city": "b"}], spec, model, field="rows")
    with pytest.raises(UnprocessableInput, match=r"rows\[0\].city must be a string"):
        records_to_feeds([{"age": 1, "city": 7}], spec, model, field="rows")
    # a one-element row for a [?, 1] input, as tensor clients send Spark models, is that cell; longer lists are not
    feeds = records_to_feeds([{"age": [31], "city": "Oslo"}], spec, model, field="rows")
    assert feeds["age"].tolist() == [[31]]
    with pytest.raises(UnprocessableInput, match=r"rows\[0\].age must be a number, got list"):
        records_to_feeds([{"age": [31, 32], "city": "Oslo"}], spec, model, field="rows")
    # CSV text converts for the int input and stays text for the string one
    csv_rows = parse_csv(b"city,age\r\nOslo,31\r\n", field="body")
    feeds = records_to_feeds(csv_rows, spec, model, field="body", from_text=True)
    assert feeds["age"].tolist() == [[31]] and feeds["city"].tolist() == ["Oslo"]


def test_csv_with_a_header() -> None:
    # GIVEN a CSV body (BOM, quoted cell, trailing blank line)
    body = b'\xef\xbb\xbfpetal_width,sepal_length,sepal_width,"petal_length"\n0.2,5.1,3.5,1.4\n2.3,6.7,3.0,5.2\n\n'
    rows = parse_csv(body, field="body")
    assert rows[0] == {"petal_width": "0.2", "sepal_length": "5.1", "sepal_width": "3.5", "petal_length": "1.4"}
    feeds = records_to_feeds(rows, IRIS, IRIS_MANIFEST, field="body", from_text=True)
    np.testing.assert_allclose(feeds["x"], [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], rtol=1e-6)
    # AND CSV cells that are not numbers are named; JSON strings are not parsed as numbers
    bad = parse_csv(b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,,0.2\n", field="body")
    with pytest.raises(UnprocessableInput, match=r"body\[0\].petal_length is empty"):
        records_to_feeds(bad, IRIS, IRIS_MANIFEST, field="body", from_text=True)
    with pytest.raises(UnprocessableInput, match=r"body\[0\].petal_length must be a number"):
        records_to_feeds([{**ROW, "petal_length": "1.4"}], IRIS, IRIS_MANIFEST, field="body")


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"", InvalidRequest, "needs a header line"),
        (b"a,a\n1,2\n", InvalidRequest, "repeated column 'a'"),
        (b"a,b\n", UnprocessableInput, "no rows"),
        (b"a,b\n1,2\n3\n", UnprocessableInput, r"body\[1\] has 1 cells; the header names 2"),
        (b"a,b\n\xff\xfe,1\n", InvalidRequest, "not UTF-8"),
        (b"a,b\n" + b"1,2\n" * 11, PayloadTooLarge, "more than 10 rows"),
    ],
)
def test_malformed_csv(body: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_csv(body, field="body", max_rows=10)
