"""Custom-code bundles: packaged with a parity report, served only when allowed, never from unverified bytes.

The module under test writes one line to a marker file each time its body executes, so a test can
prove that a refused bundle's code never ran (not at import, not in ``load``).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelfn.adapters.custom_code import CustomCodeAdapter
from modelfn.adapters.registry import detect
from modelfn.bundle.manifest import Manifest
from modelfn.errors import IntegrityError, PackagingError, ParityError, PolicyError, UnsafeBundleError
from modelfn.loader import load_bundle
from modelfn.packaging import package
from tests.fixtures.bundles import Published, publish, serve
from tests.fixtures.keys import SigningKey

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = ["neg", "zero", "pos"]

MODULE = '''
"""Standardize with stored mean/std, a linear layer, softmax and the top class."""
from __future__ import annotations

import numpy as np

MARKER = "@MARKER@"
with open(MARKER, "a") as fh:
    fh.write("executed\\n")


def load(files):
    return files.load_npz("weights.npz")


def predict(state, inputs):
    z = (inputs["features"] - state["mean"]) / state["std"]
    logits = z @ state["w"] + state["b"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return {"probabilities": proba, "top": proba.argmax(axis=1).astype(np.int64)}
'''


def _weights(seed: int = 0) -> dict[str, npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    arrays = {
        "mean": rng.normal(5, 1, 4),
        "std": rng.uniform(0.5, 2, 4),
        "w": rng.normal(0, 1, (4, 3)),
        "b": rng.normal(0, 1, 3),
    }
    return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def _reference(x: npt.NDArray[Any], weights: dict[str, npt.NDArray[np.float32]]) -> npt.NDArray[np.float64]:
    """The same model in float64 numpy, written independently of the module."""
    logits = ((x - weights["mean"]) / weights["std"]) @ weights["w"] + weights["b"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def _write_source(root: Path, marker: Path, module: str = MODULE, extra: dict[str, bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(textwrap.dedent(module).replace("@MARKER@", str(marker)))
    weights: dict[str, Any] = _weights()
    np.savez(root / "weights.npz", **weights)
    for name, blob in (extra or {}).items():
        (root / name).write_bytes(blob)
    return root


def _runs(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "executed.txt"


@pytest.fixture
def source(tmp_path: Path, marker: Path) -> Path:
    return _write_source(tmp_path / "src", marker)


@pytest.fixture
def sample() -> npt.NDArray[np.float32]:
    return np.random.default_rng(1).normal(5, 2, (6, 4)).astype(np.float32)


@pytest.fixture
def published(tmp_path: Path, source: Path, sample: npt.NDArray[np.float32], signing_key: SigningKey) -> Published:
    package(source, {"features": sample}, tmp_path / "bundle", name="scaled", options={"labels": ",".join(LABELS)})
    return publish(tmp_path / "bundle", str(tmp_path / "store"), signing_key)


def test_package_sign_push_serve_end_to_end(
    tmp_path: Path, source: Path, sample: npt.NDArray[np.float32], signing_key: SigningKey, marker: Path
) -> None:
    # GIVEN a directory with model.py and weights.npz (framework detected from the layout)
    # WHEN it is packaged
    out = tmp_path / "bundle"
    manifest = package(source, {"features": sample}, out, name="scaled", options={"labels": LABELS})
    # THEN the bundle holds the module and its data unchanged, with a python-runtime manifest
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.py", "weights.npz"]
    assert (out / "model.py").read_bytes() == (source / "model.py").read_bytes()
    assert manifest.runtime == "python" and manifest.artifact == "model.py" and manifest.framework.name == "custom"
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [("features", "float32", [-1, 4])]
    assert [(t.name, t.dtype, t.shape) for t in manifest.outputs] == [
        ("probabilities", "float32", [-1, 3]),
        ("top", "int64", [-1]),
    ]
    assert manifest.labels == LABELS and manifest.preprocessing is not None and "softmax" in manifest.preprocessing
    # AND the parity report (build-time run vs the served path) is in the manifest on disk
    parity = Manifest.from_json((out / "manifest.json").read_bytes()).parity
    assert parity is not None and parity == manifest.parity
    assert parity.samples == 6 and parity.max_abs_diff == 0.0 and parity.label_agreement == 1.0
    runs_after_build = _runs(marker)
    # WHEN it is signed, pushed and served with custom code allowed
    published = publish(out, str(tmp_path / "store"), signing_key)
    client = serve(published.settings.replace(allow_custom_code=True))
    try:
        simple = client.post("/predict", json={"instances": sample.tolist(), "return_labels": True})
        v2 = client.post(
            "/v2/models/scaled/infer",
            json={
                "inputs": [{"name": "features", "datatype": "FP32", "shape": [6, 4], "data": sample.ravel().tolist()}]
            },
        )
    finally:
        client.close()
    # THEN the module ran once more (at load), and both protocols answer like the native computation
    assert _runs(marker) == runs_after_build + 1
    assert simple.status_code == 200 and v2.status_code == 200, (simple.text, v2.text)
    want = _reference(sample, _weights())
    body = simple.json()
    np.testing.assert_allclose(body["predictions"]["probabilities"], want, atol=parity.atol, rtol=parity.rtol)
    assert body["predictions"]["top"] == want.argmax(axis=1).tolist()
    assert body["labels"] == [LABELS[i] for i in want.argmax(axis=1)]
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    got = np.asarray(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
    np.testing.assert_allclose(got, want, atol=parity.atol, rtol=parity.rtol)


def test_refused_before_import_unless_allowed(published: Published, marker: Path) -> None:
    # GIVEN a signed custom-code bundle from a trusted key, and the module's run count so far
    runs = _runs(marker)
    # WHEN it is loaded with allow_custom_code off (the default)
    with pytest.raises(PolicyError, match="MODELFN_ALLOW_CUSTOM_CODE=true") as info:
        load_bundle(published.settings)
    # THEN the refusal names the setting and the module body never ran
    assert info.value.field == "allow_custom_code" and info.value.status_code == 503
    assert _runs(marker) == runs
    # AND the served app is not ready (503 + Retry-After) instead of serving anything
    from modelfn.serving.asgi import create_app
    from modelfn.serving.state import ModelState
    from tests.serving.asgi_client import SyncASGIClient

    client = SyncASGIClient(create_app(ModelState.load(published.settings)))
    try:
        ready = client.get("/v2/health/ready")
        predict = client.post("/predict", json={"instances": [[1, 2, 3, 4]]})
    finally:
        client.close()
    assert ready.status_code == 503 and "retry-after" in ready.headers and predict.status_code == 503
    assert _runs(marker) == runs
    # WHEN the setting is on (as MODELFN_ALLOW_CUSTOM_CODE would set it)
    allowed = published.settings.replace(allow_custom_code="true")
    bundle = load_bundle(allowed)
    # THEN it loads, and the module ran exactly once
    assert bundle.manifest.runtime == "python" and _runs(marker) == runs + 1


def test_tampered_module_is_refused_before_it_runs(published: Published, marker: Path) -> None:
    # GIVEN a published bundle whose model.py was changed in the store after signing
    stored = Path(published.settings.store_url) / "scaled" / "1" / "model.py"
    stored.write_bytes(stored.read_bytes().replace(b"softmax", b"softmix"))
    runs = _runs(marker)
    # WHEN it is loaded with custom code allowed
    with pytest.raises(IntegrityError) as info:
        load_bundle(published.settings.replace(allow_custom_code=True))
    # THEN the integrity error names the file, and the changed code never ran
    assert info.value.field == "model.py"
    assert _runs(marker) == runs


def test_pickle_is_refused_at_signing_and_at_load(published: Published, signing_key: SigningKey, marker: Path) -> None:
    from modelfn.signing.sign import sign_bundle

    # GIVEN a pickle file added to a packaged custom bundle
    (published.bundle_dir / "weights.pkl").write_bytes(pickle.dumps({"w": 1}))
    # WHEN it is signed
    # THEN signing refuses it
    with pytest.raises(UnsafeBundleError, match="weights.pkl is a pickle-family file"):
        sign_bundle(published.bundle_dir, signing_key.signer, name="scaled", version=1)
    # GIVEN a pickle file slipped into the store beside a signed custom bundle
    stored = Path(published.settings.store_url) / "scaled" / "1"
    (stored / "weights.pkl").write_bytes(pickle.dumps({"w": 1}))
    runs = _runs(marker)
    # WHEN it is loaded with custom code allowed
    # THEN the loader refuses it by name, before any module code runs
    with pytest.raises(UnsafeBundleError, match="weights.pkl is a pickle-family file"):
        load_bundle(published.settings.replace(allow_custom_code=True))
    assert _runs(marker) == runs


@pytest.mark.parametrize(
    ("name", "blob", "message"),
    [
        ("weights.pkl", pickle.dumps({"w": 1}), "is pickle"),
        ("weights.npy", pickle.dumps([1.0]), "is pickle"),
        ("objects.npy", b"", "not a valid .npy"),
        ("helpers.py", b"x = 1\n", "one module"),
        ("weights.bin", b"\x00" * 8, "data files must be one of"),
        ("manifest.json", b"{}", "reserved"),
    ],
)
def test_unsafe_data_files_are_refused_at_build(
    tmp_path: Path, marker: Path, sample: npt.NDArray[np.float32], name: str, blob: bytes, message: str
) -> None:
    # GIVEN a source directory with one file that must not enter a bundle
    if name == "objects.npy":
        np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        blob = (tmp_path / "objects.npy").read_bytes()
    root = _write_source(tmp_path / "src", marker, extra={name: blob})
    # WHEN it is packaged, even with allow_pickle
    with pytest.raises(PackagingError, match=message):
        package(root, {"features": sample}, tmp_path / "b", name="bad", framework="custom", allow_pickle=True)
    # THEN nothing is written and the module never ran
    assert not (tmp_path / "b").exists() and _runs(marker) == 0


def test_schema_json_declares_the_schema_and_a_sample_is_synthesized(tmp_path: Path, marker: Path) -> None:
    # GIVEN a schema.json with inputs and outputs, and no sample
    schema = {
        "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, 4]}],
        "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [-1, 3]}],
        "labels": LABELS,
    }
    root = _write_source(tmp_path / "src", marker, extra={"schema.json": json.dumps(schema).encode()})
    # WHEN it is packaged
    manifest = package(root, None, tmp_path / "b", name="declared", framework="custom")
    # THEN the manifest follows the schema (only the declared output), and schema.json is not bundled
    assert [t.name for t in manifest.outputs] == ["probabilities"] and manifest.labels == LABELS
    assert manifest.parity is not None and manifest.parity.samples == 2
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["manifest.json", "model.py", "weights.npz"]


def test_schema_option_as_a_path_string_and_a_lossy_schema(
    tmp_path: Path, source: Path, sample: npt.NDArray[np.float32]
) -> None:
    # GIVEN a schema file (passed as a CLI-style string) that declares an integer output for float probabilities
    lossy = tmp_path / "lossy.json"
    lossy.write_text(json.dumps({"outputs": [{"name": "probabilities", "dtype": "int64", "shape": [-1, 3]}]}))
    # WHEN it is packaged
    # THEN the served path refuses the output, naming it
    with pytest.raises(PackagingError, match="'probabilities' has dtype float32, the manifest declares int64"):
        package(source, {"features": sample}, tmp_path / "b", name="lossy", options={"schema": str(lossy)})


def test_nondeterministic_code_fails_parity(tmp_path: Path, marker: Path, sample: npt.NDArray[np.float32]) -> None:
    # GIVEN a module whose predictions change from run to run
    noisy = MODULE.replace('return {"probabilities": proba', 'return {"probabilities": proba + np.random.rand()')
    root = _write_source(tmp_path / "src", marker, module=noisy)
    # WHEN it is packaged
    # THEN parity (build-time run vs served path) fails on the probabilities
    with pytest.raises(ParityError, match="output 'probabilities'"):
        package(root, {"features": sample}, tmp_path / "b", name="noisy")


def test_detection_and_options(tmp_path: Path, source: Path) -> None:
    # GIVEN a custom-code directory, a directory without model.py, and model.py itself
    empty = tmp_path / "empty"
    empty.mkdir()
    # WHEN / THEN only the directory with model.py is detected as custom code
    assert isinstance(detect(source), CustomCodeAdapter)
    assert not CustomCodeAdapter.detects(empty) and not CustomCodeAdapter.detects(source / "model.py")
    with pytest.raises(PackagingError, match="supported frameworks: .*custom"):
        detect(empty)
    # AND options arrive as strings (CLI --option) or values, and bad ones name the option
    assert CustomCodeAdapter(labels="a, b,c").labels == ["a", "b", "c"]
    with pytest.raises(PackagingError) as info:
        CustomCodeAdapter(labels=[1.5])  # type: ignore[list-item]
    assert info.value.field == "labels"
    with pytest.raises(PackagingError) as info:
        detect(source, options={"unknown": "1"})
    assert info.value.field == "option"


def test_cli_packages_a_directory(tmp_path: Path, source: Path, sample: npt.NDArray[np.float32]) -> None:
    from typer.testing import CliRunner

    from modelfn.cli import app

    # GIVEN the source directory and a sample saved as .npz by input name
    np.savez(tmp_path / "sample.npz", features=sample)
    args = ["package", str(source), "--framework", "custom", "--name", "cli", "--sample", str(tmp_path / "sample.npz")]
    # WHEN `modelfn package DIR --framework custom` runs
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b")], catch_exceptions=False)
    # THEN it reports the package and parity, and the bundle is a python-runtime one
    assert result.exit_code == 0, result.output
    assert "packaged cli v1 (custom)" in result.output and "max abs diff 0" in result.output
    assert Manifest.from_json((tmp_path / "b" / "manifest.json").read_bytes()).runtime == "python"


def test_serving_imports_no_build_time_code(published: Published) -> None:
    # GIVEN a fresh interpreter configured (by environment) for the custom bundle, custom code allowed
    env = {**os.environ, **published.env, "MODELFN_ALLOW_CUSTOM_CODE": "true"}
    env.pop("MODELFN_CONFIG", None)
    code = textwrap.dedent(
        """
        import json, sys
        path = list(sys.path)
        import modelfn.handlers.http as h
        from tests.handlers.events import LambdaContext, http_event
        body = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]}).encode()
        event = http_event("http_api_v2", "POST", "/predict", body, headers={"content-type": "application/json"})
        response = h.handler(event, LambdaContext())
        build = sorted(m for m in sys.modules if m.startswith("modelfn.adapters") or m in ("onnx", "sklearn", "torch"))
        print(json.dumps({"status": response["statusCode"], "build": build, "path_same": sys.path == path}))
        """
    )
    # WHEN the Lambda handler is imported and serves one request
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # THEN it answered, without importing any adapter or converter, and sys.path is untouched
    assert out == {"status": 200, "build": [], "path_same": True}


@pytest.mark.slow
def test_example_trains_and_packages(tmp_path: Path) -> None:
    # GIVEN the custom-code example
    script = REPO_ROOT / "examples" / "custom" / "train_and_package.py"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # WHEN it runs
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], env=env, capture_output=True, text=True, check=False
    )
    # THEN it packages a python-runtime bundle with perfect parity and prints the serve steps
    assert result.returncode == 0, result.stderr
    assert "served prediction: {'predictions'" in result.stdout  # signed, pushed, served
    assert "packaged blobs v1: max abs diff 0" in result.stdout and "MODELFN_ALLOW_CUSTOM_CODE=true" in result.stdout
    manifest = Manifest.from_json((tmp_path / "bundle" / "manifest.json").read_bytes())
    assert manifest.runtime == "python" and [t.name for t in manifest.outputs] == [
        "probabilities",
        "top_k",
        "top_labels",
    ]
