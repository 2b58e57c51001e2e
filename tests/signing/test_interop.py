"""Interop with the OpenSSF ``model_signing`` package (key method, P-256), both ways (SECURITY.md rule 7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelfn.errors import IntegrityError
from modelfn.signing.sign import sign_bundle
from modelfn.signing.statement import resource_sort_key
from modelfn.signing.verify import verify_directory
from tests.fixtures.keys import SigningKey
from tests.signing.helpers import BUNDLE_FILES, make_bundle

# Names whose string order differs from path-component order, to pin down the canonical order.
ORDER_FILES = {**BUNDLE_FILES, "a/b": b"nested", "a.txt": b"flat"}


def _model_signing_config(signing_key: SigningKey) -> Any:
    import model_signing

    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"], ignore_git_paths=False)
    return (
        model_signing.signing.Config()
        .use_elliptic_key_signer(private_key=signing_key.private_path)
        .set_hashing_config(hashing)
    )


def test_model_signing_api_verifies_a_modelfn_bundle(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a bundle signed by modelfn
    import model_signing

    bundle = make_bundle(tmp_path / "iris", ORDER_FILES)
    sig_path = sign_bundle(bundle, signing_key.signer, name="iris", version=5)
    verifier = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=signing_key.public_path)

    # WHEN model_signing verifies it THEN it succeeds (raises nothing)
    verifier.verify(bundle, sig_path)

    # AND WHEN a signed file is tampered THEN model_signing refuses it too (so the check above was real)
    (bundle / "a.txt").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="a.txt"):
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=signing_key.public_path).verify(
            bundle, sig_path
        )


def test_modelfn_verifies_a_model_signing_bundle(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a directory signed by model_signing's Python API (only model.sig excluded)
    model_dir = make_bundle(tmp_path / "iris", ORDER_FILES)
    _model_signing_config(signing_key).sign(model_dir, model_dir / "model.sig")

    # WHEN modelfn verifies it
    verified = verify_directory(model_dir, signing_key.trust)

    # THEN it passes with model_signing's subject name (the directory name), no version, the same bytes
    assert verified.statement.name == "iris"
    assert verified.statement.version is None
    assert verified.files == ORDER_FILES
    assert list(verified.statement.resources) == sorted(ORDER_FILES, key=resource_sort_key)

    # AND WHEN a file is tampered THEN modelfn refuses it
    (model_dir / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="model.onnx"):
        verify_directory(model_dir, signing_key.trust)


def test_model_signing_root_digest_equals_modelfn_root_digest(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN the same files signed once by each implementation
    ours = make_bundle(tmp_path / "ours", ORDER_FILES)
    theirs = make_bundle(tmp_path / "theirs", ORDER_FILES)
    sign_bundle(ours, signing_key.signer, name="ours", version=1)
    _model_signing_config(signing_key).sign(theirs, theirs / "model.sig")

    # WHEN both are verified THEN the resources and the root digest agree
    a = verify_directory(ours, signing_key.trust).statement
    b = verify_directory(theirs, signing_key.trust).statement
    assert a.resources == b.resources
    assert a.root_digest == b.root_digest


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_model_signing_cli_verifies_a_modelfn_bundle(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a bundle signed by modelfn
    bundle = make_bundle(tmp_path / "iris", ORDER_FILES)
    sig_path = sign_bundle(bundle, signing_key.signer, name="iris", version=2)

    # WHEN the model_signing CLI verifies it
    ok = _cli("verify", "key", "--public_key", signing_key.public_path, "--signature", sig_path, bundle)

    # THEN it succeeds; and after tampering it fails
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Verification succeeded" in ok.stdout
    (bundle / "manifest.json").write_bytes(b"{}")
    bad = _cli("verify", "key", "--public_key", signing_key.public_path, "--signature", sig_path, bundle)
    assert bad.returncode != 0


@pytest.mark.slow
def test_modelfn_verifies_a_model_signing_cli_bundle(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a directory signed by the model_signing CLI with its defaults (it signs git ignore paths too)
    model_dir = make_bundle(tmp_path / "iris", ORDER_FILES)
    signed = _cli(
        "sign", "key", "--private_key", signing_key.private_path, "--signature", model_dir / "model.sig", model_dir
    )
    assert signed.returncode == 0, signed.stdout + signed.stderr

    # WHEN modelfn verifies it THEN it passes with the same files
    verified = verify_directory(model_dir, signing_key.trust)
    assert verified.files == ORDER_FILES
    assert verified.statement.key_hint == signing_key.hint


def test_a_modelfn_bundle_signed_with_the_model_signing_api_is_pushed_and_served(
    tmp_path: Path, tiny_bundle_dir: Path, signing_key: SigningKey
) -> None:
    # GIVEN a modelfn bundle signed by model_signing's API (no modelfn predicate) and pushed to a store
    import numpy as np

    from modelfn.config import Settings
    from modelfn.repository.transfer import push_bundle
    from modelfn.store.registry import store_for
    from tests.fixtures.bundles import serve
    from tests.fixtures.models import tiny_onnx_expected
    from tests.signing.helpers import sign_with_model_signing

    sign_with_model_signing(tiny_bundle_dir, signing_key.private_path)
    reference = verify_directory(tiny_bundle_dir, signing_key.trust).statement
    assert reference.version is None  # really the reference format, not modelfn's predicate
    store = str(tmp_path / "store")
    push_bundle(tiny_bundle_dir, store_for(store), name="tiny", version=1, progress=False)
    settings = Settings(store_url=store, model_name="tiny", trusted_keys=(str(signing_key.public_path),), threads=1)
    # WHEN the real app loads it and is asked for a prediction
    client = serve(settings)
    try:
        ready = client.get("/v2/health/ready").json()
        response = client.post("/predict", json={"instances": [[1, 2, 3, 4]]})
        v2 = client.get("/v2/models/tiny").json()
    finally:
        client.close()
    # THEN it is ready as tiny v1 (the signed manifest's identity) with the signed root digest, and predicts
    assert (ready["name"], ready["version"], ready["root_digest"]) == ("tiny", 1, reference.root_digest)
    assert v2["versions"] == ["1"]
    assert response.status_code == 200, response.text
    expected = tiny_onnx_expected(np.array([[1, 2, 3, 4]], dtype=np.float32))
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-6)


@pytest.mark.slow
def test_a_modelfn_bundle_signed_with_the_model_signing_cli_is_verified_pushed_to_s3_and_served(
    tiny_bundle_dir: Path, signing_key: SigningKey, s3_bucket: str
) -> None:
    # GIVEN a modelfn bundle signed by the model_signing CLI with its defaults
    import numpy as np
    from typer.testing import CliRunner

    from modelfn.cli import app
    from modelfn.config import Settings
    from tests.fixtures.bundles import serve
    from tests.fixtures.models import tiny_onnx_expected

    signed = _cli(
        "sign", "key", "--private_key", signing_key.private_path, "--signature", tiny_bundle_dir / "model.sig",
        tiny_bundle_dir,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stdout + signed.stderr
    runner = CliRunner()
    trust = ["--trust", str(signing_key.public_path)]
    # WHEN `modelfn verify` checks it and `modelfn push` uploads it to S3 (moto_server)
    verified = runner.invoke(app, ["verify", str(tiny_bundle_dir), *trust, "--min-version", "1"])
    store = f"s3://{s3_bucket}/models"
    pushed = runner.invoke(app, ["push", str(tiny_bundle_dir), "--store", store])
    # THEN verify names the model and version from the signed manifest (not "vNone"), and push succeeds
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith("OK tiny v1 root sha256:"), verified.output
    assert pushed.exit_code == 0, pushed.output
    # AND the real app serves a prediction from the S3 copy
    client = serve(
        Settings(store_url=store, model_name="tiny", trusted_keys=(str(signing_key.public_path),), threads=1)
    )
    try:
        response = client.post("/predict", json={"instances": [[0.5, -1, 2, 0]]})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    expected = tiny_onnx_expected(np.array([[0.5, -1, 2, 0]], dtype=np.float32))
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-6)
