"""Local directory store: symlinks are listed but never followed, writes are atomic and exclusive."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from modelfn.errors import ObjectChanged, ObjectNotFound, StoreError, UnsafeBundleError
from modelfn.store.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_symlinked_file_is_listed_as_link_and_never_read(store: LocalStore, tmp_path: Path) -> None:
    # GIVEN a bundle whose model file is a symlink to a secret outside the store
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"do not leak")
    store.write_bytes("m/1/manifest.json", b"{}")
    os.symlink(secret, store.root / "m" / "1" / "model.onnx")
    # WHEN listing and reading it
    listed = {info.key: info for info in store.list("m/1/")}
    # THEN the listing reports the link and the read refuses it, naming the key
    assert listed["m/1/model.onnx"].is_link is True
    assert listed["m/1/manifest.json"].is_link is False
    with pytest.raises(UnsafeBundleError, match="m/1/model.onnx.*symlink"):
        b"".join(store.read("m/1/model.onnx"))


def test_symlinked_directory_is_not_followed(store: LocalStore, tmp_path: Path) -> None:
    # GIVEN a version directory that is a symlink to a directory outside the store
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.onnx").write_bytes(b"elsewhere")
    (store.root / "m").mkdir(parents=True)
    os.symlink(outside, store.root / "m" / "1")
    # WHEN listing the model and reading through the link
    listed = store.list("m/")
    # THEN the link shows up as a link (its target's files do not), and reads through it are refused
    assert [(info.key, info.is_link) for info in listed] == [("m/1", True)]
    with pytest.raises(UnsafeBundleError, match="symlink"):
        b"".join(store.read("m/1/model.onnx"))
    with pytest.raises(UnsafeBundleError, match="symlink"):
        store.list("m/1/")
    with pytest.raises(UnsafeBundleError, match="symlink"):
        store.write_bytes("m/1/model.onnx", b"overwrite the target?")
    assert (outside / "model.onnx").read_bytes() == b"elsewhere"


def test_fifo_is_refused_without_blocking(store: LocalStore) -> None:
    # GIVEN a named pipe where a model file should be
    (store.root / "m" / "1").mkdir(parents=True)
    os.mkfifo(store.root / "m" / "1" / "model.onnx")
    # WHEN reading it / THEN it is refused as not a regular file (and the open did not wait for a writer)
    with pytest.raises(UnsafeBundleError, match="not a regular file"):
        b"".join(store.read("m/1/model.onnx"))


def test_concurrent_conditional_writers_exactly_one_wins(store: LocalStore) -> None:
    # GIVEN eight threads racing to write the same key with if_none_match
    results: dict[int, bool] = {}
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        barrier.wait()
        results[i] = store.write_bytes("out/result.json", f"writer-{i}".encode(), if_none_match=True)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly one reports success, and its content is the stored one
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1
    assert b"".join(store.read("out/result.json")) == f"writer-{winners[0]}".encode()
    # AND no temporary files are left behind or listed
    assert sorted(os.listdir(store.root / "out")) == ["result.json"]


def test_pinned_read_detects_in_place_modification_during_stream(store: LocalStore) -> None:
    # GIVEN a file larger than one chunk, opened for a pinned read
    store.write_bytes("m/1/model.onnx", b"a" * (3 * 1024 * 1024))
    (pinned,) = store.list("m/1/")
    chunks = store.read("m/1/model.onnx", pin=pinned)
    first = next(chunks)
    # WHEN someone appends to it in place while it streams
    with open(store.root / "m" / "1" / "model.onnx", "ab") as handle:
        handle.write(b"tail")
    # THEN the stream ends with ObjectChanged instead of silently returning mixed bytes
    assert first
    with pytest.raises(ObjectChanged, match="modified while"):
        list(chunks)


def test_read_of_key_under_a_file_is_not_found(store: LocalStore) -> None:
    # GIVEN "m" is a file / WHEN reading "m/1/x" / THEN the key simply does not exist
    store.write_bytes("m", b"file")
    with pytest.raises(ObjectNotFound):
        b"".join(store.read("m/1/x"))


def test_write_file_of_missing_source_is_a_store_error(store: LocalStore, tmp_path: Path) -> None:
    # GIVEN a source path that does not exist / WHEN uploading / THEN a StoreError names the path
    with pytest.raises(StoreError, match="absent.onnx"):
        store.write_file("m/1/model.onnx", tmp_path / "absent.onnx")
    assert store.list("") == []


def test_url_is_a_file_url_of_the_absolute_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a relative root / WHEN building the store / THEN its URL is the absolute file:// URL
    monkeypatch.chdir(tmp_path)
    store = LocalStore(".modelfn/store")
    assert store.url == (tmp_path / ".modelfn" / "store").as_uri()
