"""Every (request datatype, model dtype) pair: a value reaches the model unchanged, or a typed 4xx (SECURITY.md 17, 21).

Each served model is an ONNX Identity over one dtype, so a 200 must echo exactly what was sent:
an integer that wrapped (300 as INT8 → 44), a float that overflowed to inf, a string whose
non-ASCII characters were mangled, would all show up as a different echo. Bodies come as JSON
(any numbers, including ones far outside every range, and any Unicode text) and as the V2
binary extension (every bit pattern of the request datatype, NaN and inf included).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelfn.bundle.manifest import TensorSpec
from modelfn.loader import LoadedBundle
from modelfn.runtime.onnx_session import OnnxModel
from modelfn.serving.asgi import create_app
from modelfn.serving.codecs import NUMPY_TO_V2, V2_TO_NUMPY
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import ROOT_DIGEST, VERIFIED_AT, manifest, served

MODEL_DTYPES = [
    "bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
    "float16", "float32", "float64", "string",
]  # fmt: skip
V2_TYPES = list(V2_TO_NUMPY)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CLIENT_ERRORS = {400, 404, 413, 415, 422}


def identity_onnx(dtype: str) -> bytes:
    """``y = Identity(x)`` over a 1-D tensor of ``dtype``."""
    from onnx import TensorProto, helper
    from onnx.helper import np_dtype_to_tensor_dtype

    elem = TensorProto.STRING if dtype == "string" else np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", elem, ["N"])],
        [helper.make_tensor_value_info("y", elem, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return bytes(model.SerializeToString())


def identity_bundle(dtype: str) -> LoadedBundle:
    spec = manifest(
        f"id-{dtype}",
        [TensorSpec(name="x", dtype=dtype, shape=[-1])],
        [TensorSpec(name="y", dtype=dtype, shape=[-1])],
    )
    model = OnnxModel(identity_onnx(dtype), spec, threads=1, providers=["CPUExecutionProvider"])
    return LoadedBundle(manifest=spec, model=model, root_digest=ROOT_DIGEST, key_hint="k", verified_at=VERIFIED_AT)


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, SyncASGIClient]]:
    """One client per model dtype, each serving its Identity model."""
    made = {d: SyncASGIClient(create_app(served(identity_bundle(d), max_body_bytes=64 * 1024))) for d in MODEL_DTYPES}
    yield made
    for client in made.values():
        client.close()


# --- what a 200 must look like ----------------------------------------------------------------


def assert_echo(model_dtype: str, sent: list[Any], got: list[Any], via: str | None = None) -> None:
    """The model received (and returned) the sent values in its own dtype, without wrap or overflow.

    Floats may round to the coarser of the model's dtype and the request's datatype ``via``.
    """
    assert len(got) == len(sent)
    if model_dtype == "string":
        assert all(isinstance(s, str) for s in sent) and got == sent
        return
    target = np.dtype(model_dtype)
    for value, out in zip(sent, got, strict=True):
        assert not isinstance(value, str), (value, out)
        if target.kind == "b":
            assert out is bool(value) and value in (0, 1), (value, out)
        elif target.kind in "iu":
            assert isinstance(out, int) and value == out, (value, out)
        else:
            assert isinstance(out, float | int) and out == out and abs(out) != float("inf"), (value, out)
            coarsest = [np.finfo(target)]
            if via in ("FP16", "FP32"):
                coarsest.append(np.finfo(V2_TO_NUMPY[via]))
            eps, tiny = max(float(i.eps) for i in coarsest), max(float(i.smallest_normal) for i in coarsest)
            assert abs(out - float(value)) <= eps * abs(float(value)) + tiny, (value, out, via)


def assert_client_error(response: Any) -> None:
    assert response.status_code in CLIENT_ERRORS, (response.status_code, response.text)
    body = response.json()
    assert set(body) <= {"error", "code", "field"} and body["error"] and body["code"]


def infer(client: SyncASGIClient, model_dtype: str, body: dict[str, Any]) -> Any:
    return client.post(f"/v2/models/id-{model_dtype}/infer", content=json.dumps(body).encode())


# --- the full matrix, deterministic ----------------------------------------------------------


def fitting_value(datatype: str) -> Any:
    """A value every dtype of the datatype's family holds exactly."""
    return {"BOOL": True, "BYTES": "ünï ✓"}.get(datatype, 1)


def overflowing_value(datatype: str, model_dtype: str) -> Any | None:
    """A value valid as ``datatype`` that the model dtype cannot hold (None when there is none)."""
    request = np.dtype(V2_TO_NUMPY[datatype])
    if model_dtype in ("string", "bool") or request.kind in "bO":
        return None
    target = np.dtype(model_dtype)
    if target.kind in "iu" and request.kind in "iu":
        high, low = int(np.iinfo(request).max), int(np.iinfo(request).min)
        if high > np.iinfo(target).max:
            return high
        return low if low < np.iinfo(target).min else None
    if target.kind == "f":
        limit = float(np.finfo(request).max) if request.kind == "f" else float(np.iinfo(request).max)
        return limit if limit > float(np.finfo(target).max) * 1.01 else None
    return None


@pytest.mark.parametrize("model_dtype", MODEL_DTYPES)
def test_every_datatype_pair_echoes_exactly_or_answers_a_typed_4xx(
    clients: dict[str, SyncASGIClient], model_dtype: str
) -> None:
    client = clients[model_dtype]
    for datatype in V2_TYPES:
        # GIVEN a value of this datatype's family that the model's dtype could hold
        value = fitting_value(datatype)
        body = {"inputs": [{"name": "x", "shape": [2], "datatype": datatype, "data": [value, value]}]}
        # WHEN sent as JSON
        response = infer(client, model_dtype, body)
        # THEN the same datatype is always served, any other pair echoes exactly or is refused, never 5xx
        if NUMPY_TO_V2.get(model_dtype) == datatype or (model_dtype == "string" and datatype == "BYTES"):
            assert response.status_code == 200, (datatype, response.text)
        if response.status_code == 200:
            (out,) = response.json()["outputs"]
            assert out["datatype"] == NUMPY_TO_V2[model_dtype] and out["shape"] == [2]
            assert_echo(model_dtype, [value, value], out["data"], via=datatype)
        else:
            assert_client_error(response)

        # GIVEN a value valid for the datatype that does not fit the model's dtype
        too_big = overflowing_value(datatype, model_dtype)
        if too_big is None:
            continue
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": datatype, "data": [too_big]}]}
        # WHEN sent THEN it is refused naming the input, never wrapped or turned into inf
        response = infer(client, model_dtype, body)
        assert response.status_code == 422, (datatype, too_big, response.text)
        assert response.json()["field"] == "x"


# --- hypothesis over JSON bodies -------------------------------------------------------------

BOUNDARIES = sorted(
    {b + d for t in MODEL_DTYPES[1:9] for b in (int(np.iinfo(t).min), int(np.iinfo(t).max)) for d in (-1, 0, 1)}
)
FLOAT_EDGES = [
    s * float(np.finfo(t).max) * m for t in ("float16", "float32") for m in (1.0, 1.001, 2.0) for s in (1, -1)
] + [5e-324, -0.0, 6e-8, 1e-45, 1.7976931348623157e308]
INTS = st.sampled_from(BOUNDARIES) | st.integers(min_value=-(2**70), max_value=2**70)
FLOATS = st.sampled_from(FLOAT_EDGES) | st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
"""Any Unicode text, NUL included (numpy's fixed-width ``str`` arrays would drop a trailing U+0000)."""
ANY_VALUE = INTS | FLOATS | st.booleans() | TEXT | st.none()
DATA = (
    st.lists(INTS, max_size=6)
    | st.lists(FLOATS, max_size=6)
    | st.lists(st.booleans(), max_size=6)
    | st.lists(TEXT, max_size=6)
    | st.lists(ANY_VALUE, max_size=6)
)
DATATYPES = st.sampled_from([*V2_TYPES, "BF16", "fp32", "", "ＩＮＴ８"])
NAMES = st.just("x") | TEXT


@pytest.mark.parametrize("model_dtype", MODEL_DTYPES)
@FUZZ
@given(datatype=DATATYPES, data=DATA, name=NAMES, shape_delta=st.sampled_from([0, 0, 0, 1, -1]))
def test_v2_json_values_reach_the_model_unchanged_or_are_refused(
    clients: dict[str, SyncASGIClient], model_dtype: str, datatype: str, data: list[Any], name: str, shape_delta: int
) -> None:
    # GIVEN any values (out of every range, non-ASCII text, mixed kinds) under any datatype and name
    shape = [max(0, len(data) + shape_delta)]
    body = {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}
    # WHEN posted to the Identity model of this dtype
    response = infer(clients[model_dtype], model_dtype, body)
    # THEN either the model saw exactly those values in its dtype, or a typed 4xx came back
    if response.status_code == 200:
        (out,) = response.json()["outputs"]
        assert out["datatype"] == NUMPY_TO_V2[model_dtype]
        assert_echo(model_dtype, data, out["data"], via=datatype)
    else:
        assert_client_error(response)


@pytest.mark.parametrize("model_dtype", MODEL_DTYPES)
@FUZZ
@given(rows=DATA)
def test_predict_values_reach_the_model_unchanged_or_are_refused(
    clients: dict[str, SyncASGIClient], model_dtype: str, rows: list[Any]
) -> None:
    # GIVEN any list of values as /predict instances WHEN posted
    response = clients[model_dtype].post("/predict", content=json.dumps({"instances": rows}).encode())
    # THEN the prediction echoes them in the model's dtype, or a typed 4xx
    if response.status_code == 200:
        assert_echo(model_dtype, rows, response.json()["predictions"])
    else:
        assert_client_error(response)


# --- hypothesis over binary tensors ----------------------------------------------------------

NUMERIC_V2 = [t for t in V2_TYPES if t != "BYTES"]


@st.composite
def binary_tensors(draw: st.DrawFn) -> tuple[str, npt.NDArray[Any]]:
    """A V2 datatype and an array of it holding any bit pattern (NaN, inf, subnormals, extremes)."""
    datatype = draw(st.sampled_from(NUMERIC_V2))
    array = draw(hnp.arrays(np.dtype(V2_TO_NUMPY[datatype]), st.integers(min_value=0, max_value=6)))
    return datatype, array


@pytest.mark.parametrize("model_dtype", [d for d in MODEL_DTYPES if d != "string"])
@FUZZ
@given(tensor=binary_tensors())
def test_v2_binary_values_reach_the_model_unchanged_or_are_refused(
    clients: dict[str, SyncASGIClient], model_dtype: str, tensor: tuple[str, npt.NDArray[Any]]
) -> None:
    # GIVEN raw little-endian tensor bytes of any datatype, outputs asked for as binary
    datatype, array = tensor
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [array.size], "datatype": datatype, "parameters": {"binary_data_size": len(raw)}}
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    # WHEN posted with the binary extension
    response = clients[model_dtype].post(
        f"/v2/models/id-{model_dtype}/infer",
        content=header + raw,
        headers={"inference-header-content-length": str(len(header)), "content-type": "application/octet-stream"},
    )
    # THEN the model got the same values (NaN stays NaN, inf stays inf), or a typed 4xx
    if response.status_code != 200:
        assert_client_error(response)
        return
    head_length = int(response.headers["inference-header-content-length"])
    got = np.frombuffer(response.content[head_length:], dtype=np.dtype(model_dtype).newbyteorder("<"))
    assert got.shape == array.shape
    target = np.dtype(model_dtype)
    if target.kind in "iub":
        assert array.dtype.kind in "iub" and [int(v) for v in array] == [int(v) for v in got]
    else:
        wide = array.astype(np.float64)
        assert np.array_equal(np.isnan(wide), np.isnan(got)) and np.array_equal(np.isinf(wide), np.isinf(got))
        finite = np.isfinite(wide)
        info = np.finfo(target)
        err = np.abs(got[finite].astype(np.float64) - wide[finite])
        assert (err <= float(info.eps) * np.abs(wide[finite]) + float(info.smallest_normal)).all()


# --- hypothesis over headers -----------------------------------------------------------------


def _wire(value: str) -> bytes:
    """Header bytes as a client sends them: Latin-1 where it can, else UTF-8 (read back as Latin-1 mojibake)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=12)


@FUZZ
@given(
    length=HEADER_TEXT | st.sampled_from(["²", "¹0", "١٢", "٣", "0x10", "-1", " 7 ", "1e2", "99999999999999999999"]),
    content_type=HEADER_TEXT | st.sampled_from(["application/json", "application/octet-stream", "text/plain; é"]),
)
def test_odd_header_values_answer_a_typed_4xx(
    clients: dict[str, SyncASGIClient], length: str, content_type: str
) -> None:
    # GIVEN a valid body with any Latin-1 header values (Unicode digits, signs, spaces, huge numbers)
    body = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.5]}]}).encode()
    headers = {"inference-header-content-length": length, "content-type": content_type}
    # WHEN posted
    response = clients["float32"].request(
        "POST", "/v2/models/id-float32/infer", content=body, headers={k: _wire(v) for k, v in headers.items()}
    )
    # THEN the request is served or refused naming a header, never a 5xx
    if response.status_code != 200:
        assert_client_error(response)


@pytest.mark.parametrize(
    ("datatype", "data", "status"),
    [
        ("BYTES", ["a\x00", "\x00", "b"], 200),  # trailing NULs kept (numpy's str arrays would drop them)
        ("BYTES", ["a", 1, "b"], 422),  # a number among strings is not text
        ("BYTES", [True, "b", "c"], 422),
        ("FP32", [1.0, 2.0, 3.0], 422),  # numbers are never turned into their text
        ("BOOL", [True, False, True], 422),
    ],
)
def test_a_string_input_takes_exactly_the_strings_sent(
    clients: dict[str, SyncASGIClient], datatype: str, data: list[Any], status: int
) -> None:
    # GIVEN the string Identity model WHEN a V2 tensor of this datatype is sent
    body = {"inputs": [{"name": "x", "shape": [3], "datatype": datatype, "data": data}]}
    response = infer(clients["string"], "string", body)
    # THEN exactly the strings sent come back, or a 422 names the input
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["outputs"][0]["data"] == data
    else:
        assert response.json()["field"] == "x"
