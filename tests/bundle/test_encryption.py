"""Encrypted bundles (SECURITY.md rule 16): ciphertext signed and verified first, plaintext only in memory."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from modelfn.bundle.encryption import (
    LocalKeyWrapper,
    decrypt_artifact,
    encrypt_artifact,
    write_wrapping_key,
)
from modelfn.cli import app
from modelfn.config import Settings
from modelfn.errors import ConfigError, IntegrityError, PackagingError
from modelfn.loader import load_bundle
from modelfn.packaging import package
from tests.fixtures.bundles import Published, publish
from tests.fixtures.keys import SigningKey
from tests.fixtures.models import TINY_W, tiny_onnx_expected

PLAINTEXT_MARKER = TINY_W.tobytes()
"""The tiny model's weight bytes: present in any plaintext copy of the model, absent from ciphertext."""


def _files_holding_plaintext(*roots: Path) -> list[str]:
    return [str(p) for root in roots for p in root.rglob("*") if p.is_file() and PLAINTEXT_MARKER in p.read_bytes()]


def _predict(settings: Settings) -> np.ndarray:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    loaded = load_bundle(settings)
    result: np.ndarray = loaded.model.predict({"x": x})["y"]
    np.testing.assert_allclose(result, tiny_onnx_expected(x), rtol=1e-6)
    return result


@pytest.fixture
def scratch_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The process's temp dir, pointed somewhere the test can search afterwards."""
    scratch = tmp_path / "scratch-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


@pytest.fixture
def wrapping_key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "wrapping.key"
    path.parent.mkdir()
    write_wrapping_key(path)
    return path


@pytest.fixture
def encrypted_published(
    tmp_path: Path, tiny_onnx_path: Path, wrapping_key: Path, signing_key: SigningKey, scratch_tmp: Path
) -> Published:
    bundle = tmp_path / "enc-bundle"
    package(tiny_onnx_path, None, bundle, name="tiny", version=1, encrypt=str(wrapping_key))
    published = publish(bundle, str(tmp_path / "store"), signing_key)
    return Published(
        settings=published.settings.replace(decryption_key_file=str(wrapping_key)),
        bundle_dir=bundle, name="tiny", version=1,
    )  # fmt: skip


def test_round_trip_and_every_refusal_of_the_format(wrapping_key: Path, tmp_path: Path) -> None:
    # GIVEN an artifact encrypted under a local wrapping key
    wrapper = LocalKeyWrapper(wrapping_key)
    ciphertext, record = encrypt_artifact(b"model bytes", wrapper, name="m", version=3, artifact="model.onnx.enc")
    where = {"name": "m", "version": 3, "artifact": "model.onnx.enc"}
    # THEN it decrypts with the same key and context only
    assert b"model bytes" not in ciphertext
    assert decrypt_artifact(ciphertext, record, key_file=str(wrapping_key), **where) == b"model bytes"  # type: ignore[arg-type]
    other = tmp_path / "other.key"
    write_wrapping_key(other)
    with pytest.raises(IntegrityError, match="encrypted under local key"):
        decrypt_artifact(ciphertext, record, key_file=str(other), **where)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as missing:
        decrypt_artifact(ciphertext, record, key_file=None, **where)  # type: ignore[arg-type]
    assert missing.value.field == "decryption_key_file"
    flipped_tag = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    with pytest.raises(IntegrityError, match="AES-GCM authentication failed"):
        decrypt_artifact(flipped_tag, record, key_file=str(wrapping_key), **where)  # type: ignore[arg-type]
    wrapped = bytearray(base64.b64decode(record.wrapped_key))
    wrapped[3] ^= 1
    bad_wrap = record.replace(wrapped_key=base64.b64encode(bytes(wrapped)).decode())
    with pytest.raises(IntegrityError, match="does not unwrap"):
        decrypt_artifact(ciphertext, bad_wrap, key_file=str(wrapping_key), **where)  # type: ignore[arg-type]
    # AND the ciphertext is bound to the model's identity (associated data)
    with pytest.raises(IntegrityError, match="AES-GCM"):
        decrypt_artifact(ciphertext, record, key_file=str(wrapping_key), name="m", version=4, artifact="model.onnx.enc")


def test_local_encrypted_bundle_serves_and_plaintext_never_touches_disk(
    encrypted_published: Published, tmp_path: Path, scratch_tmp: Path
) -> None:
    # GIVEN a bundle packaged with --encrypt, signed and pushed to a local store
    bundle = encrypted_published.bundle_dir
    # THEN the bundle holds the ciphertext only, named as such, and the manifest says how it is wrapped
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "model.onnx.enc", "model.sig"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["artifact"] == "model.onnx.enc"
    assert manifest["encryption"]["algorithm"] == "AES-256-GCM"
    assert manifest["encryption"]["key_source"] == "local"
    # WHEN the function loads it
    _predict(encrypted_published.settings)
    # THEN predictions are right and no plaintext copy exists in the bundle, the store or the temp dir
    assert _files_holding_plaintext(bundle, tmp_path / "store", scratch_tmp) == []


def test_wrong_or_missing_key_refuses_to_load(encrypted_published: Published, tmp_path: Path) -> None:
    # GIVEN the function configured with another wrapping key, or none
    other = tmp_path / "other.key"
    write_wrapping_key(other)
    # WHEN it loads THEN it is refused with a typed error naming the setting
    with pytest.raises(IntegrityError) as wrong:
        load_bundle(encrypted_published.settings.replace(decryption_key_file=str(other)))
    assert wrong.value.field == "decryption_key_file"
    with pytest.raises(ConfigError) as missing:
        load_bundle(Settings(**{**encrypted_published.settings.__dict__, "decryption_key_file": None}))
    assert missing.value.field == "decryption_key_file"


@pytest.mark.parametrize("part", ["tag", "wrapped_key"])
def test_tampering_is_refused_by_the_signature_then_by_the_cipher(
    encrypted_published: Published, signing_key: SigningKey, tmp_path: Path, part: str
) -> None:
    # GIVEN a tampered GCM tag or wrapped data key in the published bundle
    bundle = encrypted_published.bundle_dir
    if part == "tag":
        path = bundle / "model.onnx.enc"
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    else:
        path = bundle / "manifest.json"
        manifest = json.loads(path.read_text())
        wrapped = bytearray(base64.b64decode(manifest["encryption"]["wrapped_key"]))
        wrapped[0] ^= 1
        manifest["encryption"]["wrapped_key"] = base64.b64encode(bytes(wrapped)).decode()
        path.write_text(json.dumps(manifest))
    (bundle / "model.sig").unlink()
    # WHEN pushed under the old signature THEN verification refuses it (digest) before any decryption
    old_sig = tmp_path / "store" / "tiny" / "1" / "model.sig"
    unsigned_store = tmp_path / "tampered-store"
    target = unsigned_store / "tiny" / "1"
    target.mkdir(parents=True)
    for item in bundle.iterdir():
        (target / item.name).write_bytes(item.read_bytes())
    (target / "model.sig").write_bytes(old_sig.read_bytes())
    with pytest.raises(IntegrityError, match="sha256 does not match the signed digest"):
        load_bundle(encrypted_published.settings.replace(store_url=str(unsigned_store)))
    # AND even when a trusted key re-signs the tampered bytes, decryption refuses them
    resigned = publish(bundle, str(tmp_path / "resigned-store"), signing_key)
    settings = resigned.settings.replace(decryption_key_file=encrypted_published.settings.decryption_key_file)
    expected = "AES-GCM authentication failed" if part == "tag" else "does not unwrap"
    with pytest.raises(IntegrityError, match=expected):
        load_bundle(settings)


def test_cli_package_encrypt_and_keygen_wrapping_key(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN a wrapping key from `modelfn keygen --wrapping-key`
    runner = CliRunner()
    keys = tmp_path / "keys"
    made = runner.invoke(app, ["keygen", "--out", str(keys), "--wrapping-key"])
    assert made.exit_code == 0, made.output
    assert (keys / "wrapping.key").stat().st_mode & 0o777 == 0o600
    key_id = LocalKeyWrapper(keys / "wrapping.key").key_id
    assert key_id in made.output
    # WHEN `modelfn package --encrypt` runs twice into one directory (plain first, then encrypted)
    out = tmp_path / "bundle"
    plain = runner.invoke(app, ["package", str(tiny_onnx_path), "--out", str(out), "--name", "tiny"])
    assert plain.exit_code == 0, plain.output
    args = [
        "package",
        str(tiny_onnx_path),
        "--out",
        str(out),
        "--name",
        "tiny",
        "--encrypt",
        str(keys / "wrapping.key"),
    ]
    result = runner.invoke(app, args)
    # THEN only the ciphertext is left (the earlier plaintext artifact is gone) and the manifest names the key
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx.enc"]
    assert json.loads((out / "manifest.json").read_text())["encryption"]["key_id"] == key_id
    assert _files_holding_plaintext(out) == []
    # AND a missing key file is a clear error naming it
    failed = runner.invoke(app, [*args[:-1], str(tmp_path / "absent.key")])
    assert failed.exit_code == 2
    assert "absent.key" in failed.output


def test_encryption_applies_to_onnx_artifacts_only(tmp_path: Path, wrapping_key: Path) -> None:
    # GIVEN a manifest that claims encryption for a custom-code bundle
    from modelfn.bundle.manifest import Manifest

    record = {"key_source": "local", "key_id": "k", "wrapped_key": "AA==", "nonce": "AA=="}
    data = {
        "name": "m", "version": 1, "runtime": "python", "artifact": "model.py", "framework": {"name": "custom"},
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1]}],
        "created_at": "2026-01-01T00:00:00Z", "modelfn_version": "0", "encryption": record,
    }  # fmt: skip
    # THEN the manifest is refused, and so is packaging a custom-code directory with --encrypt
    with pytest.raises(Exception, match="onnx artifacts only"):
        Manifest.from_json(json.dumps(data).encode())
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    with pytest.raises(PackagingError, match="--encrypt"):
        package(code_dir, None, tmp_path / "out", name="m", framework="custom", encrypt=str(wrapping_key))
