"""Without hints (a store not written by ``modelfn push``), ``latest`` lists version directory names, not every
file of every version (issue 10 item 4).

The cost of a cold start must not grow with a model's history, and nothing unsigned may pick the
version: a directory counts only once its own listing shows a signature at its root. Both built-in
stores (local directory, S3 on moto_server) are checked, including S3's lexicographic order
(``10`` lists before ``9``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelfn.errors import ObjectNotFound
from modelfn.repository.versions import resolve_listing
from modelfn.store.base import ListsDirectories, ObjectInfo, Store
from modelfn.store.local import LocalStore
from modelfn.store.s3 import S3Store


class _CountingStore:
    """A real store that records every listing it is asked for."""

    def __init__(self, inner: LocalStore | S3Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.listed: list[str] = []
        self.dirs_listed: list[str] = []

    def list(self, prefix: str) -> list[ObjectInfo]:
        self.listed.append(prefix)
        return self.inner.list(prefix)

    def list_dirs(self, prefix: str) -> list[str]:
        self.dirs_listed.append(prefix)
        return self.inner.list_dirs(prefix)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore | S3Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return S3Store(request.getfixturevalue("s3_bucket"), "registry")


def _signed(store: Store, name: str, version: int) -> None:
    store.write_bytes(f"{name}/{version}/model.onnx", b"m")
    store.write_bytes(f"{name}/{version}/model.sig", b"s")


def test_latest_lists_directory_names_and_the_chosen_version_only(store: LocalStore | S3Store) -> None:
    # GIVEN signed versions 1..12 (S3 lists 10, 11, 12 before 9), an in-flight push of 13 (no signature),
    # a directory whose signature is nested, a non-canonical "014" and another model sharing the name prefix
    for version in range(1, 13):
        _signed(store, "iris", version)
    store.write_bytes("iris/13/model.onnx", b"push in flight")
    store.write_bytes("iris/20/nested/model.sig", b"not at the version root")
    store.write_bytes("iris/014/model.sig", b"non-canonical")
    _signed(store, "iris-v2", 99)
    counting = _CountingStore(store)
    assert isinstance(counting, ListsDirectories)
    # WHEN latest is resolved
    version, objects = resolve_listing(counting, "iris", "latest")
    # THEN it is 12, from the (empty) hints, one directory listing and the listings of the candidates 20, 13, 12
    assert version == 12
    assert [o.key for o in objects] == ["iris/12/model.onnx", "iris/12/model.sig"]
    assert counting.dirs_listed == ["iris/"]
    assert counting.listed == ["iris/.latest/", "iris/20/", "iris/13/", "iris/12/"]


def test_directory_listing_names_direct_children_only(store: LocalStore | S3Store) -> None:
    # GIVEN objects at several depths / WHEN listing directories / THEN only the direct children, sorted
    _signed(store, "iris", 2)
    _signed(store, "iris", 10)
    store.write_bytes("iris/file-at-the-top", b"x")
    store.write_bytes("iris/10/deeper/x", b"x")
    assert store.list_dirs("iris/") == ["10", "2"]
    assert store.list_dirs("absent/") == []


def test_no_signed_version_is_not_found(store: LocalStore | S3Store) -> None:
    # GIVEN only unsigned version directories / THEN latest is refused as not found, naming the model
    store.write_bytes("iris/1/model.onnx", b"m")
    with pytest.raises(ObjectNotFound, match="no signed versions of model 'iris'"):
        resolve_listing(store, "iris", "latest")


def test_symlinked_version_directory_or_signature_never_counts(tmp_path: Path) -> None:
    # GIVEN signed version 1, a version 5 that is a symlink to it and a version 7 whose signature is a link
    store = LocalStore(tmp_path / "store")
    _signed(store, "iris", 1)
    os.symlink(store.root / "iris" / "1", store.root / "iris" / "5")
    (store.root / "iris" / "7").mkdir()
    os.symlink(store.root / "iris" / "1" / "model.sig", store.root / "iris" / "7" / "model.sig")
    # WHEN latest is resolved / THEN version 1, the only signed one
    assert resolve_listing(store, "iris", "latest")[0] == 1


def test_a_store_without_directory_listing_resolves_the_same(store: LocalStore | S3Store) -> None:
    # GIVEN a plugin store that can only list objects (the full listing path)
    class ObjectsOnly:
        url = store.url

        def list(self, prefix: str) -> list[ObjectInfo]:
            return store.list(prefix)

    for version in (1, 2, 10):
        _signed(store, "iris", version)
    store.write_bytes("iris/11/model.onnx", b"push in flight")
    # WHEN latest is resolved through it / THEN the same version and objects as with directory listing
    plain = ObjectsOnly()
    assert not isinstance(plain, ListsDirectories)
    assert resolve_listing(plain, "iris", "latest") == resolve_listing(store, "iris", "latest")  # type: ignore[arg-type]
