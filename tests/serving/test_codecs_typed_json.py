"""Typed JSON decoding of float tensors gives exactly what the general path gives, or defers to it.

``typed_json`` decodes large V2 and /predict bodies with msgspec straight into float arrays. It
must never accept what the general path (orjson, numpy's dtype discovery, the checked cast)
refuses, nor change a value or an error: every body here is decoded both ways and compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from modelfn.errors import ModelfnError
from modelfn.loader import LoadedBundle
from modelfn.runtime.base import validate_feeds
from modelfn.serving import codecs, processed, typed_json
from modelfn.serving.routes import dispatch
from tests.serving.tiny_models import served

JSON = {"content-type": "application/json"}
NUMBER = st.one_of(
    st.floats(min_value=-1e4, max_value=1e4),
    st.integers(min_value=-1000, max_value=1000),
    st.floats(width=64, allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e6, max_value=1e6, width=32),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, -0.0, 2**53, 2**53 + 1, -(2**53), 3.4028235e38, 3.5e38, 65504.0, 70000, 1e-46, 5e-324]),
)
ODD = st.sampled_from(["1.5", "", None, True, False, [1.0], {"a": 1}])
VALUE = st.one_of(NUMBER, NUMBER, NUMBER, ODD)
SHIPPED_MIN_BYTES = typed_json.MIN_BODY_BYTES
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def typed_for_every_size(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Small bodies take the typed path too, so the examples here exercise it."""
    monkeypatch.setattr(typed_json, "MIN_BODY_BYTES", 0)
    yield


def _outcome(decode: Any) -> tuple[str, Any]:
    """("ok", (dtype, shape, bytes)) or ("error", (type, status, field, message))."""
    try:
        array = decode()
    except ModelfnError as exc:
        return "error", (type(exc).__name__, exc.status_code, exc.field, str(exc))
    return "ok", (array.dtype.str, array.shape, array.tobytes())


@FAST
@given(
    data=st.one_of(st.lists(NUMBER, max_size=6), st.lists(VALUE, max_size=6)),
    datatype=st.sampled_from(["FP16", "FP32", "FP32", "FP64", "INT64", "BOOL"]),
    extra=st.sampled_from([{}, {}, {"id": "r-1"}, {"id": 7}, {"parameters": {"binary_data_output": True}}, {"x": 1}]),
    short=st.booleans(),
)
def test_v2_data_decodes_as_the_general_path_or_defers(
    data: list[Any], datatype: str, extra: dict[str, Any], short: bool
) -> None:
    # GIVEN a V2 JSON request with arbitrary data (numbers of every size, some non-numbers), its shape right or not
    shape = (len(data) + short,)
    body = json.dumps({"inputs": [{"name": "x", "shape": list(shape), "datatype": datatype, "data": data}], **extra})
    # WHEN decoded by the typed decoder and by the general path
    typed = typed_json.v2_request(body.encode())
    general = orjson.loads(body)
    event("deferred" if typed is None else "typed")
    if typed is None:
        return  # deferred: the route then decodes the body the general way
    # THEN the request is the same apart from the data, and the data gives the same array or the same error
    typed_tensor, general_tensor = typed["inputs"][0], general["inputs"][0]
    assert {**typed, "inputs": None} == {**general, "inputs": None}
    assert {**typed_tensor, "data": None} == {**general_tensor, "data": None}
    got = _outcome(lambda: codecs.decode_json_data(typed_tensor["data"], datatype, shape, field="x"))
    want = _outcome(lambda: codecs.decode_json_data(general_tensor["data"], datatype, shape, field="x"))
    assert got == want


def _rows(width: int) -> st.SearchStrategy[list[list[Any]]]:
    items = st.one_of(NUMBER, NUMBER, NUMBER, NUMBER, ODD)
    return st.lists(st.lists(items, min_size=width, max_size=width), min_size=1, max_size=3)


@FAST
@given(
    rows=st.integers(min_value=1, max_value=4).flatmap(_rows),
    form=st.sampled_from(["instances", "inputs", "named"]),
    extra=st.sampled_from([{}, {"return_labels": True}, {"return_labels": 1}, {"signature_name": "serving_default"}]),
)
def test_predict_tensor_decodes_as_the_general_path_or_defers(
    linear: LoadedBundle, rows: list[list[Any]], form: str, extra: dict[str, Any]
) -> None:
    # GIVEN a /predict body for the float32 [-1, 4] input, rows of any width and content
    value = {"x": rows} if form == "named" else rows
    body = json.dumps({"inputs" if form != "instances" else "instances": value, **extra}).encode()
    manifest = linear.manifest
    specs = {spec.name: spec for spec in manifest.inputs}
    # WHEN decoded by the typed decoder and by the general path, then checked against the schema
    typed = typed_json.predict_request(body, manifest)
    general = orjson.loads(body)
    event("deferred" if typed is None else "typed")
    if typed is None:
        return
    # THEN the request compares equal and the model receives the same array, or the same error is raised
    assert typed == general
    got = _outcome(lambda: validate_feeds(processed.request_feeds(typed, manifest), specs)["x"])
    want = _outcome(lambda: validate_feeds(processed.request_feeds(general, manifest), specs)["x"])
    assert got == want


@pytest.mark.parametrize(
    "data",
    [["1.5", 2.0], [None, 1.0], [True, 1.0], [2**53, 1.0], [1e39, 1.0], [[1.0], [2.0]], 1.0],
    ids=["string", "null", "bool", "2**53", "over-float32", "nested", "scalar"],
)
def test_v2_defers_on_values_the_general_path_judges(data: Any) -> None:
    # GIVEN FP32 data the typed decoder must not judge (strings, nulls, booleans, huge or nested values)
    body = orjson.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": data}]})
    # WHEN decoded / THEN the general path gets it
    assert typed_json.v2_request(body) is None


def test_small_bodies_take_the_general_path(monkeypatch: pytest.MonkeyPatch, linear: LoadedBundle) -> None:
    # GIVEN the size threshold as shipped and a small, well-formed body
    monkeypatch.setattr(typed_json, "MIN_BODY_BYTES", SHIPPED_MIN_BYTES)
    v2 = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]})
    predict = orjson.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]})
    # WHEN decoded / THEN neither typed decoder takes it
    assert typed_json.v2_request(v2) is None
    assert typed_json.predict_request(predict, linear.manifest) is None


def test_large_v2_json_request_answers_as_the_general_path(
    linear: LoadedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a V2 JSON request over the size threshold (3.1 MB: 40,000 rows of 4 floats, float64 digits)
    monkeypatch.setattr(typed_json, "MIN_BODY_BYTES", SHIPPED_MIN_BYTES)
    x = np.random.default_rng(0).standard_normal((40_000, 4))
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [40_000, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
    )
    assert len(body) >= typed_json.MIN_BODY_BYTES
    state = served(linear, max_body_bytes=8 << 20)
    decoded: list[dict[str, Any] | None] = []
    v2_request = typed_json.v2_request
    monkeypatch.setattr(typed_json, "v2_request", lambda header: decoded.append(v2_request(header)) or decoded[-1])
    # WHEN inferred through the routes with the typed decoder, and again with it turned off
    typed = dispatch(state, "POST", "/v2/models/linear/infer", JSON, body)
    assert len(decoded) == 1 and decoded[0] is not None  # the typed decoder took it
    monkeypatch.setattr(typed_json, "MIN_BODY_BYTES", 1 << 40)
    general = dispatch(state, "POST", "/v2/models/linear/infer", JSON, body)
    # THEN both answers are byte for byte the same, and right
    assert typed.status == general.status == 200
    assert typed.body == general.body
    outputs = {o["name"]: o for o in orjson.loads(typed.body)["outputs"]}
    assert outputs["y"]["shape"] == [40_000, 3]


def test_large_predict_body_decodes_straight_to_the_input_array(
    linear: LoadedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a /predict body over the size threshold for the float32 [-1, 4] input
    monkeypatch.setattr(typed_json, "MIN_BODY_BYTES", SHIPPED_MIN_BYTES)
    x = np.random.default_rng(1).standard_normal((40_000, 4))
    body = orjson.dumps({"instances": x.tolist(), "return_labels": True})
    # WHEN decoded by the typed decoder
    typed = typed_json.predict_request(body, linear.manifest)
    # THEN the rows carry the float32 array the general path would build, and the request reads the same
    assert typed is not None and typed["return_labels"] is True
    rows = typed["instances"]
    assert isinstance(rows, typed_json.TensorRows) and rows == x.tolist()
    assert codecs.as_input(rows, "float32", field="x") is rows.array
    np.testing.assert_array_equal(rows.array, x.astype(np.float32))
