"""``modelfn serve`` (the container entry point) against a bundle on S3 (moto_server), as a real subprocess.

The local-store cases live in tests/test_container_failed_node.py; here the same ``Serve`` process
reads its model through boto3 from moto_server: it becomes ready with the signed identity, serves a
prediction, answers a malformed header with 400 over real HTTP, and with a tampered S3 object it stays
not ready (503 + Retry-After) and refuses predictions (SECURITY.md rules 15, 17, 20).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from modelfn.signing.verify import verify_directory
from tests.fixtures.bundles import Published
from tests.fixtures.keys import SigningKey
from tests.fixtures.models import tiny_onnx_expected
from tests.test_container_failed_node import Serve

pytestmark = pytest.mark.slow


@pytest.fixture
def nodes() -> Iterator[list[Serve]]:
    """``modelfn serve`` processes started by the test, stopped at its end."""
    started: list[Serve] = []
    yield started
    for node in started:
        node.stop()


def _post(node: Serve, path: str, body: bytes, headers: dict[str, bytes]) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 POST (header values sent as the bytes given, as a client on the wire can)."""
    lines = [f"POST {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{node.port}".encode(), b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in {**headers, "Content-Length": b"%d" % len(body)}.items()]
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), parsed, payload


def _wait_ready(node: Serve, want: int, *, reason: str = "", deadline_s: float = 60.0) -> dict[str, object]:
    """Poll /v2/health/ready until it answers ``want`` (and, for 503, names ``reason``); its JSON body."""
    deadline = time.monotonic() + deadline_s
    answer = None
    while time.monotonic() < deadline:
        answer = node.get("/v2/health/ready")
        if answer is not None and answer[0] == want and reason in answer[2].decode():
            body: dict[str, object] = json.loads(answer[2])
            return body
        assert node.proc.poll() is None, node.output()
        time.sleep(0.1)
    raise AssertionError(f"readiness never became {want} ({reason}): {answer}\n{node.output()}")


def test_serve_loads_from_s3_is_ready_predicts_and_refuses_a_malformed_header(
    s3_published: Published, signing_key: SigningKey, tmp_path: Path, nodes: list[Serve]
) -> None:
    # GIVEN the tiny model signed and pushed to a bucket on moto_server (AWS_* point boto3 at it)
    signed_root = verify_directory(s3_published.bundle_dir, signing_key.trust).statement.root_digest
    # WHEN modelfn serve starts against it
    node = Serve({**s3_published.env, "MODELFN_LOAD_RETRIES": "0"}, tmp_path / "serve.log")
    nodes.append(node)
    node.wait_live()
    # THEN it becomes ready with the verified identity and the signed root digest
    health = _wait_ready(node, 200)
    assert (health["name"], health["version"], health["root_digest"]) == ("tiny", 1, signed_root)
    # AND it serves a prediction equal to the model's own arithmetic
    status, _, body = _post(node, "/predict", b'{"instances": [[1, 2, 3, 4]]}', {"Content-Type": b"application/json"})
    assert status == 200, body
    expected = tiny_onnx_expected(np.array([[1, 2, 3, 4]], dtype=np.float32))
    np.testing.assert_allclose(json.loads(body)["predictions"], expected, rtol=1e-6)
    # AND an Inference-Header-Content-Length of "²" (latin-1 0xB2) over the wire is a 400 naming it, not a 500
    infer = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}'
    status, _, body = _post(node, "/v2/models/tiny/infer", infer, {"Inference-Header-Content-Length": b"\xb2"})
    assert status == 400, body
    assert json.loads(body)["field"] == "Inference-Header-Content-Length"


def test_serve_with_a_tampered_s3_object_is_not_ready_and_refuses_predictions(
    s3_published: Published, tmp_path: Path, nodes: list[Serve]
) -> None:
    # GIVEN one bit of model.onnx flipped in the bucket after signing
    bucket = s3_published.settings.store_url.split("/")[2]
    s3 = boto3.client("s3")
    key = "models/tiny/1/model.onnx"
    data = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    # WHEN modelfn serve starts (one retry after a long backoff, so it stays up while we look)
    env = {**s3_published.env, "MODELFN_LOAD_RETRIES": "1", "MODELFN_LOAD_BACKOFF_S": "60"}
    node = Serve(env, tmp_path / "serve.log")
    nodes.append(node)
    node.wait_live()
    # THEN readiness is 503 + Retry-After naming the integrity failure
    body = _wait_ready(node, 503, reason="(integrity)")
    assert body["code"] == "model_not_ready"
    ready = node.get("/v2/health/ready")
    assert ready is not None and int(ready[1]["retry-after"]) >= 1
    # AND predictions are refused with 503 as well, while liveness holds
    status, headers, _ = _post(node, "/predict", b'{"instances": [[1, 2, 3, 4]]}', {})
    assert status == 503 and int(headers["retry-after"]) >= 1
    live = node.get("/v2/health/live")
    assert live is not None and live[0] == 200
