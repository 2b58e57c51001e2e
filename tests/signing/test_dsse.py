"""The ``model.sig`` envelope: PAE bytes, round trip, and every ambiguous shape refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from modelfn.errors import SignatureError
from modelfn.signing.dsse import (
    BUNDLE_MEDIA_TYPE,
    MAX_SIGNATURE_BYTES,
    PAYLOAD_TYPE,
    decode_bundle,
    encode_bundle,
    pae,
)

HINT = "ab" * 32


def test_pae_matches_the_dsse_spec_vector() -> None:
    # GIVEN the example from the DSSE v1 protocol document
    # WHEN encoded THEN the bytes are exactly the spec's
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_matches_model_signing() -> None:
    # GIVEN model_signing's own PAE for the in-toto payload type
    from model_signing._signing import sign_sigstore_pb

    payload = b'{"a": "\xc3\xa9"}'
    # WHEN / THEN both encodings agree byte for byte (lengths count bytes, not characters)
    assert pae(PAYLOAD_TYPE, payload) == sign_sigstore_pb.pae(payload)


def test_round_trip() -> None:
    # GIVEN a payload and a signature
    sig_bytes = encode_bundle(b"payload-bytes", b"\x30\x01\x02", HINT)

    # WHEN decoded
    envelope = decode_bundle(sig_bytes)

    # THEN everything comes back, and the outer shape is the Sigstore v0.3 bundle
    assert (envelope.payload, envelope.signature, envelope.key_hint) == (b"payload-bytes", b"\x30\x01\x02", HINT)
    assert envelope.payload_type == PAYLOAD_TYPE
    assert json.loads(sig_bytes)["mediaType"] == BUNDLE_MEDIA_TYPE


def _set(path: list[str], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(bundle: dict[str, Any]) -> None:
        target = bundle
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return edit


_DELETE = object()
_SIG = {"sig": "MEUCIQ==", "keyid": ""}

BAD_SHAPES: dict[str, Callable[[dict[str, Any]], None]] = {
    "wrong media type": _set(["mediaType"], "application/vnd.dev.sigstore.bundle.v0.2+json"),
    "no media type": _set(["mediaType"], _DELETE),
    "no hint": _set(["verificationMaterial", "publicKey", "hint"], _DELETE),
    "empty hint": _set(["verificationMaterial", "publicKey", "hint"], ""),
    "uppercase hint": _set(["verificationMaterial", "publicKey", "hint"], "AB" * 32),
    "certificate instead of key": _set(["verificationMaterial"], {"x509CertificateChain": {"certificates": []}}),
    "wrong payload type": _set(["dsseEnvelope", "payloadType"], "application/json"),
    "no signatures": _set(["dsseEnvelope", "signatures"], []),
    "two signatures": _set(["dsseEnvelope", "signatures"], [_SIG, _SIG]),
    "signatures not a list": _set(["dsseEnvelope", "signatures"], _SIG),
    "bad base64 payload": _set(["dsseEnvelope", "payload"], "not base64!!"),
    "empty payload": _set(["dsseEnvelope", "payload"], ""),
    "bad base64 sig": _set(["dsseEnvelope", "signatures"], [{"sig": "%%%"}]),
    "no envelope": _set(["dsseEnvelope"], _DELETE),
    "message signature instead of DSSE": _set(["dsseEnvelope"], _DELETE),
}


@pytest.mark.parametrize("edit", BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_ambiguous_or_foreign_shapes_are_refused(edit: Callable[[dict[str, Any]], None]) -> None:
    # GIVEN a well-formed bundle, then one field changed
    bundle = json.loads(encode_bundle(b"payload", b"\x30\x01\x02", HINT))
    edit(bundle)

    # WHEN / THEN decoding refuses it as a signature problem
    with pytest.raises(SignatureError):
        decode_bundle(json.dumps(bundle).encode())


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"\xff\xfe",
        b'{"mediaType": "a", "mediaType": "' + BUNDLE_MEDIA_TYPE.encode() + b'"}',
        b'{"mediaType": NaN}',
        b"[" * 100_000,
    ],
    ids=["empty", "list", "not utf-8", "duplicate key", "NaN", "deep nesting"],
)
def test_not_a_bundle_is_refused(raw: bytes) -> None:
    # GIVEN bytes that are not one unambiguous JSON object
    # WHEN / THEN decoding raises SignatureError (never a raw parser error)
    with pytest.raises(SignatureError):
        decode_bundle(raw)


def test_oversized_signature_is_refused_unread() -> None:
    # GIVEN a valid bundle padded past the cap with JSON whitespace
    sig_bytes = encode_bundle(b"payload", b"\x30\x01\x02", HINT)
    padded = sig_bytes + b" " * (MAX_SIGNATURE_BYTES - len(sig_bytes) + 1)

    # WHEN / THEN it is refused for its size
    with pytest.raises(SignatureError, match="larger than"):
        decode_bundle(padded)
    assert decode_bundle(sig_bytes).payload == b"payload"
