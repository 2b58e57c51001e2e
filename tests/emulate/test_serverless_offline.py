"""The root serverless.yml run locally: serverless-offline serving HTTP, and `osls invoke local` on an S3 event.

serverless-offline starts ``python3 -u invoke.py modelfn.handlers.http handler`` from ``$VIRTUAL_ENV/bin``
(our venv), with the function's environment from serverless.yml: the model comes from a local store
named by ``MODELFN_OFFLINE_STORE_URL``. Requests are real HTTP on free 127.0.0.1 ports.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from modelfn.emulate.lambda_rie import free_port
from tests.emulate.osls import REPO, osls_command, osls_env, run_osls, tiny_artifact
from tests.emulate.test_storage_invoke import ROWS, put_rows, read_npz
from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected

pytestmark = pytest.mark.slow
X = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0]]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _request(url: str, body: dict[str, Any] | bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def offline(local_published: Published, tmp_path: Path) -> Iterator[str]:
    """`osls offline start` on free 127.0.0.1 ports, serving the published model; stopped with its process group."""
    env = osls_env(tmp_path / "home", {
        "MODELFN_OFFLINE_STORE_URL": local_published.settings.store_url,
        "MODELFN_MODEL_NAME": local_published.name,
        "MODELFN_MODEL_VERSION": str(local_published.version),
        "MODELFN_TRUSTED_KEYS": local_published.settings.trusted_keys[0],
        "MODELFN_LAMBDA_ZIP": str(tiny_artifact(tmp_path / "dist")),  # serverless-offline unpacks the artifact
    })  # fmt: skip
    log = tmp_path / "offline.log"
    proc, url = _start_offline(env, log)
    try:
        yield url
    finally:
        _stop(proc)


def _start_offline(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start serverless-offline on free ports and wait until it answers; retry when a port was taken meanwhile."""
    for _ in range(3):
        http_port, lambda_port = free_port(), free_port()
        # --noAuth: the routes are IAM-authorized (the platform's auth), which serverless-offline cannot emulate
        command = osls_command("offline", "start", "--noAuth", "--host", "127.0.0.1", "--httpPort", str(http_port),
                               "--lambdaPort", str(lambda_port))  # fmt: skip
        with log.open("ab") as sink:
            proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if _listening(http_port) and _listening(lambda_port):
                return proc, f"http://127.0.0.1:{http_port}"
            time.sleep(0.2)
        _stop(proc)
    raise AssertionError(f"serverless-offline did not start:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop serverless-offline and the Python handler processes it started (one process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def test_http_routes_through_serverless_offline(offline: str, local_published: Published) -> None:
    expected = tiny_onnx_expected(np.array(X, dtype=np.float32))
    # GIVEN serverless-offline running the HTTP function from serverless.yml
    # WHEN a client posts to /predict, THEN the verified model answers
    status, body = _request(f"{offline}/predict", {"instances": X})
    assert status == 200 and "predictions" in body, body
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-5, atol=1e-6)
    # AND the Open Inference Protocol V2 routes work through the HTTP API v2 path parameters
    status, meta = _request(f"{offline}/v2/models/{local_published.name}")
    assert status == 200 and meta["name"] == local_published.name
    v2 = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": sum(X, [])}]}
    status, body = _request(f"{offline}/v2/models/{local_published.name}/versions/1/infer", v2)
    assert status == 200, body
    [output] = body["outputs"]
    np.testing.assert_allclose(np.reshape(output["data"], output["shape"]), expected, rtol=1e-5, atol=1e-6)
    # AND bad input is a 4xx naming the problem, not a crash
    status, body = _request(f"{offline}/predict", b"{not json")
    assert status == 400 and "error" in body


def test_invoke_local_runs_the_storage_function_on_an_s3_event(
    s3_published: Published, s3_bucket: str, tmp_path: Path
) -> None:
    # GIVEN an input object in the trigger prefix and an S3 event for it from `modelfn event s3 --lookup`
    key = "incoming/batch.npy"
    put_rows(s3_bucket, key)
    event_file = tmp_path / "s3.json"
    subprocess.run([str(Path(os.sys.executable).parent / "modelfn"), "event", "s3", "--bucket", s3_bucket,
                    "--key", key, "--lookup", "--out", str(event_file)], check=True, timeout=60)  # fmt: skip
    # WHEN `osls invoke local` runs the storage function with it (model, trigger and output all on moto_server)
    params = {"modelBucket": s3_bucket, "modelPrefix": "models", "triggerBucket": s3_bucket,
              "triggerPrefix": "incoming/", "outputBucket": s3_bucket, "outputPrefix": "results"}  # fmt: skip
    env = osls_env(tmp_path / "home", {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "MODELFN_MODEL_NAME": s3_published.name,
        "MODELFN_TRUSTED_KEYS": s3_published.settings.trusted_keys[0],
    })  # fmt: skip
    done = run_osls("invoke", "local", "-f", "storage", "-p", str(event_file),
                    *[f"--param={k}={v}" for k, v in params.items()], env=env)  # fmt: skip
    # THEN the function reports the scored object and the predictions are under the output prefix
    assert f"s3://{s3_bucket}/results/" in done.stdout, done.stdout
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="results/")["Contents"]
    [output] = [obj["Key"] for obj in listed if obj["Key"].endswith(".npz")]
    np.testing.assert_allclose(read_npz(s3_bucket, output)["y"], tiny_onnx_expected(ROWS), rtol=1e-5, atol=1e-6)
