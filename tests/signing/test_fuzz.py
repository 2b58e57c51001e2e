"""Fuzzing the signature bytes and the signed statement: only typed verification errors, never a crash."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelfn.errors import VerificationError
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


@FUZZ
@given(path=st.sampled_from(BUNDLE_PATHS), value=JSON)
def test_mutated_bundle_gives_only_verification_errors(
    signing_key: SigningKey, signed: bytes, path: tuple[str, ...], value: Any
) -> None:
    # GIVEN a valid bundle with one field replaced by arbitrary JSON
    mutated = json.dumps(_replace(json.loads(signed), path, value)).encode()

    # WHEN verified THEN it either still verifies (the value was harmless) or raises a typed error
    try:
        result = verify_signature(mutated, signing_key.trust)
    except VerificationError:
        return
    assert isinstance(result, SignedStatement)


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
