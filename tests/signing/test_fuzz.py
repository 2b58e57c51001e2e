"""Fuzzing the signature bytes and the signed statement: only typed verification errors, never a crash."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modelfn.errors import SignatureError, VerificationError
from modelfn.signing.sign import sign_bundle
from modelfn.signing.verify import SignedStatement, verify_signature
from tests.fixtures.keys import SigningKey
from tests.signing.helpers import make_bundle, payload_of, sign_statement

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)

BUNDLE_PATHS = [
    ("mediaType",),
    ("verificationMaterial",),
    ("verificationMaterial", "publicKey"),
    ("verificationMaterial", "publicKey", "hint"),
    ("dsseEnvelope",),
    ("dsseEnvelope", "payload"),
    ("dsseEnvelope", "payloadType"),
    ("dsseEnvelope", "signatures"),
]
STATEMENT_PATHS = [
    ("_type",),
    ("subject",),
    ("predicateType",),
    ("predicate",),
    ("predicate", "serialization"),
    ("predicate", "serialization", "ignore_paths"),
    ("predicate", "resources"),
    ("predicate", "modelfn"),
    ("predicate", "modelfn", "version"),
    ("predicate", "modelfn", "not_after"),
]


@pytest.fixture
def signed(tmp_path: Path, signing_key: SigningKey) -> bytes:
    """A valid model.sig for a small bundle."""
    bundle = make_bundle(tmp_path / "iris")
    return sign_bundle(bundle, signing_key.signer, name="iris", version=1).read_bytes()


def _replace(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(document)
    target = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return result


@FUZZ
@given(raw=st.binary(max_size=512))
def test_arbitrary_bytes_give_only_verification_errors(signing_key: SigningKey, raw: bytes) -> None:
    # GIVEN arbitrary bytes as model.sig WHEN verified THEN only a typed verification error comes out
    with pytest.raises(VerificationError):
        verify_signature(raw, signing_key.trust)


def _get(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = document
    for key in path:
        value = value[key]
    return value


def test_the_unmutated_signature_verifies(signing_key: SigningKey, signed: bytes) -> None:
    # GIVEN the fixture's signature, re-serialized the way the fuzz cases below are THEN it verifies (so their
    # refusals come from the mutation, not from the round trip)
    assert isinstance(verify_signature(json.dumps(json.loads(signed)).encode(), signing_key.trust), SignedStatement)


@FUZZ
@given(path=st.sampled_from(BUNDLE_PATHS), value=JSON)
def test_mutated_bundle_never_verifies(
    signing_key: SigningKey, signed: bytes, path: tuple[str, ...], value: Any
) -> None:
    # GIVEN a valid bundle with one field (media type, key hint, envelope, payload, payload type, signatures)
    # replaced by a different arbitrary JSON value
    document = json.loads(signed)
    assume(value != _get(document, path))
    mutated = json.dumps(_replace(document, path, value)).encode()

    # WHEN verified THEN it is refused with a typed error: every one of these fields is bound by the signature
    # or must name the trusted key exactly, so no mutation may "still verify"
    with pytest.raises(VerificationError):
        verify_signature(mutated, signing_key.trust)


@FUZZ
@given(payload=st.binary(min_size=1, max_size=1024))
def test_a_replaced_payload_fails_the_signature_check(signing_key: SigningKey, signed: bytes, payload: bytes) -> None:
    # GIVEN the envelope's payload replaced by other bytes (well-formed base64), the signature left as it was
    document = json.loads(signed)
    original = base64.b64decode(document["dsseEnvelope"]["payload"])
    assume(payload != original)
    document["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    # WHEN verified THEN the signature check itself refuses it (the payload is never parsed first)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(json.dumps(document).encode(), signing_key.trust)


@FUZZ
@given(data=st.data())
def test_a_flipped_bit_in_the_payload_or_signature_fails_the_signature_check(
    signing_key: SigningKey, signed: bytes, data: st.DataObject
) -> None:
    # GIVEN one bit flipped in the decoded payload or in the decoded signature
    document = json.loads(signed)
    where = data.draw(st.sampled_from(["payload", "sig"]))
    holder = document["dsseEnvelope"] if where == "payload" else document["dsseEnvelope"]["signatures"][0]
    raw = bytearray(base64.b64decode(holder[where]))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    holder[where] = base64.b64encode(bytes(raw)).decode()
    # WHEN verified THEN it never verifies: a typed signature error (a DER-broken signature included)
    with pytest.raises(SignatureError):
        verify_signature(json.dumps(document).encode(), signing_key.trust)


@FUZZ
@given(path=st.sampled_from(STATEMENT_PATHS), value=JSON)
def test_validly_signed_hostile_statement_gives_only_verification_errors(
    signing_key: SigningKey, signed: bytes, path: tuple[str, ...], value: Any
) -> None:
    # GIVEN a statement with one field replaced by arbitrary JSON, then really signed by the trusted key
    statement = _replace(payload_of(signed), path, value)
    sig_bytes = sign_statement(statement, signing_key.signer)

    # WHEN verified THEN a typed error, or a statement whose fields have the promised types
    try:
        result = verify_signature(sig_bytes, signing_key.trust)
    except VerificationError:
        return
    assert isinstance(result.name, str)
    assert result.version is None or (isinstance(result.version, int) and result.version >= 0)
    assert all(isinstance(k, str) and len(v) == 64 for k, v in result.resources.items())
