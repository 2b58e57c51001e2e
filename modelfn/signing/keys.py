"""ECDSA P-256 key files and the trust set.

The trust set is the only source of trust: a bundle verifies only against a public key that was
configured here. Nothing embedded in a bundle and no certificate authority is ever consulted. Keys
are named by their hint, the SHA-256 hex of the SubjectPublicKeyInfo PEM bytes, exactly as the
OpenSSF ``model_signing`` key method writes it into ``verificationMaterial.publicKey.hint``.

Key rotation: a trust entry may carry a validity window, ``keys/old.pub;not_after=2026-07-01T00:00:00Z``
or ``keys/new.pub;not_before=2026-06-01T00:00:00Z``. Outside its window a key is treated as absent, so
every bundle signed only by it is refused at the next load (SECURITY.md rule 11).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelfn.errors import ConfigError, UntrustedKeyError

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


def write_public_key(path: Path, public_key: ec.EllipticCurvePublicKey, *, overwrite: bool = False) -> str:
    """Write a public key as PEM (e.g. one fetched from KMS) for a trust set; return its hint."""
    if not overwrite and (path.exists() or path.is_symlink()):
        raise ConfigError(f"{path} already exists; pass overwrite=True to replace it", field="key_path")
    _write_file(path, public_pem(public_key), mode=0o644, overwrite=overwrite)
    return key_hint(public_key)


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


@dataclasses.dataclass(frozen=True)
class TrustWindow:
    """When a trusted key may vouch for a bundle: ``not_before <= now < not_after`` (either end open)."""

    not_before: datetime | None = None
    not_after: datetime | None = None

    def refusal(self, now: datetime) -> str | None:
        """Why the key is not trusted at ``now``, or None when it is."""
        if self.not_before is not None and now < self.not_before:
            return f"is trusted only from {self.not_before.isoformat()}"
        if self.not_after is not None and now >= self.not_after:
            return f"left the trust set at {self.not_after.isoformat()}"
        return None


ALWAYS = TrustWindow()
_WINDOW_FIELDS = ("not_before", "not_after")


def parse_trust_entry(entry: str) -> tuple[str, TrustWindow]:
    """Split ``KEY[;not_before=T][;not_after=T]`` into the key (PEM path or text) and its window."""
    key, *params = entry.split(";")
    bounds: dict[str, datetime] = {}
    for param in params:
        name, sep, value = param.partition("=")
        name = name.strip()
        if not sep or name not in _WINDOW_FIELDS or name in bounds:
            raise ConfigError(
                f"trust entry option {param.strip()!r} is invalid: use not_before=… and/or not_after=… once each",
                field="trusted_keys",
            )
        bounds[name] = _read_time(value.strip(), name)
    window = TrustWindow(**bounds)
    if window.not_before and window.not_after and window.not_before >= window.not_after:
        raise ConfigError("trust entry not_before must be earlier than its not_after", field="trusted_keys")
    return key.strip(), window


class TrustSet:
    """The configured public keys, by hint, each with its validity window. Nothing else is ever trusted."""

    def __init__(
        self,
        keys: Iterable[ec.EllipticCurvePublicKey] = (),
        windows: Mapping[str, TrustWindow] | None = None,
    ) -> None:
        by_hint = {key_hint(key): key for key in keys}
        self.keys: Mapping[str, ec.EllipticCurvePublicKey] = MappingProxyType(by_hint)
        self.windows: Mapping[str, TrustWindow] = MappingProxyType(dict(windows or {}))

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> TrustSet:
        """Build from settings entries, each a PEM file path or inline PEM text, optionally with a window."""
        keys: list[ec.EllipticCurvePublicKey] = []
        windows: dict[str, TrustWindow] = {}
        for entry in entries:
            text, window = parse_trust_entry(entry)
            key = load_public_key(text)
            hint = key_hint(key)
            if windows.get(hint, window) != window:
                raise ConfigError(f"key {hint[:16]}… is listed twice with different windows", field="trusted_keys")
            keys.append(key)
            windows[hint] = window
        return cls(keys, windows)

    def key_for(self, hint: str, now: datetime) -> ec.EllipticCurvePublicKey:
        """The public key named by ``hint`` if it is trusted at ``now``; else ``UntrustedKeyError``."""
        key = self.keys.get(hint)
        if key is None:
            raise UntrustedKeyError(
                f"bundle is signed by key {hint[:16]}…, which is not in the trust set", field="key_hint"
            )
        reason = self.windows.get(hint, ALWAYS).refusal(now)
        if reason is not None:
            raise UntrustedKeyError(f"bundle is signed by key {hint[:16]}…, which {reason}", field="key_hint")
        return key

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, hint: object) -> bool:
        return hint in self.keys

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def __repr__(self) -> str:
        return f"TrustSet({sorted(h[:12] for h in self.keys)})"


def _read_time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(
            f"trust entry {name} must be an ISO 8601 time with a zone (e.g. 2026-07-01T00:00:00Z), got {value!r}",
            field="trusted_keys",
        )
    return moment


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
