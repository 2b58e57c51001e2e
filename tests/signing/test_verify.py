"""Every verifier rule of SECURITY.md (1-6, 9-12), each shown by a bundle that must be refused."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import modelfn.signing.verify as verify_module
from modelfn.errors import (
    ConfigError,
    IntegrityError,
    PolicyError,
    SignatureError,
    UnsafeBundleError,
    UntrustedKeyError,
    VerificationError,
)
from modelfn.signing import _tree
from modelfn.signing.keys import TrustSet
from modelfn.signing.sign import sign_bundle
from modelfn.signing.statement import MAX_RESOURCES
from modelfn.signing.verify import VerifyPolicy, check_digest, check_file_set, verify_directory, verify_signature
from tests.fixtures.keys import SigningKey
from tests.signing.helpers import (
    BUNDLE_FILES,
    edit_bundle,
    make_bundle,
    sign_payload,
    sign_statement,
    statement_for,
)


@pytest.fixture
def bundle(tmp_path: Path, signing_key: SigningKey) -> Path:
    """A bundle signed by the trusted key at version 3."""
    directory = make_bundle(tmp_path / "iris")
    sign_bundle(directory, signing_key.signer, name="iris", version=3)
    return directory


def _write_sig(bundle: Path, sig_bytes: bytes) -> None:
    (bundle / "model.sig").write_bytes(sig_bytes)


# --- the happy path ------------------------------------------------------------------------


def test_valid_bundle_returns_the_exact_bytes_that_were_hashed(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN a bundle signed by a trusted key
    # WHEN it is verified
    verified = verify_directory(bundle, signing_key.trust)

    # THEN the statement is the signed one and the files are exactly the bytes on disk, signature excluded
    assert verified.files == BUNDLE_FILES
    assert (verified.statement.name, verified.statement.version, verified.statement.key_hint) == (
        "iris",
        3,
        signing_key.hint,
    )
    assert set(verified.statement.resources) == set(BUNDLE_FILES)


# --- rule 1: one flipped bit ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUNDLE_FILES))
def test_flipped_bit_in_any_signed_file_names_the_file(bundle: Path, signing_key: SigningKey, name: str) -> None:
    # GIVEN one bit flipped in one signed file
    data = bytearray((bundle / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / name).write_bytes(bytes(data))

    # WHEN / THEN verification raises IntegrityError naming that file
    with pytest.raises(IntegrityError, match=name) as info:
        verify_directory(bundle, signing_key.trust)
    assert info.value.field == name


# --- rule 2: bad DSSE signature, payload never parsed first ----------------------------------


def test_tampered_signature_is_refused(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN the signature bytes changed
    def corrupt(b: dict[str, Any]) -> None:
        sig = bytearray(base64.b64decode(b["dsseEnvelope"]["signatures"][0]["sig"]))
        sig[-1] ^= 0x01
        b["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()

    _write_sig(bundle, edit_bundle((bundle / "model.sig").read_bytes(), corrupt))

    # WHEN / THEN SignatureError
    with pytest.raises(SignatureError, match="does not verify"):
        verify_directory(bundle, signing_key.trust)


def test_swapped_payload_is_refused(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN an attacker's statement (digests of tampered files) under the original signature
    (bundle / "model.onnx").write_bytes(b"evil model")
    evil = json.dumps(statement_for(bundle)).encode()

    def swap(b: dict[str, Any]) -> None:
        b["dsseEnvelope"]["payload"] = base64.b64encode(evil).decode()

    _write_sig(bundle, edit_bundle((bundle / "model.sig").read_bytes(), swap))

    # WHEN / THEN the signature no longer verifies
    with pytest.raises(SignatureError, match="does not verify"):
        verify_directory(bundle, signing_key.trust)


def test_payload_is_not_parsed_before_the_signature_passes(
    signing_key: SigningKey, other_signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a spy on the payload JSON decoder, and a payload that is not JSON, signed badly
    calls: list[bytes] = []
    real_load = verify_module._load_json

    def spy(payload: bytes) -> Any:
        calls.append(payload)
        return real_load(payload)

    monkeypatch.setattr(verify_module, "_load_json", spy)
    good = sign_payload(b"{not json", signing_key.signer)
    forged = sign_payload(b"{not json", other_signing_key.signer)
    badly_signed = edit_bundle(
        good, lambda b: b["dsseEnvelope"].__setitem__("signatures", json.loads(forged)["dsseEnvelope"]["signatures"])
    )

    # WHEN the badly signed one is verified THEN it is a signature failure and the decoder never ran
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(badly_signed, signing_key.trust)
    assert calls == []

    # WHEN the same payload is well signed THEN the decoder runs and reports the JSON problem instead
    with pytest.raises(SignatureError, match="not valid JSON"):
        verify_signature(good, signing_key.trust)
    assert calls == [b"{not json"]


# --- rule 3: files outside the signed list ---------------------------------------------------


@pytest.mark.parametrize("extra", ["notes.txt", "extra/more.bin", ".gitignore"])
def test_unsigned_file_is_refused(bundle: Path, signing_key: SigningKey, extra: str) -> None:
    # GIVEN a file that the signature does not list
    make_bundle(bundle, {extra: b"unsigned"})

    # WHEN / THEN the bundle is refused, naming the file
    with pytest.raises(UnsafeBundleError, match="not signed") as info:
        verify_directory(bundle, signing_key.trust)
    assert info.value.field == extra


def test_signed_ignore_paths_do_not_widen_what_is_ignored(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a statement (validly signed) whose serialization claims to ignore notes.txt, and notes.txt present
    directory = make_bundle(tmp_path / "iris")
    statement = statement_for(directory)
    statement["predicate"]["serialization"]["ignore_paths"] = ["model.sig", "notes.txt"]
    _write_sig(directory, sign_statement(statement, signing_key.signer))
    make_bundle(directory, {"notes.txt": b"unsigned"})

    # WHEN / THEN notes.txt is still refused: only model.sig is ever ignored
    with pytest.raises(UnsafeBundleError, match="notes.txt"):
        verify_directory(directory, signing_key.trust)


def test_missing_signed_file_is_refused(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN a signed file deleted
    (bundle / "extra" / "vocab.txt").unlink()

    # WHEN / THEN IntegrityError names it
    with pytest.raises(IntegrityError, match="extra/vocab.txt"):
        verify_directory(bundle, signing_key.trust)


def test_check_file_set_and_check_digest_for_streaming_callers(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN a verified statement, as a store-backed loader would hold it
    statement = verify_signature((bundle / "model.sig").read_bytes(), signing_key.trust)

    # WHEN listings and digests are checked one by one
    # THEN exact sets pass (model.sig is allowed), extra and missing are refused, digests are compared
    check_file_set(statement, [*BUNDLE_FILES, "model.sig"])
    with pytest.raises(UnsafeBundleError):
        check_file_set(statement, [*BUNDLE_FILES, "evil.onnx"])
    with pytest.raises(IntegrityError, match="model.onnx"):
        check_file_set(statement, ["manifest.json", "extra/vocab.txt"])
    check_digest(statement, "model.onnx", statement.resources["model.onnx"].upper())
    with pytest.raises(IntegrityError, match="model.onnx"):
        check_digest(statement, "model.onnx", "00" * 32)
    with pytest.raises(UnsafeBundleError):
        check_digest(statement, "evil.onnx", "00" * 32)


# --- rule 4: unsafe names refused before any file is opened; symlinks --------------------------


@pytest.mark.parametrize(
    "names",
    [
        ["../outside.onnx"],
        ["/etc/passwd"],
        ["sub\\model.onnx"],
        ["manifest.json", "manifest.json"],
        ["model.onnx", "manifest.json"],
        [],
    ],
    ids=["dotdot", "absolute", "backslash", "duplicate", "unsorted", "empty"],
)
def test_unsafe_resource_lists_are_refused_before_any_file_is_opened(
    tmp_path: Path, signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch, names: list[str]
) -> None:
    # GIVEN a validly signed statement with a hostile resource list, and a spy on file reads
    directory = make_bundle(tmp_path / "iris")
    statement = statement_for(directory)
    statement["predicate"]["resources"] = [{"name": n, "algorithm": "sha256", "digest": "ab" * 32} for n in names]
    _write_sig(directory, sign_statement(statement, signing_key.signer))
    opened: list[str] = []
    real_read = _tree.read_regular_file

    def spy(path: Path, *, limit: int | None = None) -> bytes:
        opened.append(path.name)
        return real_read(path, limit=limit)

    monkeypatch.setattr(verify_module, "read_regular_file", spy)

    # WHEN / THEN it is refused as unsafe, and only model.sig was ever opened
    with pytest.raises(UnsafeBundleError):
        verify_directory(directory, signing_key.trust)
    assert opened == ["model.sig"]


@pytest.mark.parametrize("where", ["file", "directory", "model.sig", "bundle itself"])
def test_any_symlink_is_refused(tmp_path: Path, bundle: Path, signing_key: SigningKey, where: str) -> None:
    # GIVEN a symlink somewhere in (or as) a correctly signed bundle
    target = bundle
    if where == "file":
        os.rename(bundle / "model.onnx", tmp_path / "real.onnx")
        (bundle / "model.onnx").symlink_to(tmp_path / "real.onnx")
    elif where == "directory":
        os.rename(bundle / "extra", tmp_path / "real-extra")
        (bundle / "extra").symlink_to(tmp_path / "real-extra")
    elif where == "model.sig":
        os.rename(bundle / "model.sig", tmp_path / "real.sig")
        (bundle / "model.sig").symlink_to(tmp_path / "real.sig")
    else:
        target = tmp_path / "link-to-bundle"
        target.symlink_to(bundle)

    # WHEN / THEN it is refused, whatever the signature says
    with pytest.raises(UnsafeBundleError, match="symlink"):
        verify_directory(target, signing_key.trust)


# --- rule 5: legacy or ambiguous envelopes -----------------------------------------------------


def _legacy_v01(statement: dict[str, Any]) -> None:
    statement["predicateType"] = "https://model_signing/Digests/v0.1"
    statement["subject"] = [
        {"name": r["name"], "digest": {"sha256": r["digest"]}} for r in statement["predicate"]["resources"]
    ]
    statement["predicate"] = {}


LEGACY_STATEMENTS = {
    "Digests v0.1": _legacy_v01,
    "other statement type": lambda s: s.__setitem__("_type", "https://in-toto.io/Statement/v0.1"),
    "shards serialization": lambda s: s["predicate"]["serialization"].__setitem__("method", "shards"),
    "symlinks allowed": lambda s: s["predicate"]["serialization"].__setitem__("allow_symlinks", True),
    "sha512 resources": lambda s: s["predicate"]["resources"][0].__setitem__("algorithm", "sha512"),
    "two subjects": lambda s: s.__setitem__("subject", s["subject"] * 2),
    "root digest not of resources": lambda s: s["subject"][0]["digest"].__setitem__("sha256", "00" * 32),
    "modelfn name differs": lambda s: s["predicate"]["modelfn"].__setitem__("name", "other"),
    "version not an integer": lambda s: s["predicate"]["modelfn"].__setitem__("version", "3"),
    "naive not_after": lambda s: s["predicate"]["modelfn"].__setitem__("not_after", "2031-01-01T00:00:00"),
}


@pytest.mark.parametrize("edit", LEGACY_STATEMENTS.values(), ids=LEGACY_STATEMENTS.keys())
def test_legacy_or_ambiguous_statements_are_refused(tmp_path: Path, signing_key: SigningKey, edit: Any) -> None:
    # GIVEN a statement in a legacy or ambiguous form, validly signed by a trusted key
    directory = make_bundle(tmp_path / "iris")
    statement = statement_for(directory)
    edit(statement)
    _write_sig(directory, sign_statement(statement, signing_key.signer))

    # WHEN / THEN it is refused
    with pytest.raises(SignatureError):
        verify_directory(directory, signing_key.trust)


def test_envelope_shape_checks_apply_to_really_signed_bundles(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN the valid model.sig, then variants: no hint, two valid signatures, another payload type (signed as such)
    sig_bytes = (bundle / "model.sig").read_bytes()
    no_hint = edit_bundle(sig_bytes, lambda b: b["verificationMaterial"]["publicKey"].pop("hint"))
    two_sigs = edit_bundle(
        sig_bytes, lambda b: b["dsseEnvelope"]["signatures"].append(b["dsseEnvelope"]["signatures"][0])
    )
    payload = base64.b64decode(json.loads(sig_bytes)["dsseEnvelope"]["payload"])
    other_type = sign_payload(payload, signing_key.signer, payload_type="application/json")
    wrong_media = edit_bundle(
        sig_bytes, lambda b: b.__setitem__("mediaType", "application/vnd.dev.sigstore.bundle+json;version=0.1")
    )

    # WHEN / THEN each is refused, while the original passes
    assert verify_signature(sig_bytes, signing_key.trust).version == 3
    for bad in (no_hint, two_sigs, other_type, wrong_media):
        with pytest.raises(SignatureError):
            verify_signature(bad, signing_key.trust)


# --- rules 6 and 11: only the trust set -----------------------------------------------------------


def test_valid_signature_by_untrusted_key_is_refused_even_with_an_embedded_key(
    tmp_path: Path, signing_key: SigningKey, other_signing_key: SigningKey
) -> None:
    # GIVEN a bundle correctly signed by a key outside the trust set, which also embeds that key
    directory = make_bundle(tmp_path / "iris")
    sign_bundle(directory, other_signing_key.signer, name="iris", version=3)
    raw_key = base64.b64encode(other_signing_key.public_path.read_bytes()).decode()
    _write_sig(
        directory,
        edit_bundle(
            (directory / "model.sig").read_bytes(),
            lambda b: b["verificationMaterial"]["publicKey"].update(
                rawBytes=raw_key, keyDetails="PKIX_ECDSA_P256_SHA_256"
            ),
        ),
    )

    # WHEN / THEN it is refused as untrusted, and it verifies with the signer's own trust set (so it is valid)
    with pytest.raises(UntrustedKeyError, match="not in the trust set"):
        verify_directory(directory, signing_key.trust)
    assert verify_directory(directory, other_signing_key.trust).statement.key_hint == other_signing_key.hint


def test_forged_hint_is_a_signature_failure(
    tmp_path: Path, signing_key: SigningKey, other_signing_key: SigningKey
) -> None:
    # GIVEN a bundle signed by an untrusted key that claims the trusted key's hint
    directory = make_bundle(tmp_path / "iris")
    sign_bundle(directory, other_signing_key.signer, name="iris", version=3)
    forged = edit_bundle(
        (directory / "model.sig").read_bytes(),
        lambda b: b["verificationMaterial"]["publicKey"].__setitem__("hint", signing_key.hint),
    )

    # WHEN / THEN the trusted key does not verify it
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(forged, signing_key.trust)


def test_empty_trust_set_is_a_clear_error(bundle: Path) -> None:
    # GIVEN no trusted keys WHEN verifying THEN the error says so
    with pytest.raises(UntrustedKeyError, match="no trusted keys"):
        verify_directory(bundle, TrustSet())


def test_removing_a_key_from_the_trust_set_revokes_its_bundles(
    tmp_path: Path, signing_key: SigningKey, other_signing_key: SigningKey
) -> None:
    # GIVEN two bundles, one per key, and a trust set holding both keys
    first = make_bundle(tmp_path / "a")
    second = make_bundle(tmp_path / "b")
    sign_bundle(first, signing_key.signer, name="iris", version=1)
    sign_bundle(second, other_signing_key.signer, name="iris", version=1)
    both = TrustSet.from_entries([str(signing_key.public_path), str(other_signing_key.public_path)])
    assert verify_directory(first, both).statement.key_hint == signing_key.hint
    assert verify_directory(second, both).statement.key_hint == other_signing_key.hint

    # WHEN the other key is removed
    reduced = TrustSet.from_entries([str(signing_key.public_path)])

    # THEN its bundle fails and the remaining key's bundle still passes
    with pytest.raises(UntrustedKeyError):
        verify_directory(second, reduced)
    assert verify_directory(first, reduced).statement.version == 1


# --- rule 10: anti-rollback, expiry, pinning ---------------------------------------------------------


def test_min_version(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN a bundle signed at version 3
    # WHEN the minimum is 3 THEN it passes; WHEN it is 4 THEN PolicyError
    assert verify_directory(bundle, signing_key.trust, VerifyPolicy(min_version=3)).statement.version == 3
    with pytest.raises(PolicyError, match="below the minimum 4"):
        verify_directory(bundle, signing_key.trust, VerifyPolicy(min_version=4))


def test_expiry(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a bundle that expires at a fixed moment
    directory = make_bundle(tmp_path / "iris")
    expiry = datetime(2030, 6, 1, tzinfo=UTC)
    sign_bundle(directory, signing_key.signer, name="iris", version=1, not_after=expiry)

    # WHEN checked just before / at the expiry
    before = verify_directory(directory, signing_key.trust, VerifyPolicy(now=expiry - timedelta(seconds=1)))

    # THEN it passes before and is refused at and after
    assert before.statement.not_after == expiry
    with pytest.raises(PolicyError, match="expired"):
        verify_directory(directory, signing_key.trust, VerifyPolicy(now=expiry))
    with pytest.raises(ConfigError):
        verify_directory(directory, signing_key.trust, VerifyPolicy(now=datetime(2030, 1, 1)))


def test_pinned_digest(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN the bundle's root digest
    root = verify_directory(bundle, signing_key.trust).statement.root_digest

    # WHEN pinned to it THEN it passes; WHEN pinned to another THEN PolicyError
    assert verify_directory(bundle, signing_key.trust, VerifyPolicy(pinned_digest=root)).statement.root_digest == root
    with pytest.raises(PolicyError, match="pinned"):
        verify_directory(bundle, signing_key.trust, VerifyPolicy(pinned_digest="0" * 64))


def test_unversioned_bundle_fails_a_minimum_version(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a statement without modelfn's fields (as model_signing writes it), validly signed
    directory = make_bundle(tmp_path / "iris")
    statement = statement_for(directory)
    del statement["predicate"]["modelfn"]
    _write_sig(directory, sign_statement(statement, signing_key.signer))

    # WHEN / THEN it passes with no minimum (version None), and is refused once a minimum is set
    assert verify_directory(directory, signing_key.trust).statement.version is None
    with pytest.raises(PolicyError, match="no signed version"):
        verify_directory(directory, signing_key.trust, VerifyPolicy(min_version=1))


# --- rule 12 and DoS caps ---------------------------------------------------------------------------


def test_pickle_file_is_refused_at_verify_time(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a statement that lists a pickle file, validly signed, and the file present
    directory = make_bundle(tmp_path / "iris", {"clf.joblib": b"\x80\x04K\x01.", "manifest.json": b"{}"})
    statement = statement_for(make_bundle(tmp_path / "twin", {"clf.txt": b"\x80\x04K\x01.", "manifest.json": b"{}"}))
    statement["predicate"]["resources"][0]["name"] = "clf.joblib"
    _write_sig(directory, sign_statement(statement, signing_key.signer))

    # WHEN / THEN it is refused by extension
    with pytest.raises(UnsafeBundleError, match="pickle"):
        verify_directory(directory, signing_key.trust)


def test_unlisted_pickle_file_is_refused(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN an unlisted .pt file dropped into a signed bundle WHEN / THEN refused as pickle
    make_bundle(bundle, {"weights.pt": b"\x80\x04K\x01."})
    with pytest.raises(UnsafeBundleError, match="pickle"):
        verify_directory(bundle, signing_key.trust)


def test_too_many_resources_are_refused(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a validly signed statement listing more files than the cap
    directory = make_bundle(tmp_path / "iris")
    statement = statement_for(directory)
    statement["predicate"]["resources"] = [
        {"name": f"f{i:06d}", "algorithm": "sha256", "digest": "ab" * 32} for i in range(MAX_RESOURCES + 1)
    ]

    # WHEN / THEN it is refused before anything else
    with pytest.raises(UnsafeBundleError, match="more than"):
        verify_signature(sign_statement(statement, signing_key.signer), signing_key.trust)


def test_oversized_model_sig_is_refused(bundle: Path, signing_key: SigningKey) -> None:
    # GIVEN a model.sig padded past 1 MiB WHEN / THEN refused without parsing
    sig_bytes = (bundle / "model.sig").read_bytes()
    _write_sig(bundle, sig_bytes + b" " * (1024 * 1024))
    with pytest.raises(VerificationError, match="larger than"):
        verify_directory(bundle, signing_key.trust)


def test_unsigned_bundle_is_refused(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a bundle without model.sig WHEN / THEN it is refused as unsigned
    directory = make_bundle(tmp_path / "iris")
    with pytest.raises(SignatureError, match="no model.sig"):
        verify_directory(directory, signing_key.trust)


def test_file_swapped_for_a_symlink_after_listing_is_not_followed(tmp_path: Path) -> None:
    # GIVEN a path that became a symlink after the directory was listed
    from modelfn.signing._tree import read_regular_file

    (tmp_path / "real.onnx").write_bytes(b"outside")
    (tmp_path / "model.onnx").symlink_to(tmp_path / "real.onnx")

    # WHEN / THEN reading it refuses to follow the link
    with pytest.raises(UnsafeBundleError, match="symlink"):
        read_regular_file(tmp_path / "model.onnx")
