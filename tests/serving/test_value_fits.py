"""A value that does not fit the model's input type is a 422 naming the input, and a malformed header a 400.

Issue 9, defects 1 and 2: ``1e300`` sent as FP64 (or in a /predict row) used to become float32 ``inf``,
``70000`` sent as FP16 float16 ``inf``, ``300`` for an int8 input wrapped to 44, and a
``Inference-Header-Content-Length`` of ``²`` (which ``str.isdigit`` accepts and ``int`` refuses) was a
500. Every route (V2 JSON, V2 binary, /predict rows, /predict columns) and every source dtype is
checked against a real onnxruntime model whose inputs are narrow types (SECURITY.md rule 17).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import numpy as np
import orjson
import pytest

from modelfn.bundle.manifest import TensorSpec
from modelfn.loader import LoadedBundle
from modelfn.serving.asgi import create_app
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import _bundle, manifest, served

INFER_LINEAR = "/v2/models/linear/infer"
INFER_NARROW = "/v2/models/narrow/infer"
# narrow input name -> (manifest dtype, ONNX element type name, a value that does not fit, the extreme that does)
NARROW: dict[str, tuple[Any, str, int, int]] = {
    "i8": ("int8", "INT8", 300, -128),
    "u8": ("uint8", "UINT8", -1, 255),
    "i32": ("int32", "INT32", 2**31, -(2**31)),
    "f16": ("float16", "FLOAT16", 70000, 65504),
}


def narrow_onnx() -> bytes:
    """Identity per input, so a 200 shows exactly the value the model received."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [f"{name}_out"]) for name in NARROW],
        "narrow",
        [helper.make_tensor_value_info(n, getattr(TensorProto, t), ["N"]) for n, (_, t, _, _) in NARROW.items()],
        [
            helper.make_tensor_value_info(f"{n}_out", getattr(TensorProto, t), ["N"])
            for n, (_, t, _, _) in NARROW.items()
        ],
    )
    return bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()
    )


@pytest.fixture(scope="module")
def narrow() -> LoadedBundle:
    spec = manifest(
        "narrow",
        [TensorSpec(name=n, dtype=d, shape=[-1]) for n, (d, _, _, _) in NARROW.items()],
        [TensorSpec(name=f"{n}_out", dtype=d, shape=[-1]) for n, (d, _, _, _) in NARROW.items()],
    )
    return _bundle(narrow_onnx(), spec)


@pytest.fixture
def narrow_client(narrow: LoadedBundle) -> Iterator[SyncASGIClient]:
    client = SyncASGIClient(create_app(served(narrow)))
    yield client
    client.close()


def fitting_row(**overrides: float) -> dict[str, float]:
    """One /predict row where every input holds its extreme fitting value, except ``overrides``."""
    return {name: overrides.get(name, fits) for name, (_, _, _, fits) in NARROW.items()}


def v2_json(values: dict[str, Any], datatypes: dict[str, str]) -> dict[str, Any]:
    return {"inputs": [{"name": n, "shape": [1], "datatype": datatypes[n], "data": [v]} for n, v in values.items()]}


def v2_binary(arrays: dict[str, np.ndarray[Any, Any]], datatypes: dict[str, str]) -> dict[str, Any]:
    """Request kwargs for the binary extension, each array as raw little-endian bytes."""
    inputs = [
        {"name": n, "shape": list(a.shape), "datatype": datatypes[n], "parameters": {"binary_data_size": a.nbytes}}
        for n, a in arrays.items()
    ]
    head = orjson.dumps({"inputs": inputs})
    tail = b"".join(a.astype(a.dtype.newbyteorder("<")).tobytes() for a in arrays.values())
    return {"content": head + tail, "headers": {"inference-header-content-length": str(len(head))}}


def assert_422_naming(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["code"], body["field"]) == ("unprocessable_input", field)
    assert "range" in body["error"]


V2_NAMES = {"i8": "INT8", "u8": "UINT8", "i32": "INT32", "f16": "FP16"}
WIDE_NAMES = {"i8": "INT64", "u8": "INT64", "i32": "INT64", "f16": "FP64"}


@pytest.mark.parametrize("victim", list(NARROW))
@pytest.mark.parametrize("route", ["predict-rows", "predict-columns", "v2-own-type", "v2-wide-type", "v2-binary-wide"])
def test_a_value_outside_the_input_type_is_422_on_every_route(
    narrow_client: SyncASGIClient, route: str, victim: str
) -> None:
    # GIVEN one value that does not fit its input's type (the others at their extreme fitting values)
    bad = NARROW[victim][2]
    values: dict[str, Any] = fitting_row(**{victim: bad})
    # WHEN it is sent through one route, as the input's own V2 type or a wider one
    if route == "predict-rows":
        response = narrow_client.post("/predict", json={"instances": [values]})
    elif route == "predict-columns":
        response = narrow_client.post("/predict", json={"inputs": {n: [v] for n, v in values.items()}})
    elif route == "v2-own-type":
        response = narrow_client.post(INFER_NARROW, json=v2_json(values, V2_NAMES))
    elif route == "v2-wide-type":
        response = narrow_client.post(INFER_NARROW, json=v2_json(values, WIDE_NAMES))
    else:
        wide = {n: np.array([v], dtype="float64" if n == "f16" else "int64") for n, v in values.items()}
        response = narrow_client.post(INFER_NARROW, **v2_binary(wide, WIDE_NAMES))
    # THEN it is a 422 naming that input (never a wrapped integer or an inf answered 200)
    assert_422_naming(response, victim)


@pytest.mark.parametrize("route", ["predict-rows", "v2-own-type", "v2-wide-type", "v2-binary-wide"])
def test_extreme_values_that_fit_reach_the_model_unchanged(narrow_client: SyncASGIClient, route: str) -> None:
    # GIVEN every input at the extreme value its type still holds
    values = fitting_row()
    # WHEN sent through the route
    if route == "predict-rows":
        response = narrow_client.post("/predict", json={"instances": [values]})
    elif route == "v2-binary-wide":
        wide = {n: np.array([v], dtype="float64" if n == "f16" else "int64") for n, v in values.items()}
        response = narrow_client.post(INFER_NARROW, **v2_binary(wide, WIDE_NAMES))
    else:
        datatypes = V2_NAMES if route == "v2-own-type" else WIDE_NAMES
        response = narrow_client.post(INFER_NARROW, json=v2_json(values, datatypes))
    # THEN the model echoes exactly those values (the range check refuses nothing that fits)
    assert response.status_code == 200, response.text
    body = response.json()
    echoed = (
        {k[: -len("_out")]: v[0] for k, v in body["predictions"].items()}
        if route == "predict-rows"
        else {o["name"][: -len("_out")]: o["data"][0] for o in body["outputs"]}
    )
    assert echoed == values


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        (
            {"json": {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 1e300]}]}},
            INFER_LINEAR,
        ),
        (
            {"json": {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP16", "data": [1, 2, 3, 70000]}]}},
            INFER_LINEAR,
        ),
        (v2_binary({"x": np.array([[1, 2, 3, 1e300]])}, {"x": "FP64"}), INFER_LINEAR),
        ({"json": {"instances": [[1, 2, 3, 1e300]]}}, "/predict"),
        ({"json": {"inputs": {"x": [[1e300, 2, 3, 4]]}}}, "/predict"),
    ],
    ids=["v2-fp64", "v2-fp16", "v2-binary-fp64", "predict-rows", "predict-inputs"],
)
def test_issue_values_that_overflow_float32_are_422_naming_the_input(
    client: SyncASGIClient, kwargs: dict[str, Any], path: str
) -> None:
    # GIVEN the linear model (float32 input x) and the issue's values: 1e300 as FP64, 70000 as FP16
    # WHEN they are sent THEN 422 naming x, as the same value sent as FP32 already was
    assert_422_naming(client.post(path, **kwargs), "x")


def test_an_explicit_infinity_sent_as_binary_is_not_refused(client: SyncASGIClient) -> None:
    # GIVEN a client that sends inf itself (binary FP64 can hold it; nothing was silently cast)
    response = client.post(INFER_LINEAR, **v2_binary({"x": np.array([[1.0, 2.0, 3.0, np.inf]])}, {"x": "FP64"}))
    # THEN the range check does not mistake it for an overflow
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", [b"\xb2", b"\xb3", b"\xb9", b"1\xb2", b"", b"-1", b"+5", b"0x10", b"1" * 5000])
def test_malformed_inference_header_length_is_400(client: SyncASGIClient, value: bytes) -> None:
    # GIVEN a binary-extension request whose header length is not ASCII digits (² ³ ¹ are latin-1 0xB2 0xB3 0xB9)
    # WHEN it is sent THEN 400 naming the header, never a 500
    body = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    response = client.post(INFER_LINEAR, content=body, headers=[(b"inference-header-content-length", value)])
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "Inference-Header-Content-Length"


def test_valid_inference_header_length_still_splits_the_body(client: SyncASGIClient) -> None:
    # GIVEN the same JSON sent with its exact length as the header (surrounding spaces allowed)
    body = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    response = client.post(
        INFER_LINEAR, content=body, headers=[(b"inference-header-content-length", b" %d" % len(body))]
    )
    # THEN it is served
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", [b"\xb2", b"1" * 5000, b"12abc"])
def test_malformed_content_length_is_400(state: Any, value: bytes) -> None:
    # GIVEN a raw ASGI request whose Content-Length is not a byte count (as Mangum passes headers through)
    import asyncio

    app = create_app(state)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"instances": [[1, 2, 3, 4]]}', "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"content-length", value)]}
    # WHEN the app handles it
    asyncio.run(app(scope, receive, send))
    # THEN 400 naming the header
    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"])["field"] == "content-length"
