"""Push and pull: signature last, immutable versions, no symlinks, byte-identical round trips."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from modelfn.errors import ConfigError, ObjectChanged, ObjectNotFound, PackagingError, StoreError, UnsafeBundleError
from modelfn.repository.transfer import pull_bundle, push_bundle
from modelfn.store.base import ObjectInfo, ProgressCallback, Store
from modelfn.store.local import LocalStore
from modelfn.store.s3 import S3Store


class RecordingStore:
    """A real store that also records, in order, every key written and the bytes reported as progress."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.writes: list[str] = []
        self.progress_bytes = 0
        self.before_write: Callable[[str], None] | None = None

    def list(self, prefix: str) -> list[ObjectInfo]:
        return self.inner.list(prefix)

    def read(self, key: str, *, pin: ObjectInfo | None = None) -> Iterator[bytes]:
        return self.inner.read(key, pin=pin)

    def write_file(self, key: str, path: Path, *, progress: ProgressCallback | None = None) -> None:
        def count(n: int) -> None:
            self.progress_bytes += n
            if progress is not None:
                progress(n)

        self.writes.append(key)
        self.inner.write_file(key, path, progress=count)

    def write_bytes(self, key: str, data: bytes, *, if_none_match: bool = False) -> bool:
        if self.before_write is not None:
            self.before_write(key)
        self.writes.append(key)
        return self.inner.write_bytes(key, data, if_none_match=if_none_match)

    def delete(self, key: str) -> None:
        self.writes.append(f"delete {key}")
        self.inner.delete(key)


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    """A bundle-shaped directory (push neither signs nor verifies, so the signature bytes are opaque)."""
    root = tmp_path / "bundle"
    (root / "assets").mkdir(parents=True)
    (root / "model.onnx").write_bytes(os.urandom(1536 * 1024))
    (root / "manifest.json").write_bytes(b'{"name": "iris", "version": 1}')
    (root / "assets" / "labels.txt").write_bytes(b"setosa\nversicolor\nvirginica\n")
    (root / "model.sig").write_bytes(b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}')
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return S3Store(request.getfixturevalue("s3_bucket"), "registry")


def test_push_then_pull_round_trips_every_byte(store: Store, bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN a bundle pushed as iris v1
    prefix = push_bundle(bundle_dir, store, name="iris", version=1, progress=False)
    # WHEN pulling it into a new directory
    dest = pull_bundle(store, name="iris", version=1, dest=tmp_path / "pulled", progress=False)
    # THEN the pulled files are byte-identical to the pushed ones, stored under the returned prefix
    assert _files(dest) == _files(bundle_dir)
    assert prefix == "iris/1/"
    assert {info.key for info in store.list(prefix)} == {f"iris/1/{rel}" for rel in _files(bundle_dir)}


def test_push_uploads_the_signature_last_and_reports_progress(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN a recording store
    store = RecordingStore(LocalStore(tmp_path / "store"))
    # WHEN pushing
    push_bundle(bundle_dir, store, name="iris", version=1, progress=False)
    # THEN the version was claimed first, every file written once, the hint of latest then the signature
    # after all the others, and the claim released at the end
    claim = ".modelfn-claims/iris/1/1"
    assert store.writes[0] == claim
    assert store.writes[-3:] == ["iris/.latest/1", "iris/1/model.sig", f"delete {claim}"]
    assert sorted(store.writes[1:-3]) == ["iris/1/assets/labels.txt", "iris/1/manifest.json", "iris/1/model.onnx"]
    # AND the progress reported for the uploaded files totals their sizes
    sizes = sum(p.stat().st_size for p in bundle_dir.rglob("*") if p.is_file() and p.name != "model.sig")
    assert store.progress_bytes == sizes


def test_push_refuses_to_overwrite_a_signed_version(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN iris v1 already pushed
    local = LocalStore(tmp_path / "store")
    store = RecordingStore(local)
    push_bundle(bundle_dir, store, name="iris", version=1, progress=False)
    before = _files(local.root)
    store.writes.clear()
    (bundle_dir / "model.onnx").write_bytes(b"a different model")
    # WHEN pushing v1 again / THEN it is refused as immutable, and nothing was written
    with pytest.raises(StoreError, match="version 1 already exists.*immutable"):
        push_bundle(bundle_dir, store, name="iris", version=1, progress=False)
    assert store.writes == []
    assert _files(local.root) == before


def test_push_may_complete_an_interrupted_unsigned_version(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN files of v1 left without a signature by an interrupted push
    store = LocalStore(tmp_path / "store")
    store.write_bytes("iris/1/model.onnx", b"partial")
    # WHEN pushing v1 / THEN it succeeds and the stored model is the new one
    push_bundle(bundle_dir, store, name="iris", version=1, progress=False)
    assert b"".join(store.read("iris/1/model.onnx")) == (bundle_dir / "model.onnx").read_bytes()


def test_push_loses_a_race_for_the_signature_with_a_clear_error(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN another push signs v1 just before this push writes its signature
    store = RecordingStore(LocalStore(tmp_path / "store"))

    def other_push_signs(key: str) -> None:
        if key.endswith("model.sig"):
            store.inner.write_bytes(key, b"other signature")

    store.before_write = other_push_signs
    # WHEN pushing / THEN the conditional signature write loses and the other signature stays
    with pytest.raises(StoreError, match="signed by another push"):
        push_bundle(bundle_dir, store, name="iris", version=1, progress=False)
    assert b"".join(store.read("iris/1/model.sig")) == b"other signature"


def test_push_refuses_symlinks_before_uploading_anything(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN a bundle holding a symlink to a file outside it
    (tmp_path / "secret").write_bytes(b"secret")
    os.symlink(tmp_path / "secret", bundle_dir / "assets" / "vocab.txt")
    store = RecordingStore(LocalStore(tmp_path / "store"))
    # WHEN pushing / THEN it is refused naming the link, and the store is untouched
    with pytest.raises(UnsafeBundleError, match="vocab.txt is a symlink"):
        push_bundle(bundle_dir, store, name="iris", version=1, progress=False)
    assert store.writes == []


def test_push_refuses_an_unsigned_bundle(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN a bundle without model.sig / WHEN pushing / THEN PackagingError says to sign it first
    (bundle_dir / "model.sig").unlink()
    with pytest.raises(PackagingError, match="no model.sig"):
        push_bundle(bundle_dir, LocalStore(tmp_path / "store"), name="iris", version=1, progress=False)


@pytest.mark.parametrize(("name", "version"), [("../iris", 1), ("Iris", 1), ("iris", 0)])
def test_push_refuses_bad_names_and_versions(bundle_dir: Path, tmp_path: Path, name: str, version: int) -> None:
    # GIVEN a name that is not a safe path segment or a non-positive version / THEN ConfigError
    with pytest.raises(ConfigError):
        push_bundle(bundle_dir, LocalStore(tmp_path / "store"), name=name, version=version, progress=False)


def test_push_shows_a_progress_bar_on_stderr(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN progress enabled / WHEN pushing / THEN stderr carries the bar's description and nothing goes to stdout
    push_bundle(bundle_dir, LocalStore(tmp_path / "store"), name="iris", version=3, progress=True)
    captured = capsys.readouterr()
    assert "push iris v3" in captured.err
    assert captured.out == ""


def test_pull_refuses_a_symlinked_object_and_leaves_nothing(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN a pushed version in which a file was replaced by a symlink
    store = LocalStore(tmp_path / "store")
    push_bundle(bundle_dir, store, name="iris", version=1, progress=False)
    target = store.root / "iris" / "1" / "manifest.json"
    target.unlink()
    os.symlink(tmp_path / "elsewhere", target)
    # WHEN pulling / THEN refused before any file is written
    with pytest.raises(UnsafeBundleError, match="manifest.json is a symlink"):
        pull_bundle(store, name="iris", version=1, dest=tmp_path / "pulled", progress=False)
    assert not (tmp_path / "pulled").exists()


def test_pull_refuses_an_object_changed_after_listing_and_cleans_up(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN a store where another writer replaces the model right after the listing
    inner = LocalStore(tmp_path / "store")
    push_bundle(bundle_dir, inner, name="iris", version=1, progress=False)
    store = RecordingStore(inner)

    def list_then_tamper(prefix: str) -> list[ObjectInfo]:
        listed = inner.list(prefix)
        inner.write_bytes("iris/1/model.onnx", b"tampered")
        return listed

    store.list = list_then_tamper  # type: ignore[method-assign]
    dest = tmp_path / "pulled"
    dest.mkdir()
    # WHEN pulling into an empty directory / THEN ObjectChanged, and the directory is left empty
    with pytest.raises(ObjectChanged, match="iris/1/model.onnx"):
        pull_bundle(store, name="iris", version=1, dest=dest, progress=False)
    assert list(dest.iterdir()) == []


def test_pull_of_a_missing_version_is_not_found(tmp_path: Path) -> None:
    # GIVEN an empty store / WHEN pulling / THEN ObjectNotFound names model and version
    with pytest.raises(ObjectNotFound, match="'iris' version 4 not found"):
        pull_bundle(LocalStore(tmp_path / "store"), name="iris", version=4, dest=tmp_path / "d", progress=False)


def test_pull_refuses_a_non_empty_destination(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN a destination holding a stale file / WHEN pulling into it / THEN refused, stale file untouched
    store = LocalStore(tmp_path / "store")
    push_bundle(bundle_dir, store, name="iris", version=1, progress=False)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale.bin").write_bytes(b"old")
    with pytest.raises(ConfigError, match="new or empty directory"):
        pull_bundle(store, name="iris", version=1, dest=dest, progress=False)
    assert _files(dest) == {"stale.bin": b"old"}


@pytest.mark.slow
def test_pull_refuses_keys_that_would_escape_dest(s3_bucket: str, tmp_path: Path) -> None:
    # GIVEN an S3 object whose key climbs out of the version prefix once mapped to a path
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="iris/1/../../../escape.txt", Body=b"x")
    store = S3Store(s3_bucket)
    assert [info.key for info in store.list("iris/1/")] == ["iris/1/../../../escape.txt"]
    # WHEN pulling / THEN the unsafe key is refused and nothing lands outside (or inside) dest
    with pytest.raises(UnsafeBundleError, match="unsafe store key"):
        pull_bundle(store, name="iris", version=1, dest=tmp_path / "a" / "b" / "dest", progress=False)
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "a" / "b" / "dest").exists()
