"""The CLI end to end: keygen → package → sign → verify → push → pull → invoke, and the quickstart.

Commands run in-process through Typer's runner (same code path as the console script); the
quickstart runs as a real subprocess of the installed ``modelfn`` script, as the README shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from modelfn.cli import app
from tests.fixtures.models import tiny_onnx_expected

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def run_failing(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 2, result.output
    return result.output


@pytest.fixture
def signed_bundle(tmp_path: Path, tiny_onnx_path: Path) -> tuple[Path, Path]:
    """A bundle packaged and signed through the CLI; returns (bundle dir, public key)."""
    keys = tmp_path / "keys"
    run("keygen", "--out", str(keys))
    bundle = tmp_path / "bundle"
    out = run("package", str(tiny_onnx_path), "--out", str(bundle), "--name", "tiny")
    assert "packaged tiny v1 (onnx)" in out
    run("sign", str(bundle), "--key", str(keys / "signing.key"))
    return bundle, keys / "signing.pub"


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    run("keygen", "--out", str(tmp_path))
    assert oct((tmp_path / "signing.key").stat().st_mode & 0o777) == "0o600"
    assert "exist" in run_failing("keygen", "--out", str(tmp_path))
    run("keygen", "--out", str(tmp_path), "--force")


def test_verify_lists_signed_files_and_refuses_tampering(signed_bundle: tuple[Path, Path]) -> None:
    bundle, public = signed_bundle
    out = run("verify", str(bundle), "--trust", str(public))
    assert out.startswith("OK tiny v1") and "model.onnx" in out and "manifest.json" in out
    # WHEN one byte of the model changes THEN verify fails naming the file
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\x01")
    assert "model.onnx" in run_failing("verify", str(bundle), "--trust", str(public))


def test_push_pull_and_invoke_on_the_local_store(signed_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, public = signed_bundle
    store = tmp_path / "store"
    assert "pushed tiny v1" in run("push", str(bundle), "--store", str(store))
    # pushing the same version again is refused (versions are immutable)
    assert "immutable" in run_failing("push", str(bundle), "--store", str(store))
    pulled = tmp_path / "pulled"
    run("pull", "tiny", "--out", str(pulled), "--store", str(store))
    assert run("verify", str(pulled), "--trust", str(public)).startswith("OK tiny v1")
    # invoke drives the Lambda handler in-process with an HTTP API v2 event
    x = [[0.1, 0.2, 0.3, 0.4]]
    out = run("invoke", "--model", "tiny", "--store", str(store), "--trust", str(public),
              "--data", json.dumps({"instances": x}))  # fmt: skip
    response = json.loads(out)
    assert response["statusCode"] == 200
    np.testing.assert_allclose(
        response["body"]["predictions"], tiny_onnx_expected(np.array(x, np.float32)), rtol=1e-5, atol=1e-6
    )


def test_invoke_replays_a_stored_event(signed_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, public = signed_bundle
    store = tmp_path / "store"
    run("push", str(bundle), "--store", str(store))
    event = Path(__file__).parent / "events" / "alb.json"
    out = json.loads(run("invoke", "--model", "tiny", "--store", str(store), "--trust", str(public),
                         "--event", str(event)))  # fmt: skip
    # the stored ALB event POSTs one instance to /predict
    assert out["statusCode"] == 200
    expected = tiny_onnx_expected(np.array([[1.0, 2.0, 3.0, 4.0]], np.float32))
    np.testing.assert_allclose(out["body"]["predictions"], expected, rtol=1e-5, atol=1e-6)


def test_invoke_against_an_untrusted_store_is_503(signed_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, _ = signed_bundle
    store = tmp_path / "store"
    run("push", str(bundle), "--store", str(store))
    other = tmp_path / "other"
    run("keygen", "--out", str(other))
    out = json.loads(run("invoke", "--model", "tiny", "--store", str(store), "--trust", str(other / "signing.pub"),
                         "--data", '{"instances": [[1, 2, 3, 4]]}'))  # fmt: skip
    assert out["statusCode"] == 503


@pytest.mark.slow
def test_push_to_s3(signed_bundle: tuple[Path, Path], s3_bucket: str, tmp_path: Path) -> None:
    bundle, public = signed_bundle
    url = f"s3://{s3_bucket}/models"
    assert f"{url}/tiny/1/" in run("push", str(bundle), "--store", url)
    pulled = tmp_path / "from-s3"
    run("pull", "tiny", "--out", str(pulled), "--store", url)
    assert sorted(p.name for p in pulled.iterdir()) == ["manifest.json", "model.onnx", "model.sig"]


def test_unknown_store_scheme_is_a_clear_error(signed_bundle: tuple[Path, Path]) -> None:
    bundle, _ = signed_bundle
    assert "s3://" in run_failing("push", str(bundle), "--store", "gs://bucket/x")


def test_help_explains_every_command() -> None:
    out = run("--help")
    for command in ("keygen", "package", "sign", "verify", "push", "pull", "serve", "invoke", "quickstart"):
        assert command in out
    assert "--allow-pickle" in run("package", "--help")


@pytest.mark.slow
@pytest.mark.framework
def test_quickstart_runs_on_a_fresh_directory(tmp_path: Path) -> None:
    # GIVEN the installed console script and an empty working directory
    script = shutil.which("modelfn", path=os.path.dirname(sys.executable))
    assert script, "the modelfn console script is not installed"
    # WHEN the quickstart runs twice (the second run publishes version 2)
    for expected_version in (1, 2):
        done = subprocess.run([script, "quickstart", "--once", "--port", "0"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=180)  # fmt: skip
        # THEN it trains, packages, signs, pushes, serves and prints a prediction and a curl line
        assert done.returncode == 0, done.stderr + done.stdout
        assert f"iris v{expected_version}" in done.stdout
        assert "first prediction:" in done.stdout and '"predictions"' in done.stdout
        assert "curl -s http://127.0.0.1:" in done.stdout
    assert (tmp_path / ".modelfn" / "store" / "iris" / "2" / "model.sig").exists()


def test_package_optimize_and_quantize_flags(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN the tiny MatMul+Add model WHEN packaged with --optimize and with --quantize
    out = run("package", str(tiny_onnx_path), "--out", str(tmp_path / "opt"), "--name", "tiny", "--optimize", "basic")
    assert "packaged tiny v1" in out
    out = run("package", str(tiny_onnx_path), "--out", str(tmp_path / "q"), "--name", "tiny", "--quantize", "int8",
              "--min-agreement", "0")  # fmt: skip
    # THEN the quantization report is printed and recorded in the manifest
    assert "quantized int8" in out
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert manifest["compression"]["weight_type"] == "int8"
    # AND an unknown optimization level is refused with the valid choices
    assert "basic" in run_failing("package", str(tiny_onnx_path), "--out", str(tmp_path / "x"), "--name", "tiny",
                                  "--optimize", "all")  # fmt: skip


def test_package_options_reach_the_adapter(tiny_onnx_path: Path, tmp_path: Path) -> None:
    out = run_failing("package", str(tiny_onnx_path), "--out", str(tmp_path / "a"), "--name", "tiny",
                      "--option", "no_such_option=1")  # fmt: skip
    assert "no_such_option" in out
    assert "key=value" in run_failing("package", str(tiny_onnx_path), "--out", str(tmp_path / "b"), "--name", "tiny",
                                      "--option", "missing-equals")  # fmt: skip
    # a real option of the ONNX adapter: narrowing the allowed op domains still accepts a standard model
    run("package", str(tiny_onnx_path), "--out", str(tmp_path / "c"), "--name", "tiny",
        "--option", "allowed_domains=ai.onnx")  # fmt: skip


@pytest.mark.slow
@pytest.mark.framework
def test_package_in_a_converter_interpreter(tmp_path: Path, sklearn_classifier: tuple[object, np.ndarray]) -> None:
    # GIVEN a pickled scikit-learn model (pickle only ever loads in the converter's process)
    import joblib

    model, sample = sklearn_classifier
    joblib.dump(model, tmp_path / "model.joblib")
    np.save(tmp_path / "sample.npy", sample)
    # WHEN packaged with --python pointing at an interpreter that has the framework
    out = run("package", str(tmp_path / "model.joblib"), "--out", str(tmp_path / "bundle"), "--name", "iris",
              "--sample", str(tmp_path / "sample.npy"), "--allow-pickle", "--python", sys.executable)  # fmt: skip
    # THEN the bundle is packaged with a parity report from the native predictions made there
    assert "packaged iris v1 (sklearn)" in out and "label agreement 1.000" in out


def test_console_script_without_the_cli_extra_says_what_to_install() -> None:
    # GIVEN an interpreter where typer is not importable (a slim run-time install)
    code = "import sys; sys.modules['typer'] = None\nfrom modelfn._entry import main\nmain()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # THEN the entry point exits 2 naming the extra instead of a traceback
    assert done.returncode == 2
    assert "pip install 'modelfn[cli]'" in done.stderr and "Traceback" not in done.stderr


def test_verify_names_a_reference_signed_bundle_from_its_signed_manifest(
    signed_bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    # GIVEN the CLI-packaged bundle re-signed with the reference model_signing API (no modelfn predicate)
    from tests.signing.helpers import sign_with_model_signing

    bundle, public = signed_bundle
    sign_with_model_signing(bundle, public.with_name("signing.key"))
    # WHEN verified THEN the signed manifest's name and version are printed (it printed "vNone")
    assert run("verify", str(bundle), "--trust", str(public)).startswith("OK tiny v1 root sha256:")
    # AND --min-version applies to that version
    assert "below the minimum 2" in run_failing("verify", str(bundle), "--trust", str(public), "--min-version", "2")
    # AND a signed directory that is no modelfn bundle (no manifest) says it has no signed version
    (bundle / "manifest.json").unlink()
    sign_with_model_signing(bundle, public.with_name("signing.key"))
    assert run("verify", str(bundle), "--trust", str(public)).startswith("OK bundle (no signed version) root")
