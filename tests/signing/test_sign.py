"""Signing a bundle directory: every file hashed, '/' names, links and pickle refused, atomic write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from modelfn.errors import ConfigError, UnsafeBundleError
from modelfn.signing.dsse import PAYLOAD_TYPE, decode_bundle, pae
from modelfn.signing.sign import build_signature, sign_bundle
from modelfn.signing.statement import root_digest
from tests.fixtures.keys import SigningKey
from tests.signing.helpers import BUNDLE_FILES, make_bundle, payload_of, sha256_hex


def test_sign_bundle_lists_every_file_with_its_digest(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a bundle with a nested file
    bundle = make_bundle(tmp_path / "iris")

    # WHEN it is signed
    sig_path = sign_bundle(bundle, signing_key.signer, name="iris", version=3)

    # THEN model.sig lists each file once ('/' names, canonical order) with its real sha256, and nothing else
    assert sig_path == bundle / "model.sig"
    statement = payload_of(sig_path.read_bytes())
    resources = statement["predicate"]["resources"]
    assert [r["name"] for r in resources] == ["extra/vocab.txt", "manifest.json", "model.onnx"]
    assert {r["name"]: r["digest"] for r in resources} == {n: sha256_hex(d) for n, d in BUNDLE_FILES.items()}
    assert statement["subject"][0]["digest"]["sha256"] == root_digest(
        {n: sha256_hex(d) for n, d in BUNDLE_FILES.items()}
    )
    assert statement["predicate"]["modelfn"] == {"name": "iris", "version": 3, "not_after": None}
    assert sorted(os.listdir(bundle)) == ["extra", "manifest.json", "model.onnx", "model.sig"]


def test_signature_is_ecdsa_p256_over_the_pae(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a signed bundle
    bundle = make_bundle(tmp_path / "iris")
    sig_bytes = sign_bundle(bundle, signing_key.signer, name="iris", version=1).read_bytes()

    # WHEN the envelope is decoded
    envelope = decode_bundle(sig_bytes)

    # THEN its one signature verifies with plain cryptography over the DSSE PAE, under the signer's hint
    assert envelope.key_hint == signing_key.hint
    signing_key.signer.public_key.verify(
        envelope.signature, pae(PAYLOAD_TYPE, envelope.payload), ec.ECDSA(hashes.SHA256())
    )


def test_resigning_ignores_the_old_signature(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a bundle that is already signed at version 1
    bundle = make_bundle(tmp_path / "iris")
    sign_bundle(bundle, signing_key.signer, name="iris", version=1)

    # WHEN it is signed again at version 2
    sig_bytes = sign_bundle(bundle, signing_key.signer, name="iris", version=2).read_bytes()

    # THEN the old model.sig is not listed as a resource and the new version is signed
    statement = payload_of(sig_bytes)
    assert "model.sig" not in [r["name"] for r in statement["predicate"]["resources"]]
    assert statement["predicate"]["modelfn"]["version"] == 2


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_symlinks_are_refused_at_sign_time(tmp_path: Path, signing_key: SigningKey, kind: str) -> None:
    # GIVEN a bundle holding a symlink to a file or to a directory outside it
    bundle = make_bundle(tmp_path / "iris")
    outside = make_bundle(tmp_path / "outside", {"secret.txt": b"secret"})
    target = outside / "secret.txt" if kind == "file" else outside
    (bundle / "link").symlink_to(target)

    # WHEN / THEN signing refuses, naming the link, and writes no signature
    with pytest.raises(UnsafeBundleError, match="symlink: link"):
        sign_bundle(bundle, signing_key.signer, name="iris", version=1)
    assert not (bundle / "model.sig").exists()


@pytest.mark.parametrize("name", ["model.pkl", "weights.PTH", "sub/clf.joblib", "last.ckpt"])
def test_pickle_family_files_are_refused_at_sign_time(tmp_path: Path, signing_key: SigningKey, name: str) -> None:
    # GIVEN a bundle holding a pickle-family file
    bundle = make_bundle(tmp_path / "iris")
    make_bundle(bundle, {name: b"\x80\x04K\x01."})

    # WHEN / THEN signing refuses it by extension
    with pytest.raises(UnsafeBundleError, match="pickle"):
        sign_bundle(bundle, signing_key.signer, name="iris", version=1)
    assert not (bundle / "model.sig").exists()


def test_fifo_is_refused(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a bundle holding a named pipe
    bundle = make_bundle(tmp_path / "iris")
    os.mkfifo(bundle / "pipe")

    # WHEN / THEN signing refuses it (and does not block reading it)
    with pytest.raises(UnsafeBundleError, match="not a regular file: pipe"):
        sign_bundle(bundle, signing_key.signer, name="iris", version=1)


def test_empty_bundle_is_refused(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN an empty directory WHEN / THEN there is nothing to sign
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsafeBundleError, match="empty"):
        sign_bundle(tmp_path / "empty", signing_key.signer, name="iris", version=1)


@pytest.mark.parametrize(
    ("name", "version"),
    [("Iris", 1), ("../iris", 1), ("iris", -1), ("iris", True)],
    ids=["uppercase name", "path name", "negative version", "bool version"],
)
def test_bad_name_or_version_is_refused(signing_key: SigningKey, name: str, version: int) -> None:
    # GIVEN an invalid model name or version WHEN / THEN building the signature refuses it
    with pytest.raises(ConfigError):
        build_signature({"model.onnx": "ab" * 32}, signing_key.signer, name=name, version=version)


def test_build_signature_output_is_a_sigstore_bundle(signing_key: SigningKey) -> None:
    # GIVEN resources computed elsewhere (e.g. while uploading)
    # WHEN a signature is built
    sig_bytes = build_signature({"model.onnx": "ab" * 32}, signing_key.signer, name="iris", version=4)

    # THEN it is the model_signing key-method bundle shape
    bundle = json.loads(sig_bytes)
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"]["publicKey"] == {"hint": signing_key.hint}
    assert bundle["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    assert len(bundle["dsseEnvelope"]["signatures"]) == 1
