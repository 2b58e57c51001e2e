"""Encrypted artifacts: AES-256-GCM under a fresh data key, wrapped by AWS KMS or a local key file.

Build time encrypts the artifact bytes in memory and writes only the ciphertext
(``model.onnx.enc``); the manifest's ``encryption`` record carries the wrapped data key and the
nonce. The signature covers the ciphertext and that record, so at run time nothing is unwrapped
or decrypted before the bundle has verified, and the plaintext only ever lives in memory
(SECURITY.md rule 16). The GCM associated data binds the ciphertext to the model's name, version
and artifact name, and the KMS encryption context binds the wrapped key the same way, so neither
can be moved into another bundle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from modelfn.bundle.manifest import Encryption
from modelfn.errors import ConfigError, IntegrityError

ENCRYPTED_SUFFIX = ".enc"
"""An encrypted artifact is stored as ``<artifact>.enc`` so no tool mistakes it for the model."""
KMS_PREFIX = "kms:"
WRAPPING_KEY_BYTES = 32
_NONCE_BYTES = 12
_MAX_KEY_FILE_BYTES = 1024


class KeyWrapper(Protocol):
    """Makes a fresh data key and its wrapped form (KMS key, local key file)."""

    key_source: str
    key_id: str

    def new_data_key(self, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        """A random 32-byte data key and its wrapped form, bound to ``context`` where the wrapper can."""
        ...


class LocalKeyWrapper:
    """AES key wrap (RFC 3394) under a 256-bit key read from a file (mode 0600, base64)."""

    key_source = "local"

    def __init__(self, path: Path | str) -> None:
        self._key = read_wrapping_key(Path(path))
        self.key_id = wrapping_key_id(self._key)

    def new_data_key(self, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        """A random data key, wrapped under the file's key (the GCM associated data binds the context)."""
        data_key = os.urandom(32)
        return data_key, aes_key_wrap(self._key, data_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        """The data key; a wrong key file or a tampered wrapped key is an ``IntegrityError``."""
        try:
            return aes_key_unwrap(self._key, wrapped)
        except (InvalidUnwrap, ValueError) as exc:
            raise IntegrityError(
                "the local wrapping key does not unwrap the data key: wrong key or tampered wrapped key",
                field="encryption.wrapped_key",
            ) from exc


class KmsKeyWrapper:
    """Data keys from KMS ``GenerateDataKey``; the function unwraps them with ``kms:Decrypt``."""

    key_source = "kms"

    def __init__(self, key_id: str, client: Any = None) -> None:
        self.key_id = key_id
        self._client = client

    def new_data_key(self, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        """A KMS data key bound to ``context`` (the KMS encryption context); ``key_id`` becomes the key ARN."""
        from modelfn.signing.kms import generate_data_key

        data_key, wrapped, arn = generate_data_key(self.key_id, context, self._client)
        self.key_id = arn
        return data_key, wrapped


def wrapper_for(spec: str) -> KeyWrapper:
    """``kms:<key id, ARN or alias>`` or the path of a local wrapping key file."""
    if spec.startswith(KMS_PREFIX):
        key_id = spec[len(KMS_PREFIX) :]
        if not key_id:
            raise ConfigError("--encrypt kms: needs a key id, ARN or alias after 'kms:'", field="encrypt")
        return KmsKeyWrapper(key_id)
    return LocalKeyWrapper(spec)


def encryption_context(name: str, version: int, artifact: str) -> dict[str, str]:
    """What the ciphertext and the wrapped key are bound to."""
    return {"modelfn:model": name, "modelfn:version": str(version), "modelfn:artifact": artifact}


def encrypt_artifact(
    plaintext: bytes, wrapper: KeyWrapper, *, name: str, version: int, artifact: str
) -> tuple[bytes, Encryption]:
    """Ciphertext (with its GCM tag) of ``plaintext`` and the manifest record to decrypt it."""
    context = encryption_context(name, version, artifact)
    data_key, wrapped = wrapper.new_data_key(context)
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _aad(context))
    record = Encryption(
        key_source=wrapper.key_source,  # type: ignore[arg-type]  # a Literal at the manifest
        key_id=wrapper.key_id,
        wrapped_key=base64.b64encode(wrapped).decode("ascii"),
        nonce=base64.b64encode(nonce).decode("ascii"),
    )
    return ciphertext, record


def decrypt_artifact(
    ciphertext: bytes,
    record: Encryption,
    *,
    name: str,
    version: int,
    artifact: str,
    key_file: str | None = None,
    kms_client: Any = None,
) -> bytes:
    """The plaintext artifact, in memory; call only on verified bytes. Refusals are typed errors."""
    context = encryption_context(name, version, artifact)
    wrapped = _b64(record.wrapped_key, "encryption.wrapped_key")
    nonce = _b64(record.nonce, "encryption.nonce")
    if len(nonce) != _NONCE_BYTES:
        raise IntegrityError(f"encryption.nonce must be {_NONCE_BYTES} bytes", field="encryption.nonce")
    if record.key_source == "kms":
        from modelfn.signing.kms import unwrap_data_key

        data_key = unwrap_data_key(record.key_id, wrapped, context, kms_client)
    else:
        if not key_file:
            raise ConfigError(
                f"{artifact} is encrypted under local key {record.key_id[:16]}…; set MODELFN_DECRYPTION_KEY_FILE"
                " (setting decryption_key_file) to its key file",
                field="decryption_key_file",
            )
        local = LocalKeyWrapper(key_file)
        if local.key_id != record.key_id:
            raise IntegrityError(
                f"{artifact} is encrypted under local key {record.key_id[:16]}…, but decryption_key_file holds"
                f" key {local.key_id[:16]}…",
                field="decryption_key_file",
            )
        data_key = local.unwrap(wrapped)
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, _aad(context))
    except InvalidTag as exc:
        raise IntegrityError(
            f"{artifact}: AES-GCM authentication failed (wrong data key, tampered ciphertext or tag)", field=artifact
        ) from exc


def wrapping_key_id(key: bytes) -> str:
    """A public fingerprint of a local wrapping key (domain-separated SHA-256; reveals nothing of the key)."""
    return hashlib.sha256(b"modelfn wrapping key v1\0" + key).hexdigest()


def write_wrapping_key(path: Path, *, overwrite: bool = False) -> str:
    """Write a new random 256-bit wrapping key (base64, mode 0600) and return its fingerprint."""
    key = os.urandom(WRAPPING_KEY_BYTES)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | (0 if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write wrapping key {path}: {exc.strerror}", field="wrapping_key") from exc
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(base64.b64encode(key) + b"\n")
    return wrapping_key_id(key)


def read_wrapping_key(path: Path) -> bytes:
    """A 256-bit key from a base64 key file."""
    try:
        with path.open("rb") as handle:
            text = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read wrapping key {path}: {exc.strerror}", field="decryption_key_file") from exc
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"wrapping key {path} is not base64", field="decryption_key_file") from exc
    if len(key) != WRAPPING_KEY_BYTES:
        raise ConfigError(
            f"wrapping key {path} must hold {WRAPPING_KEY_BYTES} bytes (base64), got {len(key)}",
            field="decryption_key_file",
        )
    return key


def _aad(context: Mapping[str, str]) -> bytes:
    return "\n".join(f"{k}={context[k]}" for k in sorted(context)).encode()


def _b64(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise IntegrityError(f"{where} is not valid base64", field=where) from exc
