"""Behaviour every store shares, run against the local directory store and S3 (moto_server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelfn.errors import ObjectChanged, ObjectNotFound, UnsafeBundleError
from modelfn.store.base import CHUNK_BYTES, ObjectInfo, Store


def _read(store: Store, key: str, pin: ObjectInfo | None = None) -> bytes:
    return b"".join(store.read(key, pin=pin))


def test_bytes_round_trip_and_sorted_listing(any_store: Store) -> None:
    # GIVEN objects written out of order, one under a sibling prefix that shares a string prefix
    any_store.write_bytes("m/10/a.bin", b"ten")
    any_store.write_bytes("m/1/model.onnx", b"onnx-bytes")
    any_store.write_bytes("m/1/manifest.json", b"{}")
    # WHEN listing one version's prefix
    listed = any_store.list("m/1/")
    # THEN only that prefix is listed, sorted, with sizes and ETags, and bytes read back equal
    assert [info.key for info in listed] == ["m/1/manifest.json", "m/1/model.onnx"]
    assert [info.size for info in listed] == [2, 10]
    assert all(info.etag for info in listed)
    assert not any(info.is_link for info in listed)
    assert _read(any_store, "m/1/model.onnx") == b"onnx-bytes"
    assert [info.key for info in any_store.list("m/1")] == ["m/1/manifest.json", "m/1/model.onnx", "m/10/a.bin"]
    assert any_store.list("absent/") == []


def test_write_file_streams_in_chunks_and_reports_progress(any_store: Store, tmp_path: Path) -> None:
    # GIVEN a file larger than one chunk
    source = tmp_path / "model.onnx"
    data = os.urandom(2 * CHUNK_BYTES + 12345)
    source.write_bytes(data)
    seen: list[int] = []
    # WHEN uploading it with a progress callback and reading it back
    any_store.write_file("m/1/model.onnx", source, progress=seen.append)
    chunks = list(any_store.read("m/1/model.onnx"))
    # THEN the callback totals the file size and the bytes are identical
    assert sum(seen) == len(data)
    assert b"".join(chunks) == data
    assert len(chunks) >= 2
    assert any_store.list("m/1/")[0].size == len(data)


def test_missing_key_raises_object_not_found(any_store: Store) -> None:
    # GIVEN an empty store / WHEN reading a key that does not exist / THEN a typed not-found error names it
    with pytest.raises(ObjectNotFound, match="m/1/model.sig"):
        _read(any_store, "m/1/model.sig")


def test_if_none_match_lets_exactly_one_write_win(any_store: Store) -> None:
    # GIVEN a first conditional write
    assert any_store.write_bytes("out/result.json", b"first", if_none_match=True) is True
    # WHEN a second conditional write targets the same key
    second = any_store.write_bytes("out/result.json", b"second", if_none_match=True)
    # THEN it reports False and the content is unchanged
    assert second is False
    assert _read(any_store, "out/result.json") == b"first"
    # AND an unconditional write still replaces it
    assert any_store.write_bytes("out/result.json", b"third") is True
    assert _read(any_store, "out/result.json") == b"third"


@pytest.mark.parametrize("replacement", [b"evil-bytes", b"other"], ids=["same-size", "different-size"])
def test_pinned_read_refuses_object_overwritten_after_listing(any_store: Store, replacement: bytes) -> None:
    # GIVEN an object listed (its ETag pinned), then overwritten by someone else
    any_store.write_bytes("m/1/model.onnx", b"good-bytes")
    (pinned,) = any_store.list("m/1/")
    any_store.write_bytes("m/1/model.onnx", replacement)
    # WHEN reading it with the pin
    # THEN the read is refused as a changed object, before any byte is returned
    with pytest.raises(ObjectChanged, match="m/1/model.onnx"):
        _read(any_store, "m/1/model.onnx", pin=pinned)
    # AND a pin taken now reads the new bytes
    (fresh,) = any_store.list("m/1/")
    assert _read(any_store, "m/1/model.onnx", pin=fresh) == replacement


@pytest.mark.parametrize("key", ["../escape", "m/../../etc/passwd", "/abs/key", "m\\1\\x", "m//x", "m/./x", ""])
def test_unsafe_keys_are_refused_everywhere(any_store: Store, key: str) -> None:
    # GIVEN a key that could escape the store root once mapped to a path
    # WHEN reading or writing it / THEN it is refused with an error that names the key, and nothing is written
    with pytest.raises(UnsafeBundleError, match="unsafe store key"):
        _read(any_store, key)
    with pytest.raises(UnsafeBundleError, match="unsafe store key"):
        any_store.write_bytes(key, b"x")
    assert any_store.list("") == []
