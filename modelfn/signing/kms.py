"""AWS KMS at build time: a ``Signer`` for ``ECC_NIST_P256`` keys, their public key, and data keys.

Signing: DSSE signs the PAE bytes with ECDSA P-256/SHA-256. KMS gets them one of two ways, and
both give a signature that verifies with plain ``cryptography`` over the PAE:

- ``RAW`` (PAE up to KMS's 4096-byte message limit): KMS hashes the message with SHA-256 itself.
- ``DIGEST`` (any size): we send SHA-256(PAE) and KMS signs that digest as is.

``auto`` picks RAW when the PAE fits and DIGEST otherwise (a statement lists ~150 bytes per file,
so bundles of a handful of files go RAW). moto's KMS ignores ``MessageType`` and hashes a DIGEST
again, so against moto only RAW verifies. Every signature is checked against the key's public key
before it is returned, so a signature no verifier would accept is never written.

The function side needs none of this: it verifies offline against the PEM that
``modelfn keygen --from-kms`` wrote once from ``GetPublicKey`` (SECURITY.md rule 8), and only calls
``kms:Decrypt`` for encrypted bundles (``unwrap_data_key``). boto3 is imported lazily.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from modelfn.errors import ConfigError, IntegrityError, SignatureError, StoreError
from modelfn.signing.keys import key_hint

if TYPE_CHECKING:
    from collections.abc import Mapping

KMS_RAW_MESSAGE_LIMIT = 4096
"""KMS Sign accepts RAW messages up to this many bytes; longer ones must go as a DIGEST."""
KMS_KEY_SPEC = "ECC_NIST_P256"
KMS_SIGNING_ALGORITHM = "ECDSA_SHA_256"
MessageType = Literal["auto", "RAW", "DIGEST"]
MESSAGE_TYPES: tuple[str, ...] = ("auto", "RAW", "DIGEST")


def kms_client(client: Any = None) -> Any:
    """The given client, or a boto3 KMS client (honours ``AWS_ENDPOINT_URL`` and the usual AWS settings)."""
    if client is not None:
        return client
    import boto3

    return boto3.client("kms")


def kms_public_key(key_id: str, client: Any = None) -> ec.EllipticCurvePublicKey:
    """``GetPublicKey`` for an ``ECC_NIST_P256`` signing key, checked and loaded with ``cryptography``."""
    response = _call(kms_client(client), "get_public_key", key_id, KeyId=key_id)
    spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec")  # the older name, still returned
    if spec != KMS_KEY_SPEC or response.get("KeyUsage") != "SIGN_VERIFY":
        raise ConfigError(
            f"KMS key {key_id} is {spec}/{response.get('KeyUsage')}; bundles are signed with an"
            f" {KMS_KEY_SPEC} SIGN_VERIFY key",
            field="kms_key_id",
        )
    key = serialization.load_der_public_key(response["PublicKey"])
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"KMS key {key_id} did not return a P-256 public key", field="kms_key_id")
    return key


class KmsSigner:
    """A ``Signer`` whose private key never leaves AWS KMS."""

    def __init__(self, key_id: str, *, message_type: MessageType = "auto", client: Any = None) -> None:
        if message_type not in MESSAGE_TYPES:
            raise ConfigError(
                f"KMS message type must be one of {', '.join(MESSAGE_TYPES)}, got {message_type!r}",
                field="kms_message_type",
            )
        self.key_id = key_id
        self.message_type = message_type
        self._client = kms_client(client)
        self.public_key = kms_public_key(key_id, self._client)
        self.key_hint = key_hint(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """DER ECDSA P-256/SHA-256 signature over ``message``, made by KMS and checked here."""
        mode = self.message_type
        if mode == "auto":
            mode = "RAW" if len(message) <= KMS_RAW_MESSAGE_LIMIT else "DIGEST"
        if mode == "RAW" and len(message) > KMS_RAW_MESSAGE_LIMIT:
            raise ConfigError(
                f"the signed message is {len(message)} bytes, over KMS's {KMS_RAW_MESSAGE_LIMIT}-byte RAW limit;"
                " use message type DIGEST or auto",
                field="kms_message_type",
            )
        body = message if mode == "RAW" else hashlib.sha256(message).digest()
        response = _call(
            self._client, "sign", self.key_id,
            KeyId=self.key_id, Message=body, MessageType=mode, SigningAlgorithm=KMS_SIGNING_ALGORITHM,
        )  # fmt: skip
        signature: bytes = response["Signature"]
        try:
            if mode == "RAW":
                self.public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            else:
                self.public_key.verify(signature, body, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature as exc:
            raise SignatureError(
                f"KMS returned a {mode} signature that does not verify over the message with key {self.key_id}'s"
                " public key (an emulator that hashes DIGEST messages again does this; use RAW there)",
                field="kms_message_type",
            ) from exc
        return signature


def generate_data_key(key_id: str, context: Mapping[str, str], client: Any = None) -> tuple[bytes, bytes, str]:
    """``GenerateDataKey`` (AES-256): the plaintext data key (memory only), its wrapped form and the key ARN."""
    response = _call(
        kms_client(client), "generate_data_key", key_id,
        KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(context),
    )  # fmt: skip
    return bytes(response["Plaintext"]), bytes(response["CiphertextBlob"]), str(response.get("KeyId") or key_id)


def unwrap_data_key(key_id: str, wrapped: bytes, context: Mapping[str, str], client: Any = None) -> bytes:
    """``Decrypt`` a wrapped data key (the function's only KMS call); a refusal is an ``IntegrityError``."""
    from botocore.exceptions import ClientError

    kms = kms_client(client)
    try:
        response = kms.decrypt(KeyId=key_id, CiphertextBlob=wrapped, EncryptionContext=dict(context))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("InvalidCiphertextException", "IncorrectKeyException", "AccessDeniedException"):
            raise IntegrityError(
                f"KMS refused to unwrap the data key with {key_id} ({code}): wrong key or tampered wrapped key",
                field="encryption.wrapped_key",
            ) from exc
        raise StoreError(f"KMS Decrypt with {key_id} failed: {code or exc}", field="kms") from exc
    plaintext = bytes(response["Plaintext"])
    if len(plaintext) != 32:
        raise IntegrityError("the unwrapped data key is not 32 bytes", field="encryption.wrapped_key")
    return plaintext


def _call(client: Any, operation: str, key_id: str, **kwargs: Any) -> dict[str, Any]:
    """One KMS call; AWS errors become typed errors naming the key."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response: dict[str, Any] = getattr(client, operation)(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        raise ConfigError(
            f"KMS {operation} with key {key_id} failed: {code} {message}".strip(), field="kms_key_id"
        ) from exc
    except BotoCoreError as exc:
        raise StoreError(f"KMS {operation} with key {key_id} failed: {exc}", field="kms") from exc
    return response
