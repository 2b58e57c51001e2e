"""S3 store against a real moto_server: checksums, conditional requests, prefixes and clear errors."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import boto3
import pytest

from modelfn.errors import ObjectChanged, ObjectNotFound, StoreError
from modelfn.store.s3 import S3Store

pytestmark = pytest.mark.slow


def test_keys_are_relative_to_the_prefix(s3_bucket: str) -> None:
    # GIVEN a store rooted at a prefix, and an object outside that prefix
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="other/m/1/model.sig", Body=b"not ours")
    store = S3Store(s3_bucket, "/team/models/")
    # WHEN writing and listing through the store
    store.write_bytes("m/1/model.sig", b"sig")
    # THEN the object lands under the prefix and keys come back relative to it
    assert store.url == f"s3://{s3_bucket}/team/models/"
    assert [info.key for info in store.list("m/")] == ["m/1/model.sig"]
    body = boto3.client("s3").get_object(Bucket=s3_bucket, Key="team/models/m/1/model.sig")["Body"].read()
    assert body == b"sig"


def test_uploads_carry_a_sha256_checksum(s3_bucket: str, tmp_path: Path) -> None:
    # GIVEN a file uploaded with write_file and bytes uploaded with write_bytes
    store = S3Store(s3_bucket)
    source = tmp_path / "model.onnx"
    source.write_bytes(b"model bytes" * 1000)
    store.write_file("m/1/model.onnx", source)
    store.write_bytes("m/1/model.sig", b"signature")
    client = boto3.client("s3")
    # WHEN asking S3 for the stored checksums
    # THEN both objects carry the SHA-256 of their bytes
    for key, data in (("m/1/model.onnx", source.read_bytes()), ("m/1/model.sig", b"signature")):
        head = client.head_object(Bucket=s3_bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_object_replaced_behind_the_stores_back_is_refused(s3_bucket: str) -> None:
    # GIVEN a listed object, then replaced directly in the bucket by another writer (SECURITY rule 15)
    store = S3Store(s3_bucket)
    store.write_bytes("m/1/model.onnx", b"verified")
    (pinned,) = store.list("m/1/")
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="m/1/model.onnx", Body=b"tampered")
    # WHEN reading with the pin / THEN GetObject's If-Match fails and the store raises ObjectChanged
    with pytest.raises(ObjectChanged, match=f"s3://{s3_bucket}/m/1/model.onnx"):
        b"".join(store.read("m/1/model.onnx", pin=pinned))


def test_concurrent_conditional_puts_exactly_one_wins(s3_bucket: str) -> None:
    # GIVEN four threads racing to write one output key with If-None-Match
    client = boto3.client("s3")
    store = S3Store(s3_bucket, client=client)
    results: dict[int, bool] = {}
    barrier = threading.Barrier(4)

    def write(i: int) -> None:
        barrier.wait()
        results[i] = store.write_bytes("out/r.json", f"w{i}".encode(), if_none_match=True)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly one write won and its bytes are stored
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1
    assert b"".join(store.read("out/r.json")) == f"w{winners[0]}".encode()


def test_missing_bucket_error_names_the_bucket(s3_bucket: str, tmp_path: Path) -> None:
    # GIVEN a store for a bucket that does not exist
    store = S3Store(f"{s3_bucket}-absent")
    source = tmp_path / "f"
    source.write_bytes(b"x")
    # WHEN listing, reading or writing / THEN each raises a StoreError naming the bucket (no raw botocore error)
    for action in (
        lambda: store.list(""),
        lambda: store.write_bytes("k", b"x"),
        lambda: store.write_file("k", source),
    ):
        with pytest.raises(StoreError, match=f"bucket '{s3_bucket}-absent' does not exist") as caught:
            action()
        assert caught.value.__cause__ is not None
        assert not isinstance(caught.value, ObjectNotFound)


def test_missing_key_is_object_not_found(s3_bucket: str) -> None:
    # GIVEN an empty bucket / WHEN reading a key / THEN ObjectNotFound names the full S3 URL
    with pytest.raises(ObjectNotFound, match=f"s3://{s3_bucket}/m/1/model.sig does not exist"):
        S3Store(s3_bucket).read("m/1/model.sig")


def test_unreachable_endpoint_is_a_store_error(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN AWS_ENDPOINT_URL pointing at a closed port
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # WHEN listing / THEN a StoreError says it could not connect, naming the store location
    with pytest.raises(StoreError, match=f"cannot list s3://{s3_bucket}/.*connect"):
        S3Store(s3_bucket).list("")
