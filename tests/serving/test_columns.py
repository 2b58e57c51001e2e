"""``[?, 1]`` inputs (one per column, as Spark bundles have them) take columns the way people send them.

TF Serving row objects carry one scalar per input (``{"instances": [{"age": 15.0, ...}]}``) and
named inputs are often plain lists (``{"inputs": {"age": [1.0, 2.0]}}``); both mean an ``(n, 1)``
column. The reshaping lives in the shared schema check, so /predict, V2 and batch scoring agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from modelfn.bundle.manifest import TensorSpec
from modelfn.errors import UnprocessableInput
from modelfn.loader import LoadedBundle
from modelfn.runtime.onnx_session import OnnxModel
from modelfn.serving.asgi import create_app
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import ROOT_DIGEST, VERIFIED_AT, manifest, served

ROWS = [{"age": 1.5, "color": "red"}, {"age": -2.0, "color": "blue"}]
WANT_DOUBLED = [[3.0], [-4.0]]
WANT_COLOR = [["red"], ["blue"]]


def _columns_onnx() -> bytes:
    """``doubled = age * 2`` (float32 [N, 1]) and ``color_out = color`` (string [N, 1])."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["age", "two"], ["doubled"]), helper.make_node("Identity", ["color"], ["color_out"])],
        "columns",
        [
            helper.make_tensor_value_info("age", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("color", TensorProto.STRING, ["N", 1]),
        ],
        [
            helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("color_out", TensorProto.STRING, ["N", 1]),
        ],
        [numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")],
    )
    return bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()
    )


@pytest.fixture(scope="module")
def columns() -> LoadedBundle:
    spec = manifest(
        "columns",
        [
            TensorSpec(name="age", dtype="float32", shape=[-1, 1]),
            TensorSpec(name="color", dtype="string", shape=[-1, 1]),
        ],
        [
            TensorSpec(name="doubled", dtype="float32", shape=[-1, 1]),
            TensorSpec(name="color_out", dtype="string", shape=[-1, 1]),
        ],
    )
    model = OnnxModel(_columns_onnx(), spec, threads=1, providers=["CPUExecutionProvider"])
    return LoadedBundle(manifest=spec, model=model, root_digest=ROOT_DIGEST, key_hint="k", verified_at=VERIFIED_AT)


@pytest.fixture
def client(columns: LoadedBundle) -> Iterator[SyncASGIClient]:
    client = SyncASGIClient(create_app(served(columns)))
    yield client
    client.close()


@pytest.mark.parametrize(
    "body",
    [
        {"instances": ROWS},  # TF Serving row objects, one scalar per column
        {"instances": [{"age": [1.5], "color": ["red"]}, {"age": [-2.0], "color": ["blue"]}]},  # [v] per row
        {"inputs": {"age": [1.5, -2.0], "color": ["red", "blue"]}},  # 1-D columns
        {"inputs": {"age": [[1.5], [-2.0]], "color": [["red"], ["blue"]]}},  # (n, 1) columns
    ],
    ids=["row-scalars", "row-lists", "1d-columns", "2d-columns"],
)
def test_predict_takes_columns_in_every_common_form(client: SyncASGIClient, body: dict[str, Any]) -> None:
    # GIVEN a model with one [?, 1] input per column (a float and a string column)
    # WHEN /predict is called with the columns in one of the forms people send
    response = client.post("/predict", json=body)
    # THEN each form gives the same answer
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == {"doubled": WANT_DOUBLED, "color_out": WANT_COLOR}


def test_v2_takes_one_dimensional_columns(client: SyncASGIClient) -> None:
    # GIVEN V2 tensors shaped [n] for [?, 1] inputs
    tensors = [
        {"name": "age", "shape": [2], "datatype": "FP32", "data": [1.5, -2.0]},
        {"name": "color", "shape": [2], "datatype": "BYTES", "data": ["red", "blue"]},
    ]
    # WHEN inferred
    response = client.post("/v2/models/columns/infer", json={"inputs": tensors})
    # THEN they are read as (n, 1) columns
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["doubled"]["shape"] == [2, 1] and outputs["doubled"]["data"] == [3.0, -4.0]
    assert outputs["color_out"]["data"] == ["red", "blue"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": {"age": [[1.5, 2.0], [3.0, 4.0]], "color": ["red", "blue"]}}, "age"),  # two values per row
        ({"instances": [{"age": 1.5, "color": 7}, {"age": 2.0, "color": 8}]}, "color"),  # numbers for strings
        ({"inputs": {"age": [[[1.5]], [[2.0]]], "color": ["red", "blue"]}}, "age"),  # too many dims
    ],
)
def test_columns_that_do_not_fit_are_422_naming_the_input(
    client: SyncASGIClient, body: dict[str, Any], field: str
) -> None:
    # GIVEN a column of the wrong width, dtype or rank WHEN posted
    response = client.post("/predict", json=body)
    # THEN it is a 422 naming the input, never a 500
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_batch_scoring_path_takes_one_dimensional_columns(columns: LoadedBundle) -> None:
    # GIVEN the model as batch scoring calls it (arrays by input name, no HTTP codec)
    feeds = {"age": np.array([1.5, -2.0], dtype=np.float32), "color": np.array(["red", "blue"], dtype=object)}
    # WHEN predicted on 1-D columns
    out = columns.model.predict(feeds)
    # THEN the result is the (n, 1) answer; a (n, 2) column is still refused naming it
    np.testing.assert_array_equal(out["doubled"], np.array(WANT_DOUBLED, dtype=np.float32))
    with pytest.raises(UnprocessableInput) as info:
        columns.model.predict({**feeds, "age": np.ones((2, 2), dtype=np.float32)})
    assert info.value.field == "age"
