"""Verifying a bundle before any of its bytes reach a parser or a runtime.

Order matters: the envelope shape, then the key (trust set only), then the ECDSA signature over
the DSSE PAE, and only then is the payload JSON-parsed. File names are checked before any file
is opened; files are read once, hashed, and those same bytes are handed back to the caller.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from modelfn.bundle.layout import SIGNATURE_FILE, SIGNED_IGNORE_PATHS
from modelfn.errors import (
    ConfigError,
    IntegrityError,
    PolicyError,
    SignatureError,
    UnsafeBundleError,
    UntrustedKeyError,
)
from modelfn.signing._tree import list_bundle_files, read_regular_file
from modelfn.signing.dsse import MAX_SIGNATURE_BYTES, decode_bundle, load_strict_json, pae
from modelfn.signing.keys import TrustSet
from modelfn.signing.statement import SignedStatement, parse_statement

__all__ = [
    "SignedStatement",
    "VerifiedFiles",
    "VerifyPolicy",
    "check_digest",
    "check_file_set",
    "check_min_version",
    "signed_identity",
    "verify_directory",
    "verify_signature",
]


@dataclasses.dataclass(frozen=True)
class VerifyPolicy:
    """Run-time policy on top of a valid signature (anti-rollback, expiry, pinning)."""

    min_version: int = 0
    """Refuse signed versions below this; bundles without a signed version pass only when 0."""
    pinned_digest: str | None = None
    """Refuse any root digest other than this sha256 hex."""
    now: datetime | None = None
    """The clock for ``not_after``; None means the current UTC time."""


@dataclasses.dataclass(frozen=True)
class VerifiedFiles:
    """A verified statement and the exact bytes that were hashed, by file name."""

    statement: SignedStatement
    files: dict[str, bytes]


def verify_signature(sig_bytes: bytes, trust: TrustSet, policy: VerifyPolicy = VerifyPolicy()) -> SignedStatement:
    """Check ``model.sig`` against the trust set and policy; return what it vouches for."""
    envelope = decode_bundle(sig_bytes)
    if len(trust) == 0:
        raise UntrustedKeyError("no trusted keys are configured; set trusted_keys to verify bundles", field="trust")
    public_key = trust.key_for(envelope.key_hint, _now(policy))  # trust set and key validity windows
    try:
        public_key.verify(envelope.signature, pae(envelope.payload_type, envelope.payload), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify with the trusted key it names", field="signature") from exc
    statement = parse_statement(_load_json(envelope.payload), envelope.key_hint)
    _check_policy(statement, policy)
    return statement


def check_file_set(statement: SignedStatement, present: Iterable[str]) -> None:
    """Refuse extra files (not signed) and missing ones; only ``model.sig`` itself is exempt."""
    names = set(present) - set(SIGNED_IGNORE_PATHS)
    extra = sorted(names - statement.resources.keys())
    if extra:
        raise UnsafeBundleError(f"bundle holds files that are not signed: {', '.join(extra[:10])}", field=extra[0])
    missing = sorted(statement.resources.keys() - names)
    if missing:
        raise IntegrityError(f"signed files are missing: {', '.join(missing[:10])}", field=missing[0])


def check_digest(statement: SignedStatement, name: str, sha256_hex: str) -> None:
    """Refuse a file whose sha256 differs from the signed one (the error names the file)."""
    expected = statement.resources.get(name)
    if expected is None:
        raise UnsafeBundleError(f"{name} is not a signed file", field=name)
    if sha256_hex.lower() != expected:
        raise IntegrityError(f"{name}: sha256 does not match the signed digest", field=name)


def verify_directory(bundle_dir: Path, trust: TrustSet, policy: VerifyPolicy = VerifyPolicy()) -> VerifiedFiles:
    """Verify a bundle directory and return the verified bytes of every signed file."""
    present = list_bundle_files(bundle_dir)  # refuses symlinks, special files and pickle; opens nothing
    if not os.path.lexists(bundle_dir / SIGNATURE_FILE):
        raise SignatureError(f"bundle {bundle_dir.name} has no {SIGNATURE_FILE}; unsigned bundles are refused")
    sig_bytes = read_regular_file(bundle_dir / SIGNATURE_FILE, limit=MAX_SIGNATURE_BYTES)
    statement = verify_signature(sig_bytes, trust, policy)
    check_file_set(statement, present)
    files: dict[str, bytes] = {}
    for name, path in present.items():
        data = read_regular_file(path)
        check_digest(statement, name, hashlib.sha256(data).hexdigest())
        files[name] = data
    return VerifiedFiles(statement, files)


def _now(policy: VerifyPolicy) -> datetime:
    """The policy's clock (timezone-aware), or the current UTC time."""
    now = policy.now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ConfigError("VerifyPolicy.now must be timezone-aware", field="now")
    return now


def _load_json(payload: bytes) -> Any:
    """Parse the signed payload; called only after its signature has passed."""
    try:
        return load_strict_json(payload)
    except (ValueError, RecursionError) as exc:
        raise SignatureError("signed payload is not valid JSON", field="payload") from exc


def signed_identity(statement: SignedStatement, manifest_name: str, manifest_version: int) -> tuple[str, int]:
    """The bundle's signed (name, version): the predicate's, else the signed manifest's.

    ``model.sig`` from the reference ``model_signing`` tool has no modelfn predicate, but
    ``manifest.json`` is one of the signed files, so its name and version are as authoritative.
    When the predicate has them, the manifest must agree (one bundle, one identity).
    """
    if statement.version is None:
        return manifest_name, manifest_version
    if (manifest_name, manifest_version) != (statement.name, statement.version):
        raise UnsafeBundleError(
            f"manifest says {manifest_name} v{manifest_version} but the signature covers "
            f"{statement.name} v{statement.version}",
            field="manifest.json",
        )
    return statement.name, statement.version


def check_min_version(version: int | None, min_version: int) -> None:
    """Anti-rollback: refuse a signed version below ``min_version`` (and an unversioned bundle when it is set)."""
    if min_version <= 0:
        return
    if version is None:
        raise PolicyError(f"bundle has no signed version; min_version {min_version} requires one", field="version")
    if version < min_version:
        raise PolicyError(f"signed version {version} is below the minimum {min_version}", field="version")


def _check_policy(statement: SignedStatement, policy: VerifyPolicy) -> None:
    check_min_version(statement.version, policy.min_version)
    if statement.not_after is not None:
        now = policy.now or datetime.now(UTC)
        if now.tzinfo is None:
            raise ConfigError("VerifyPolicy.now must be timezone-aware", field="now")
        if now >= statement.not_after:
            raise PolicyError(f"bundle expired at {statement.not_after.isoformat()}", field="not_after")
    if policy.pinned_digest is not None and statement.root_digest != policy.pinned_digest.lower():
        raise PolicyError("root digest differs from the pinned digest", field="root_digest")
