"""ECDSA P-256 key files and the trust set.

The trust set is the only source of trust: a bundle verifies only against a public key that was
configured here. Nothing embedded in a bundle and no certificate authority is ever consulted. Keys
are named by their hint, the SHA-256 hex of the SubjectPublicKeyInfo PEM bytes, exactly as the
OpenSSF ``model_signing`` key method writes it into ``verificationMaterial.publicKey.hint``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelfn.errors import ConfigError

PEM_MARKER = "-----BEGIN"
_MAX_KEY_FILE_BYTES = 64 * 1024


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM bytes: what gets hashed into the hint and written to ``*.pub``."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 hex of the SubjectPublicKeyInfo PEM bytes (the ``model_signing`` key hint)."""
    return hashlib.sha256(public_pem(public_key)).hexdigest()


def write_keypair(private_path: Path, public_path: Path, *, overwrite: bool = False) -> str:
    """Write a new P-256 keypair as PEM (private key mode 0600) and return the public key's hint."""
    for path in (private_path, public_path):
        if not overwrite and (path.exists() or path.is_symlink()):
            raise ConfigError(f"{path} already exists; pass overwrite=True to replace it", field="key_path")
    key = generate_private_key()
    private_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_file(private_path, private_bytes, mode=0o600, overwrite=overwrite)
    _write_file(public_path, public_pem(key.public_key()), mode=0o644, overwrite=overwrite)
    return key_hint(key.public_key())


def load_private_key(path: Path, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Read a PEM private key and insist that it is ECDSA P-256."""
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a readable PEM private key (wrong password or format)", field="key_path"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{path} must hold an ECDSA P-256 private key", field="key_path")
    return key


def load_public_key(entry: str) -> ec.EllipticCurvePublicKey:
    """One trust entry: inline PEM text, or the path of a PEM file. Only P-256 keys are accepted."""
    if PEM_MARKER in entry:
        data, where = entry.encode(), "inline PEM key"
    else:
        path = Path(entry).expanduser()
        data, where = _read_key_file(path), str(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where} is not a PEM public key", field="trusted_keys") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{where} must be an ECDSA P-256 public key", field="trusted_keys")
    return key


class TrustSet:
    """The configured public keys, by hint. Nothing else is ever trusted."""

    def __init__(self, keys: Iterable[ec.EllipticCurvePublicKey] = ()) -> None:
        by_hint = {key_hint(key): key for key in keys}
        self.keys: Mapping[str, ec.EllipticCurvePublicKey] = MappingProxyType(by_hint)

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> TrustSet:
        """Build from settings entries, each a PEM file path or inline PEM text."""
        return cls(load_public_key(entry) for entry in entries)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, hint: object) -> bool:
        return hint in self.keys

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def __repr__(self) -> str:
        return f"TrustSet({sorted(h[:12] for h in self.keys)})"


def _read_key_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}", field="key_path") from exc
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(f"key file {path} is larger than {_MAX_KEY_FILE_BYTES} bytes", field="key_path")
    return data


def _write_file(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | (0 if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        raise ConfigError(f"cannot write key file {path}: {exc.strerror}", field="key_path") from exc
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # an existing file keeps its old mode otherwise
        handle.write(data)
