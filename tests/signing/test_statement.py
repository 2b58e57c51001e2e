"""The signed statement: model_signing v1.0 field spelling, canonical order, root digest, safe names."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from modelfn.errors import ConfigError, UnsafeBundleError
from modelfn.signing.statement import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    build_statement,
    check_resource_name,
    check_resource_names,
    root_digest,
)

D1, D2, D3 = ("11" * 32), ("22" * 32), ("33" * 32)


def test_root_digest_is_sha256_over_raw_digests_in_canonical_order() -> None:
    # GIVEN resources whose string order and path-component order differ ('.' < '/' but 'a' < 'a.txt')
    resources = {"a.txt": D1, "a/b": D2, "b": D3}

    # WHEN the root digest is computed
    digest = root_digest(resources)

    # THEN it hashes the raw digests in path-component order: a/b, a.txt, b
    expected = hashlib.sha256(bytes.fromhex(D2) + bytes.fromhex(D1) + bytes.fromhex(D3)).hexdigest()
    assert digest == expected


def test_build_statement_has_the_model_signing_v1_shape() -> None:
    # GIVEN two files and an expiry in another time zone
    not_after = datetime(2031, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))

    # WHEN the statement is built
    statement = build_statement({"model.onnx": D1, "manifest.json": D2}, name="iris", version=7, not_after=not_after)

    # THEN every field is spelled as model_signing reads it, resources sorted, expiry in UTC
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE == "https://model_signing/signature/v1.0"
    assert statement["subject"] == [
        {"name": "iris", "digest": {"sha256": root_digest({"model.onnx": D1, "manifest.json": D2})}}
    ]
    predicate = statement["predicate"]
    assert predicate["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": ["model.sig"],
    }
    assert predicate["resources"] == [
        {"name": "manifest.json", "algorithm": "sha256", "digest": D2},
        {"name": "model.onnx", "algorithm": "sha256", "digest": D1},
    ]
    assert predicate["modelfn"] == {"name": "iris", "version": 7, "not_after": "2031-01-01T00:00:00Z"}


def test_build_statement_refuses_naive_expiry_and_bad_digests() -> None:
    # GIVEN a naive datetime and an uppercase digest
    # WHEN / THEN both are refused at sign time
    with pytest.raises(ConfigError, match="timezone"):
        build_statement({"m": D1}, name="iris", version=1, not_after=datetime(2031, 1, 1))
    with pytest.raises(ConfigError, match="lowercase hex"):
        build_statement({"m": "AB" * 32}, name="iris", version=1)
    assert build_statement({"m": D1}, name="iris", version=1, not_after=datetime.now(UTC))["predicate"]["modelfn"]


@pytest.mark.parametrize(
    "name",
    [
        "../model.onnx",
        "a/../../b",
        "/etc/passwd",
        "a\\b",
        "",
        "a//b",
        "./a",
        "a/.",
        "c:model.onnx",
        "a\x00b",
        "model.sig",
        "weights.pkl",
        "weights.PT",
        "sub/state.joblib",
        "x" * 2000,
        7,
    ],
)
def test_unsafe_resource_names_are_refused(name: object) -> None:
    # GIVEN a name that could escape the bundle, read two ways, or hold pickle
    # WHEN / THEN it is refused as an unsafe bundle
    with pytest.raises(UnsafeBundleError):
        check_resource_name(name)


@pytest.mark.parametrize(
    "names",
    [[], ["a", "a"], ["b", "a"], ["a/b", "a.txt"][::-1]],
    ids=["empty", "duplicate", "unsorted", "string-sorted-not-component-sorted"],
)
def test_bad_resource_lists_are_refused(names: list[str]) -> None:
    # GIVEN an empty, duplicated or out-of-order list
    # WHEN / THEN it is refused
    with pytest.raises(UnsafeBundleError):
        check_resource_names(names)


def test_canonical_list_is_accepted() -> None:
    # GIVEN names in path-component order WHEN checked THEN nothing is raised
    check_resource_names(["a/b", "a.txt", "extra/vocab.txt", "manifest.json", "model.onnx"])
