"""Property: whatever a client sends to /predict or /v2/.../infer, the answer is never a 5xx (SECURITY.md 21)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfn.serving.asgi import create_app
from modelfn.serving.codecs import V2_TO_NUMPY
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import linear_bundle, served

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)
numbers = st.integers(min_value=-300, max_value=300) | st.floats(allow_nan=False, allow_infinity=False, width=32)
nested_numbers = st.recursive(numbers, lambda inner: st.lists(inner, max_size=6), max_leaves=40)
v2_tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "z", ""]),
        "shape": st.lists(st.integers(min_value=-1, max_value=6), max_size=4),
        "datatype": st.sampled_from([*V2_TO_NUMPY, "BF16", "fp32"]),
        "data": nested_numbers | json_values,
    },
    optional={"parameters": st.dictionaries(st.sampled_from(["binary_data_size", "other"]), json_values, max_size=2)},
)
v2_request = st.fixed_dictionaries(
    {"inputs": st.lists(v2_tensor, max_size=3) | json_values},
    optional={
        "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["y", "label", "q"])}), max_size=3)
        | json_values,
        "parameters": st.dictionaries(st.just("binary_data_output"), json_values, max_size=1),
        "id": json_values,
    },
)
predict_request = st.one_of(
    st.fixed_dictionaries({"instances": nested_numbers | json_values}, optional={"return_labels": json_values}),
    st.fixed_dictionaries({"inputs": st.dictionaries(st.sampled_from(["x", "y"]), nested_numbers, max_size=2)}),
    json_values,
)


@pytest.fixture(scope="module")
def fuzz_client() -> Iterator[SyncASGIClient]:
    client = SyncASGIClient(create_app(served(linear_bundle(), max_body_bytes=4096)))
    yield client
    client.close()


def assert_client_error_or_success(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) <= {"error", "code", "field"} and body["error"]


@settings(max_examples=150, deadline=None)
@given(body=predict_request)
def test_predict_never_answers_5xx(fuzz_client: SyncASGIClient, body: Any) -> None:
    # GIVEN any JSON body (big integers included, which orjson refuses)
    # WHEN posted to /predict
    response = fuzz_client.post("/predict", content=json.dumps(body).encode())
    # THEN the answer is a success or a typed client error
    assert_client_error_or_success(response)


@settings(max_examples=150, deadline=None)
@given(body=v2_request | json_values)
def test_infer_json_never_answers_5xx(fuzz_client: SyncASGIClient, body: Any) -> None:
    # GIVEN any V2-shaped (or arbitrary) JSON request
    # WHEN posted to the infer route
    response = fuzz_client.post("/v2/models/linear/infer", content=json.dumps(body).encode())
    # THEN never a 5xx
    assert_client_error_or_success(response)


@settings(max_examples=100, deadline=None)
@given(header=v2_request, tail=st.binary(max_size=64), cut=st.integers(min_value=-3, max_value=3))
def test_infer_binary_never_answers_5xx(fuzz_client: SyncASGIClient, header: Any, tail: bytes, cut: int) -> None:
    # GIVEN a binary-extension body whose header length may be off by a few bytes
    head = json.dumps(header).encode()
    length = max(0, len(head) + cut)
    # WHEN posted with Inference-Header-Content-Length
    response = fuzz_client.post(
        "/v2/models/linear/infer", content=head + tail, headers={"inference-header-content-length": str(length)}
    )
    # THEN never a 5xx
    assert_client_error_or_success(response)
