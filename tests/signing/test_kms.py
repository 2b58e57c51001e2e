"""KMS signing and KMS-wrapped data keys against moto_server's KMS (SECURITY.md rules 8 and 16).

The function side verifies offline: only the PEM written once by ``keygen --from-kms`` and
``cryptography`` are involved in verification; KMS is called at run time only to unwrap a data key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from typer.testing import CliRunner

from modelfn.cli import app
from modelfn.errors import ConfigError, IntegrityError, SignatureError
from modelfn.loader import load_bundle
from modelfn.packaging import package
from modelfn.signing.dsse import decode_bundle, pae
from modelfn.signing.keys import TrustSet, key_hint, load_private_key, load_public_key
from modelfn.signing.kms import KMS_RAW_MESSAGE_LIMIT, KmsSigner
from modelfn.signing.sign import build_signature, hash_bundle
from modelfn.signing.verify import verify_directory, verify_signature
from modelfn.store.registry import store_for
from tests.fixtures.bundles import publish
from tests.fixtures.keys import SigningKey
from tests.fixtures.models import TINY_W, tiny_onnx_expected


def _kms() -> Any:
    import boto3

    return boto3.client("kms")


@pytest.fixture
def kms_signing_key(s3_bucket: str) -> str:
    """An ECC_NIST_P256 SIGN_VERIFY key on moto_server (the AWS env points boto3 at it)."""
    response = _kms().create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    return str(response["KeyMetadata"]["KeyId"])


def test_kms_signed_bundle_verifies_offline_with_the_fetched_pem(
    kms_signing_key: str, tiny_bundle_dir: Path, tmp_path: Path
) -> None:
    # GIVEN the KMS key's public key fetched once with `modelfn keygen --from-kms`
    runner = CliRunner()
    fetched = runner.invoke(app, ["keygen", "--out", str(tmp_path / "keys"), "--from-kms", kms_signing_key])
    assert fetched.exit_code == 0, fetched.output
    pem = tmp_path / "keys" / "kms.pub"
    der = _kms().get_public_key(KeyId=kms_signing_key)["PublicKey"]
    assert serialization.load_pem_public_key(pem.read_bytes()) == serialization.load_der_public_key(der)
    # WHEN `modelfn sign --kms-key-id` signs the bundle (PAE well under 4096 bytes: RAW)
    signed = runner.invoke(app, ["sign", str(tiny_bundle_dir), "--kms-key-id", kms_signing_key])
    assert signed.exit_code == 0, signed.output
    # THEN the bundle verifies against a trust set holding only that PEM
    public_key = load_public_key(str(pem))
    result = verify_directory(tiny_bundle_dir, TrustSet([public_key]))
    assert result.statement.key_hint == key_hint(public_key)
    # AND the signature is plain ECDSA P-256/SHA-256 over the DSSE PAE (what any DSSE verifier checks)
    envelope = decode_bundle((tiny_bundle_dir / "model.sig").read_bytes())
    message = pae(envelope.payload_type, envelope.payload)
    assert len(message) <= KMS_RAW_MESSAGE_LIMIT
    public_key.verify(envelope.signature, message, ec.ECDSA(hashes.SHA256()))
    # AND a different key's trust set refuses it
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError, match="not in the trust set"):
        verify_directory(tiny_bundle_dir, TrustSet([other]))


def test_a_digest_signature_verifies_the_same_as_a_raw_one(signing_key: SigningKey, tiny_bundle_dir: Path) -> None:
    # GIVEN what real KMS does for MessageType=DIGEST: sign the given SHA-256 of the PAE without hashing again
    private = load_private_key(signing_key.private_path)

    class DigestSigner:
        key_hint = signing_key.hint

        def sign(self, message: bytes) -> bytes:
            digest = hashlib.sha256(message).digest()
            return private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    # WHEN a bundle is signed that way THEN the verifier (ECDSA-SHA256 over the PAE) accepts it
    sig = build_signature(hash_bundle(tiny_bundle_dir), DigestSigner(), name="tiny", version=1)
    assert verify_signature(sig, signing_key.trust).name == "tiny"


def test_kms_message_types_and_the_self_check(kms_signing_key: str) -> None:
    # GIVEN a KMS signer
    signer = KmsSigner(kms_signing_key, message_type="auto")
    public_key = signer.public_key
    # WHEN the message fits RAW THEN auto sends it RAW and the signature verifies
    public_key.verify(
        signer.sign(b"m" * KMS_RAW_MESSAGE_LIMIT), b"m" * KMS_RAW_MESSAGE_LIMIT, ec.ECDSA(hashes.SHA256())
    )
    # WHEN it does not fit THEN auto switches to DIGEST; moto hashes a DIGEST again, so the self-check
    # catches a signature no verifier would accept instead of writing it
    with pytest.raises(SignatureError, match="DIGEST signature that does not verify"):
        signer.sign(b"m" * (KMS_RAW_MESSAGE_LIMIT + 1))
    # AND RAW refuses oversized messages before calling KMS; unknown message types are refused
    with pytest.raises(ConfigError, match="4096-byte RAW limit"):
        KmsSigner(kms_signing_key, message_type="RAW").sign(b"m" * (KMS_RAW_MESSAGE_LIMIT + 1))
    with pytest.raises(ConfigError) as bad_type:
        KmsSigner(kms_signing_key, message_type="PREHASH")  # type: ignore[arg-type]
    assert bad_type.value.field == "kms_message_type"


def test_non_p256_and_unknown_kms_keys_are_refused(s3_bucket: str, tiny_bundle_dir: Path) -> None:
    # GIVEN a P-384 signing key and a key id that does not exist
    p384 = _kms().create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    # THEN both are typed errors naming the key, and the CLI exits 2 without writing model.sig
    with pytest.raises(ConfigError, match="ECC_NIST_P384") as wrong_spec:
        KmsSigner(p384)
    assert wrong_spec.value.field == "kms_key_id"
    result = CliRunner().invoke(app, ["sign", str(tiny_bundle_dir), "--kms-key-id", "alias/absent"])
    assert result.exit_code == 2
    assert "alias/absent" in result.output
    assert not (tiny_bundle_dir / "model.sig").exists()


def test_kms_encrypted_bundle_in_s3_serves_and_refuses_a_tampered_wrapped_key(
    s3_bucket: str, tiny_onnx_path: Path, tmp_path: Path, signing_key: SigningKey
) -> None:
    # GIVEN a symmetric KMS key with an alias, and a bundle packaged with --encrypt kms:alias/…
    key_id = _kms().create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    _kms().create_alias(AliasName="alias/modelfn-models", TargetKeyId=key_id)
    bundle = tmp_path / "bundle"
    package(tiny_onnx_path, None, bundle, name="tiny", version=1, encrypt="kms:alias/modelfn-models")
    record = json.loads((bundle / "manifest.json").read_text())["encryption"]
    assert record["key_source"] == "kms"
    assert record["key_id"].endswith(key_id)  # the key ARN, so the function's Decrypt names the real key
    # WHEN it is signed, pushed to S3 and loaded
    published = publish(bundle, f"s3://{s3_bucket}/models", signing_key)
    x = np.ones((3, 4), dtype=np.float32)
    predicted = load_bundle(published.settings).model.predict({"x": x})["y"]
    # THEN predictions are right and no stored object holds the plaintext weights
    np.testing.assert_allclose(predicted, tiny_onnx_expected(x), rtol=1e-6)
    store = store_for(published.settings.store_url)
    for info in store.list("tiny/1/"):
        assert TINY_W.tobytes() not in b"".join(store.read(info.key, pin=info)), info.key
    # AND a wrapped key tampered then re-signed by a trusted key is refused by KMS, typed
    manifest = json.loads((bundle / "manifest.json").read_text())
    blob = bytearray(base64.b64decode(manifest["encryption"]["wrapped_key"]))
    blob[-1] ^= 1
    manifest["encryption"]["wrapped_key"] = base64.b64encode(bytes(blob)).decode()
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (bundle / "model.sig").unlink()
    tampered = publish(bundle, f"s3://{s3_bucket}/tampered", signing_key)
    with pytest.raises(IntegrityError, match="KMS refused to unwrap"):
        load_bundle(tampered.settings)
