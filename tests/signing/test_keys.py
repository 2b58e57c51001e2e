"""Key files and the trust set: P-256 only, private key 0600, hint = sha256 of the SPKI PEM."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelfn.errors import ConfigError
from modelfn.signing.keys import TrustSet, generate_private_key, key_hint, load_private_key, write_keypair
from tests.fixtures.keys import SigningKey


def _pem_private(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def test_write_keypair_private_is_0600_and_hint_is_sha256_of_public_pem(tmp_path: Path) -> None:
    # GIVEN two paths that do not exist yet
    private_path, public_path = tmp_path / "k.key", tmp_path / "k.pub"

    # WHEN a keypair is written
    hint = write_keypair(private_path, public_path)

    # THEN the private key is owner-only, and the hint is the sha256 hex of the public PEM file bytes
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert hint == hashlib.sha256(public_path.read_bytes()).hexdigest()
    key = load_private_key(private_path)
    assert isinstance(key.curve, ec.SECP256R1)
    assert key_hint(key.public_key()) == hint


def test_write_keypair_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    # GIVEN an existing keypair, and a private key file that was loosened to 0644
    private_path, public_path = tmp_path / "k.key", tmp_path / "k.pub"
    first = write_keypair(private_path, public_path)
    private_path.chmod(0o644)

    # WHEN writing again without overwrite THEN it is refused and the old key is kept
    with pytest.raises(ConfigError, match="already exists"):
        write_keypair(private_path, public_path)
    assert key_hint(load_private_key(private_path).public_key()) == first

    # WHEN overwrite is asked THEN a new key replaces it, owner-only again
    second = write_keypair(private_path, public_path, overwrite=True)
    assert second != first
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600


def test_load_private_key_with_password(tmp_path: Path) -> None:
    # GIVEN a password-protected P-256 key
    path = tmp_path / "enc.key"
    key = generate_private_key()
    path.write_bytes(_pem_private(key, b"s3cret"))

    # WHEN loaded with the right / wrong password
    loaded = load_private_key(path, b"s3cret")

    # THEN the right one gives the same key, the wrong one a ConfigError naming the file
    assert key_hint(loaded.public_key()) == key_hint(key.public_key())
    with pytest.raises(ConfigError, match=str(path)):
        load_private_key(path, b"wrong")


@pytest.mark.parametrize("content", [b"not a key", b""], ids=["garbage", "empty"])
def test_load_private_key_refuses_garbage(tmp_path: Path, content: bytes) -> None:
    # GIVEN a file that is not a PEM key
    path = tmp_path / "bad.key"
    path.write_bytes(content)

    # WHEN / THEN loading it raises a ConfigError
    with pytest.raises(ConfigError):
        load_private_key(path)


def test_load_private_key_refuses_other_curves(tmp_path: Path) -> None:
    # GIVEN a P-384 key (model_signing accepts it; modelfn's contract is P-256 only)
    path = tmp_path / "p384.key"
    path.write_bytes(_pem_private(ec.generate_private_key(ec.SECP384R1())))

    # WHEN / THEN it is refused
    with pytest.raises(ConfigError, match="P-256"):
        load_private_key(path)


def test_trust_set_from_path_and_inline_pem_dedups_by_hint(signing_key: SigningKey) -> None:
    # GIVEN the same public key as a path and as inline PEM text
    inline = signing_key.public_path.read_text()

    # WHEN both are configured
    trust = TrustSet.from_entries([str(signing_key.public_path), inline])

    # THEN the trust set holds one key, found by its hint
    assert len(trust) == 1
    assert list(trust.keys) == [signing_key.hint]
    assert signing_key.hint in trust


def test_trust_set_holds_several_keys(signing_key: SigningKey, other_signing_key: SigningKey) -> None:
    # GIVEN two different public keys
    # WHEN both are configured
    trust = TrustSet.from_entries([str(signing_key.public_path), str(other_signing_key.public_path)])

    # THEN both hints are present
    assert len(trust) == 2
    assert set(trust.keys) == {signing_key.hint, other_signing_key.hint}


def test_trust_set_refuses_bad_entries(tmp_path: Path) -> None:
    # GIVEN a missing file, a non-key file, inline garbage PEM and a P-384 public key
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("hello")
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    p384_pem = p384.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    # WHEN / THEN each is a ConfigError that says what is wrong
    with pytest.raises(ConfigError, match="missing.pub"):
        TrustSet.from_entries([str(tmp_path / "missing.pub")])
    with pytest.raises(ConfigError, match="not a PEM public key"):
        TrustSet.from_entries([str(garbage)])
    with pytest.raises(ConfigError, match="not a PEM public key"):
        TrustSet.from_entries(["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
    with pytest.raises(ConfigError, match="P-256"):
        TrustSet.from_entries([p384_pem.decode()])


def test_empty_trust_set_is_empty() -> None:
    # GIVEN no entries WHEN a trust set is built THEN it holds nothing (verification will refuse)
    assert len(TrustSet.from_entries([])) == 0
