"""Open Inference Protocol V2 over the lean ASGI app: JSON tensors, the binary extension, metadata, health."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from modelfn.serving.codecs import deserialize_bytes
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import LABELS, ROOT_DIGEST, expected_linear

X = [[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.25, 2.0]]


def split_binary(body: bytes, header_length: str) -> tuple[dict[str, Any], bytes]:
    n = int(header_length)
    return orjson.loads(body[:n]), body[n:]


def test_json_infer_flat_data_matches_onnxruntime(client: SyncASGIClient) -> None:
    # GIVEN a V2 request with flat row-major data
    request = {"id": "r-1", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": sum(X, [])}]}
    # WHEN it is posted to the infer route
    response = client.post("/v2/models/linear/infer", json=request)
    # THEN every output comes back as JSON with V2 datatypes, shapes and the ONNX values
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model_name"] == "linear" and body["model_version"] == "3" and body["id"] == "r-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    y, label = expected_linear(X)
    assert outputs["y"]["datatype"] == "FP32" and outputs["y"]["shape"] == [2, 3]
    np.testing.assert_allclose(outputs["y"]["data"], y.reshape(-1), rtol=1e-6)
    assert outputs["label"] == {"name": "label", "datatype": "INT64", "shape": [2], "data": label.tolist()}


def test_json_infer_accepts_nested_data_and_integer_values(client: SyncASGIClient) -> None:
    # GIVEN nested integer data for an FP32 input
    ints = [[1, 2, 3, 4]]
    request = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ints}]}
    # WHEN inferred
    response = client.post("/v2/models/linear/infer", json=request)
    # THEN the result equals the float computation
    assert response.status_code == 200, response.text
    y, _ = expected_linear(ints)
    np.testing.assert_allclose(response.json()["outputs"][0]["data"], y.reshape(-1), rtol=1e-6)


def test_outputs_subset_and_versioned_route(client: SyncASGIClient) -> None:
    # GIVEN a request for one output only, on the explicit version route
    request = {
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X}],
        "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
    }
    # WHEN inferred
    response = client.post("/v2/models/linear/versions/3/infer", json=request)
    # THEN only that output is returned
    assert response.status_code == 200, response.text
    assert [o["name"] for o in response.json()["outputs"]] == ["label"]


def test_binary_inputs_and_binary_outputs(client: SyncASGIClient) -> None:
    # GIVEN the binary tensor extension: JSON header, then raw little-endian FP32 bytes
    x = np.asarray(X, dtype=np.float32)
    raw = x.astype("<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    # WHEN it is posted with Inference-Header-Content-Length
    response = client.post(
        "/v2/models/linear/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"},
    )
    # THEN outputs come back binary, located by their binary_data_size, in order
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    meta, blob = split_binary(response.content, response.headers["inference-header-content-length"])
    outputs = meta["outputs"]
    y_size = outputs[0]["parameters"]["binary_data_size"]
    assert [o["name"] for o in outputs] == ["y", "label"] and "data" not in outputs[0]
    y = np.frombuffer(blob[:y_size], dtype="<f4").reshape(outputs[0]["shape"])
    label = np.frombuffer(blob[y_size:], dtype="<i8")
    want_y, want_label = expected_linear(X)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(label, want_label)


def test_per_output_binary_flag_overrides_the_request_default(client: SyncASGIClient) -> None:
    # GIVEN JSON inputs, y requested binary, label requested as JSON
    request = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": X[0]}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "label"}],
    }
    # WHEN inferred
    response = client.post("/v2/models/linear/infer", json=request)
    # THEN y is binary (12 bytes) and label is JSON data
    assert response.status_code == 200, response.text
    meta, blob = split_binary(response.content, response.headers["inference-header-content-length"])
    y_meta, label_meta = meta["outputs"]
    assert y_meta["parameters"] == {"binary_data_size": 12} and len(blob) == 12
    assert label_meta["data"] == expected_linear([X[0]])[1].tolist()


def test_bytes_tensors_in_json_and_binary(echo_client: SyncASGIClient) -> None:
    # GIVEN a string model, once with JSON BYTES data and once with length-prefixed binary BYTES
    words = ["héllo", "", "model"]
    as_json = {"inputs": [{"name": "s", "shape": [3], "datatype": "BYTES", "data": words}]}
    raw = b"".join(struct.pack("<I", len(w.encode())) + w.encode() for w in words)
    header = orjson.dumps(
        {
            "inputs": [{"name": "s", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "s_out", "parameters": {"binary_data": True}}],
        }
    )
    # WHEN both are inferred
    json_response = echo_client.post("/v2/models/echo/infer", json=as_json)
    binary_response = echo_client.post(
        "/v2/models/echo/infer", content=header + raw, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    # THEN both echo the strings, as JSON BYTES and as serialized BYTES respectively
    assert json_response.status_code == 200, json_response.text
    assert json_response.json()["outputs"][0] == {"name": "s_out", "datatype": "BYTES", "shape": [3], "data": words}
    assert binary_response.status_code == 200, binary_response.text
    meta, blob = split_binary(binary_response.content, binary_response.headers["inference-header-content-length"])
    assert meta["outputs"][0]["datatype"] == "BYTES"
    assert deserialize_bytes(memoryview(blob), 3, field="s_out") == words


def test_model_metadata_reports_v2_datatypes_and_shapes(client: SyncASGIClient) -> None:
    # WHEN the metadata routes are read
    plain = client.get("/v2/models/linear")
    versioned = client.get("/v2/models/linear/versions/3")
    # THEN both describe the same schema, dynamic dims as -1
    assert plain.status_code == versioned.status_code == 200
    assert (
        plain.json()
        == versioned.json()
        == {
            "name": "linear",
            "versions": ["3"],
            "platform": "onnxruntime",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [
                {"name": "y", "datatype": "FP32", "shape": [-1, 3]},
                {"name": "label", "datatype": "INT64", "shape": [-1]},
            ],
        }
    )
    assert LABELS  # labels are a /predict feature; V2 metadata does not carry them


def test_health_and_readiness_report_the_verified_identity(client: SyncASGIClient) -> None:
    # WHEN the health routes are read
    live = client.get("/v2/health/live")
    ready = client.get("/v2/health/ready")
    model_ready = client.get("/v2/models/linear/ready")
    server = client.get("/v2")
    # THEN readiness names the verified model: name, version, root digest, verification time
    assert live.status_code == 200 and live.json() == {"live": True}
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "name": "linear",
        "version": 3,
        "root_digest": ROOT_DIGEST,
        "verified_at": "2024-04-09T18:03:49+00:00",
    }
    assert model_ready.status_code == 200 and model_ready.json()["root_digest"] == ROOT_DIGEST
    assert server.json()["name"] == "modelfn" and "binary_tensor_data" in server.json()["extensions"]


def test_head_on_a_get_route_has_no_body(client: SyncASGIClient) -> None:
    # WHEN a load balancer probes with HEAD
    response = client.request("HEAD", "/v2/health/live")
    # THEN the status is the GET status and the body is empty
    assert response.status_code == 200 and response.content == b""
