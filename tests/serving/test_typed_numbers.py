"""JSON numbers decoded straight into a float input's dtype give what the general path gives, or defer to it.

``typed_json.float_array`` skips the float64 list pass for float inputs when ``processed.numbers_only``
proves the body holds no strings, objects or nulls; it must never accept what the general path
refuses (``"1.5"``, ``null``, overflow) nor change a value: where in doubt it defers (None).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfn.errors import UnprocessableInput
from modelfn.loader import LoadedBundle
from modelfn.runtime.base import fitting_cast
from modelfn.serving.asgi import create_app
from modelfn.serving.processed import numbers_only
from modelfn.serving.typed_json import float_array
from tests.serving.tiny_models import expected_linear, linear_bundle, served

JSON = {"content-type": "application/json"}
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
)


@pytest.fixture(scope="module")
def linear() -> LoadedBundle:
    return linear_bundle()


def _general(value: Any, dtype: str) -> Any:
    """The general path: numpy's own dtype discovery, then the checked cast."""
    array = np.asarray(value)
    target = np.dtype(dtype)
    return array if array.dtype == target else fitting_cast(array, target, "x")


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=4).flatmap(
        lambda width: st.lists(st.lists(NUMBERS, min_size=width, max_size=width), min_size=1, max_size=4)
    ),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
)
def test_typed_numbers_equal_the_general_path_or_defer(rows: list[list[Any]], dtype: str) -> None:
    # GIVEN rows of JSON numbers and booleans, as orjson decodes them
    value = orjson.loads(orjson.dumps(rows))
    # WHEN decoded straight into the float dtype, and by the general path
    typed = float_array(value, dtype)
    try:
        general = _general(value, dtype)
    except UnprocessableInput:
        general = None
    # THEN it defers, or gives exactly the general path's dtype, shape and bits (never a value it refuses)
    if typed is None:
        return
    assert general is not None
    assert typed.dtype == general.dtype and typed.shape == general.shape
    np.testing.assert_array_equal(typed.view(np.uint8), np.ascontiguousarray(general).view(np.uint8))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"instances": [[1, 2.5, true, -3e2]]}', True),
        (b'{"instances": [[1, 2]], "return_labels": false}', True),
        (b'{"instances": [["1.5", 2]]}', False),
        (b'{"instances": [[null, 2]]}', False),
        (b'{"instances": [{"x": [1, 2]}]}', False),
        (b'{"inst\\"ances": [[1, 2]]}', False),
    ],
    ids=["numbers", "two-keys", "string", "null", "object-rows", "escaped-quote-key"],
)
def test_numbers_only_is_proved_from_the_body(body: bytes, expected: bool) -> None:
    # GIVEN a JSON body and its decoded object
    request = orjson.loads(body)
    # THEN numbers_only holds exactly when no value is a string, an object or null
    assert numbers_only(body, request) is expected


@pytest.mark.parametrize(
    ("row", "reason"),
    [([["1.5", 2.0, 3.0, 4.0]], "string"), ([[None, 2.0, 3.0, 4.0]], "null"), ([[1e39, 2.0, 3.0, 4.0]], "range")],
    ids=["string", "null", "overflow"],
)
def test_values_that_are_no_float32_are_still_refused_naming_the_input(
    linear: LoadedBundle, row: list[list[Any]], reason: str
) -> None:
    # GIVEN /predict rows holding a string, a null or a number beyond float32
    body = orjson.dumps({"instances": row})
    # WHEN served
    response = create_app(served(linear)).respond("POST", "/predict", JSON, body)
    # THEN it is a 422 naming the input, never a prediction
    assert response.status == 422, response.body
    answer = orjson.loads(response.body)
    assert answer["field"] == "x"
    if reason == "range":
        assert "float32 range" in answer["error"]


def test_a_large_predict_body_takes_the_typed_decoder_and_predicts_the_same(linear: LoadedBundle) -> None:
    # GIVEN a /predict body over typed_json's threshold (about 3.5 MB of float rows)
    from modelfn.serving import typed_json

    rows = np.random.default_rng(3).standard_normal((110_000, 4)).astype(np.float32)
    body = orjson.dumps({"instances": rows.tolist()})
    assert len(body) >= typed_json.MIN_BODY_BYTES
    assert typed_json.predict_request(body, linear.manifest) is not None
    # WHEN served
    response = create_app(served(linear, max_body_bytes=16 << 20)).respond("POST", "/predict", JSON, body)
    # THEN the predictions are onnxruntime's on the float32 rows
    assert response.status == 200, response.body[:200]
    y, _ = expected_linear(rows)
    np.testing.assert_allclose(orjson.loads(response.body)["predictions"]["y"], y, rtol=1e-6)
