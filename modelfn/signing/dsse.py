"""The ``model.sig`` wire format: a Sigstore bundle (v0.3 JSON) around one DSSE envelope.

Decoding checks the outer shape only and returns the payload as opaque bytes: the payload is
never parsed here, so nothing signed reaches a JSON parser before its signature has passed.
Anything ambiguous (several signatures, no key hint, another media or payload type) is refused.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from typing import Any

from modelfn.errors import SignatureError

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_SIGNATURE_BYTES = 1024 * 1024
"""Refuse larger ``model.sig`` files unread: a signature is a few kilobytes."""

_HINT_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class Envelope:
    """What a ``model.sig`` carries, decoded but not yet verified."""

    payload_type: str
    payload: bytes
    signature: bytes
    key_hint: str


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the exact bytes that are signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def encode_bundle(payload: bytes, signature: bytes, key_hint: str) -> bytes:
    """Serialize one signed payload as a Sigstore bundle, as ``model_signing``'s key method does."""
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }
    return (json.dumps(bundle, indent=2) + "\n").encode()


def decode_bundle(sig_bytes: bytes) -> Envelope:
    """Check the bundle's outer shape and return the still-unverified envelope."""
    if len(sig_bytes) > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"signature is larger than {MAX_SIGNATURE_BYTES} bytes", field="model.sig")
    try:
        bundle = load_strict_json(sig_bytes)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SignatureError("signature is not a valid JSON Sigstore bundle", field="model.sig") from exc
    bundle = _mapping(bundle, "bundle")
    media_type = bundle.get("mediaType")
    if media_type != BUNDLE_MEDIA_TYPE:
        raise SignatureError(f"bundle mediaType must be {BUNDLE_MEDIA_TYPE!r}, got {media_type!r}", field="mediaType")
    material = _mapping(bundle.get("verificationMaterial"), "verificationMaterial")
    public_key = _mapping(material.get("publicKey"), "verificationMaterial.publicKey")
    hint = public_key.get("hint")
    if not isinstance(hint, str) or not _HINT_RE.match(hint):
        raise SignatureError(
            "bundle must name its key by hint (64 lowercase hex); hint-less signatures are refused",
            field="verificationMaterial.publicKey.hint",
        )
    envelope = _mapping(bundle.get("dsseEnvelope"), "dsseEnvelope")
    payload_type = envelope.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"payloadType must be {PAYLOAD_TYPE!r}, got {payload_type!r}", field="payloadType")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        count = len(signatures) if isinstance(signatures, list) else "no"
        raise SignatureError(f"envelope must hold exactly one signature, got {count}", field="signatures")
    entry = _mapping(signatures[0], "signatures[0]")
    return Envelope(
        payload_type=PAYLOAD_TYPE,
        payload=_b64(envelope.get("payload"), "payload"),
        signature=_b64(entry.get("sig"), "signatures[0].sig"),
        key_hint=hint,
    )


def load_strict_json(data: bytes) -> Any:
    """``json.loads`` that refuses repeated keys and NaN/Infinity (raises ``ValueError``)."""
    return json.loads(data, object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with a repeated key reads differently in different parsers: refuse it."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SignatureError(f"bundle field {where} must be a JSON object", field=where)
    return value


def _b64(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise SignatureError(f"bundle field {where} must be a non-empty base64 string", field=where)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"bundle field {where} is not valid base64", field=where) from exc
