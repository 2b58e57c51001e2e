"""Signing a bundle: hash every file, build the statement, sign its DSSE encoding, write ``model.sig``.

A ``Signer`` only turns message bytes into a DER ECDSA P-256/SHA-256 signature, so a key file
and a KMS key are interchangeable. The output verifies with the ``model_signing`` key method.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from modelfn.bundle.layout import SIGNATURE_FILE, check_model_name
from modelfn.errors import ConfigError
from modelfn.signing._tree import list_bundle_files, open_no_follow
from modelfn.signing.dsse import PAYLOAD_TYPE, encode_bundle, pae
from modelfn.signing.keys import key_hint, load_private_key
from modelfn.signing.statement import build_statement, encode_statement


class Signer(Protocol):
    """Something that holds a P-256 private key (file, KMS, HSM)."""

    key_hint: str
    """SHA-256 hex of the signer's SubjectPublicKeyInfo PEM: how verifiers find the public key."""

    def sign(self, message: bytes) -> bytes:
        """DER ECDSA P-256/SHA-256 signature over ``message`` (the DSSE PAE bytes)."""
        ...


class KeyFileSigner:
    """A ``Signer`` backed by a PEM private key file."""

    def __init__(self, private_key_path: Path, password: bytes | None = None) -> None:
        self._key = load_private_key(private_key_path, password)
        self.key_hint = key_hint(self._key.public_key())

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half, to publish or to put in a trust set."""
        return self._key.public_key()

    def sign(self, message: bytes) -> bytes:
        """DER ECDSA P-256/SHA-256 signature over ``message``."""
        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))


def build_signature(
    resources: Mapping[str, str],
    signer: Signer,
    *,
    name: str,
    version: int,
    not_after: datetime | None = None,
) -> bytes:
    """The ``model.sig`` bytes for these files (name -> sha256 hex)."""
    check_model_name(name)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ConfigError(f"version must be an integer >= 0, got {version!r}", field="version")
    payload = encode_statement(build_statement(resources, name=name, version=version, not_after=not_after))
    signature = signer.sign(pae(PAYLOAD_TYPE, payload))
    if not signature:
        raise ConfigError("the signer returned an empty signature", field="signer")
    return encode_bundle(payload, signature, signer.key_hint)


def hash_bundle(bundle_dir: Path) -> dict[str, str]:
    """sha256 hex of every file except ``model.sig``; refuses links, special files and pickle."""
    digests: dict[str, str] = {}
    for name, path in list_bundle_files(bundle_dir).items():
        with os.fdopen(open_no_follow(path), "rb") as handle:
            digests[name] = hashlib.file_digest(handle, "sha256").hexdigest()
    return digests


def sign_bundle(
    bundle_dir: Path,
    signer: Signer,
    *,
    name: str,
    version: int,
    not_after: datetime | None = None,
) -> Path:
    """Sign every file under ``bundle_dir`` and write ``bundle_dir/model.sig`` atomically."""
    sig_bytes = build_signature(hash_bundle(bundle_dir), signer, name=name, version=version, not_after=not_after)
    target = bundle_dir / SIGNATURE_FILE
    fd, tmp_name = tempfile.mkstemp(prefix=".model.sig.", dir=bundle_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(sig_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
