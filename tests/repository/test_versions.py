"""Version listing and resolution: only signed, canonical integer versions count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelfn.errors import ConfigError, ObjectNotFound
from modelfn.repository.versions import list_versions, next_version, resolve_listing, resolve_version
from modelfn.store.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """A store holding signed versions 1, 2 and 10 of 'iris' plus everything that must not count as a version."""
    store = LocalStore(tmp_path / "store")
    for version in (1, 2, 10):
        store.write_bytes(f"iris/{version}/model.onnx", b"m")
        store.write_bytes(f"iris/{version}/model.sig", b"s")
    store.write_bytes("iris/11/model.onnx", b"push in flight: no signature yet")
    store.write_bytes("iris/03/model.sig", b"non-canonical number")
    store.write_bytes("iris/0/model.sig", b"versions start at 1")
    store.write_bytes("iris/latest/model.sig", b"not a number")
    store.write_bytes("iris/12/nested/model.sig", b"signature not at the version root")
    store.write_bytes("iris-v2/99/model.sig", b"another model sharing a name prefix")
    (store.root / "iris" / "13").mkdir()
    os.symlink(store.root / "iris" / "10" / "model.sig", store.root / "iris" / "13" / "model.sig")
    return store


def test_list_versions_counts_only_signed_integer_directories(store: LocalStore) -> None:
    # GIVEN the store above / WHEN listing versions / THEN only 1, 2, 10 are versions, numerically sorted
    assert list_versions(store, "iris") == [1, 2, 10]
    assert list_versions(store, "unknown") == []


def test_latest_is_the_highest_signed_version(store: LocalStore) -> None:
    # GIVEN unsigned (11), nested (12) and symlinked (13) signatures above 10 / WHEN resolving latest / THEN 10
    assert resolve_version(store, "iris", "latest") == 10


def test_explicit_version_resolves_only_when_signed(store: LocalStore) -> None:
    # GIVEN the store above / WHEN asking for 2 / THEN 2
    assert resolve_version(store, "iris", "2") == 2
    # WHEN asking for the unsigned version 11 / THEN not found, listing what exists
    with pytest.raises(ObjectNotFound, match=r"version 11 not found .*signed versions: 1, 2, 10"):
        resolve_version(store, "iris", "11")


def test_latest_of_an_unknown_model_is_not_found(store: LocalStore) -> None:
    # GIVEN no versions of 'absent' / WHEN resolving latest / THEN ObjectNotFound names the model and store
    with pytest.raises(ObjectNotFound, match=f"no signed versions of model 'absent' in {store.url}"):
        resolve_version(store, "absent", "latest")


@pytest.mark.parametrize("wanted", ["v2", "-1", "0", "1.5", ""])
def test_malformed_version_is_a_config_error(store: LocalStore, wanted: str) -> None:
    # GIVEN a version that is neither a positive integer nor 'latest' / THEN ConfigError says what is accepted
    with pytest.raises(ConfigError, match="positive integer or 'latest'"):
        resolve_version(store, "iris", wanted)


def test_next_version_follows_the_highest_signed_version(store: LocalStore, tmp_path: Path) -> None:
    # GIVEN signed versions up to 10 (and an unsigned leftover 11) / THEN the next version is 11
    assert next_version(store, "iris") == 11
    # AND a new model starts at 1
    assert next_version(LocalStore(tmp_path / "empty"), "iris") == 1


def test_invalid_model_name_is_refused(store: LocalStore) -> None:
    # GIVEN a name that could escape its directory / WHEN listing / THEN ConfigError before the store is touched
    with pytest.raises(ConfigError, match="model name"):
        list_versions(store, "../iris")


def test_resolve_listing_keeps_only_the_chosen_versions_objects(store: LocalStore) -> None:
    # GIVEN signed versions 1, 2 and 10 (prefix "iris/1/" must not match "iris/10/")
    # WHEN latest and an explicit version are resolved, each from one listing
    latest, objects = resolve_listing(store, "iris", "latest")
    first, first_objects = resolve_listing(store, "iris", "1")
    # THEN each returns its own version's objects only
    assert latest == 10 and sorted(i.key for i in objects) == ["iris/10/model.onnx", "iris/10/model.sig"]
    assert first == 1 and sorted(i.key for i in first_objects) == ["iris/1/model.onnx", "iris/1/model.sig"]


@pytest.mark.parametrize("wanted", ["11", "13", "99"])
def test_resolve_listing_refuses_unsigned_or_linked_versions(store: LocalStore, wanted: str) -> None:
    with pytest.raises(ObjectNotFound, match="signed versions: 1, 2, 10"):
        resolve_listing(store, "iris", wanted)


def test_resolve_listing_refuses_non_canonical_versions(store: LocalStore) -> None:
    with pytest.raises(ConfigError):
        resolve_listing(store, "iris", "03")
