"""SnapStart runtime hooks of the HTTP handler, run by the Lambda runtime's own hook runner.

The runner is awslambdaric's ``lambda_runtime_hooks_runner`` (what the Python managed runtime
calls when ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``): before-snapshot hooks last-registered
first, after-restore hooks in order. Each run is a fresh interpreter, so the hooks registered by
importing ``modelfn.handlers.http`` are exactly the ones a function would have.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelfn.config import Settings
from modelfn.errors import ModelNotReady
from modelfn.handlers import _snapstart
from modelfn.serving.metrics import Metrics
from modelfn.serving.state import ModelState
from tests.fixtures.bundles import Published, publish
from tests.fixtures.keys import SigningKey

LIFECYCLE = """
import json, logging, random, sys
import boto3
import numpy as np

events = []

class Record(logging.Handler):
    def emit(self, record):
        events.append(["log", record.getMessage().split(":")[0]])

logging.getLogger("modelfn.snapstart").addHandler(Record())
logging.getLogger("modelfn.snapstart").setLevel(logging.INFO)

import modelfn.handlers.http as h  # the init phase: verify, load, register the hooks
from modelfn.handlers import _snapstart
from modelfn.invoke import LocalLambdaContext, http_api_event
from awslambdaric import lambda_runtime_hooks_runner as runner

events.append(["init", h.state.ready])
_snapstart.on_restore(lambda: events.append(["client reset callback", boto3.DEFAULT_SESSION is None]))
boto3.setup_default_session()  # a session created during init, as a cached client would hold
py_state, np_state = random.getstate(), np.random.get_state()
result = {"snapshot_error": None}
try:
    runner.run_before_snapshot()
except Exception as exc:
    result["snapshot_error"] = type(exc).__name__
    result.update(events=events, attempts=h.state.attempts)
    print(json.dumps(result))
    sys.exit(0)
events.append(["snapshot taken", True])
runner.run_after_restore()
events.append(["restored", True])
clone_py, clone_np = random.Random(), np.random.RandomState()
clone_py.setstate(py_state)
clone_np.set_state(np_state)
result["python_draws_differ"] = [random.random() for _ in range(4)] != [clone_py.random() for _ in range(4)]
result["numpy_draws_differ"] = np.random.random(4).tolist() != clone_np.random_sample(4).tolist()
result["boto3_session_dropped"] = boto3.DEFAULT_SESSION is None
response = h.handler(http_api_event(b'{"instances": [[1, 2, 3, 4]]}'), LocalLambdaContext())
result.update(events=events, status=response["statusCode"])
print(json.dumps(result))
"""


def _lifecycle(env: dict[str, str]) -> dict[str, Any]:
    """Run init → before-snapshot hooks → after-restore hooks → one request in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", LIFECYCLE], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


@pytest.mark.slow
def test_hooks_run_in_order_and_the_restored_function_serves(local_published: Published) -> None:
    # GIVEN the HTTP handler's init phase with a good signed model
    # WHEN the runtime takes a snapshot and restores it
    result = _lifecycle(local_published.env)
    # THEN the model was loaded at init, verified and warmed before the snapshot, and after the restore
    # the random state was re-seeded, clients were reset, then the registered callback ran, in that order
    assert result["snapshot_error"] is None
    assert result["events"] == [
        ["init", True],
        ["log", "snapshot"],
        ["snapshot taken", True],
        ["client reset callback", True],
        ["log", "restore"],
        ["restored", True],
    ]
    # AND a restored environment draws numbers the snapshot's generators would not have, and still serves
    assert result["python_draws_differ"] and result["numpy_draws_differ"]
    assert result["boto3_session_dropped"]
    assert result["status"] == 200


@pytest.mark.slow
def test_a_model_that_failed_verification_is_never_snapshotted(local_published: Published) -> None:
    # GIVEN a model modified after signing: the init phase leaves the handler not ready
    path = Path(local_published.settings.store_url) / "tiny" / "1" / "model.onnx"
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    # WHEN the runtime runs the before-snapshot hooks
    result = _lifecycle(local_published.env)
    # THEN the hook tried once more, then raised ModelNotReady (the runtime fails the publish, exit 64)
    assert result["snapshot_error"] == ModelNotReady.__name__
    assert result["attempts"] == 2
    assert ["snapshot taken", True] not in result["events"]


def test_before_snapshot_loads_a_model_published_after_init(
    tmp_path: Path, tiny_bundle_dir: Path, signing_key: SigningKey
) -> None:
    # GIVEN an init phase that found no model (published a moment later)
    store = str(tmp_path / "store")
    settings = Settings(
        store_url=store, model_name="tiny", model_version="1", trusted_keys=(str(signing_key.public_path),), threads=1
    )
    state = ModelState.load(settings, metrics=Metrics())
    assert not state.ready
    publish(tiny_bundle_dir, store, signing_key)
    # WHEN the before-snapshot hook runs
    _snapstart.before_snapshot(state)
    # THEN the snapshot holds the verified model
    assert state.ready and state.require().manifest.name == "tiny"


def test_registration_is_a_no_op_without_the_hooks_library(
    monkeypatch: pytest.MonkeyPatch, local_published: Published
) -> None:
    # GIVEN an install without snapshot_restore_py
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)
    # WHEN the handler registers its hooks
    registered = _snapstart.register(ModelState(local_published.settings))
    # THEN nothing is registered and nothing fails
    assert registered is False


STORAGE_LIFECYCLE = """
import json
import modelfn.handlers.storage_event as h  # the init phase: verify, load, register the hooks
from awslambdaric import lambda_runtime_hooks_runner as runner

h.handler._client = object()  # the S3 client the first invocation would have cached
result = {"ready": h.handler.state.ready, "snapshot_error": None}
try:
    runner.run_before_snapshot()
except Exception as exc:
    result["snapshot_error"] = type(exc).__name__
else:
    runner.run_after_restore()
    result["client_reset"] = h.handler._client is None
print(json.dumps(result))
"""


@pytest.mark.slow
@pytest.mark.parametrize("tampered", [False, True])
def test_storage_event_handler_snapshots_only_a_verified_model_and_reopens_its_client(
    local_published: Published, tmp_path: Path, tampered: bool
) -> None:
    # GIVEN the storage-event handler's init phase, with a good model or one modified after signing
    if tampered:
        path = Path(local_published.settings.store_url) / "tiny" / "1" / "model.onnx"
        path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    env = {**os.environ, **local_published.env, "MODELFN_OUTPUT_URL": str(tmp_path / "out")}
    # WHEN the runtime runs the before-snapshot hooks, then (if the snapshot was taken) the after-restore hooks
    out = subprocess.run(
        [sys.executable, "-c", STORAGE_LIFECYCLE], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    # THEN a verified model is snapshotted and the cached S3 client is dropped on restore; a tampered one never is
    if tampered:
        assert result["ready"] is False and result["snapshot_error"] == ModelNotReady.__name__
    else:
        assert result == {"ready": True, "snapshot_error": None, "client_reset": True}
