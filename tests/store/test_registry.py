"""store_for: scheme dispatch, bare paths and the error for schemes it does not know."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfn.errors import ConfigError
from modelfn.store.local import LocalStore
from modelfn.store.registry import store_for
from modelfn.store.s3 import S3Store


def test_bare_and_file_urls_give_local_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a working directory / WHEN resolving a bare relative path, an absolute path and file:// URLs
    monkeypatch.chdir(tmp_path)
    bare = store_for("./.modelfn/store")
    absolute = store_for(str(tmp_path / "a b"))
    url = store_for((tmp_path / "a b").as_uri())
    localhost = store_for(f"file://localhost{tmp_path}/c")
    # THEN each is a LocalStore rooted at the path it names (percent-escapes decoded)
    assert isinstance(bare, LocalStore) and bare.root == tmp_path / ".modelfn" / "store"
    assert isinstance(absolute, LocalStore) and absolute.root == tmp_path / "a b"
    assert isinstance(url, LocalStore) and url.root == tmp_path / "a b"
    assert isinstance(localhost, LocalStore) and localhost.root == tmp_path / "c"


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://bucket-a", "bucket-a", ""), ("s3://bucket-a/", "bucket-a", ""), ("s3://bucket-a/p/q/", "bucket-a", "p/q/")],
)
def test_s3_urls_give_s3_stores(url: str, bucket: str, prefix: str) -> None:
    # GIVEN an s3:// URL with or without a prefix / WHEN resolving it / THEN bucket and prefix are split
    store = store_for(url)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == (bucket, prefix)
    assert store.url == f"s3://{bucket}/{prefix}"


def test_unknown_scheme_lists_supported_schemes() -> None:
    # GIVEN a scheme no store handles / WHEN resolving it / THEN a ConfigError lists the supported ones
    with pytest.raises(
        ConfigError, match=r"unsupported store URL scheme 'gs'.*file://, s3:// or a bare path"
    ) as caught:
        store_for("gs://bucket/models")
    assert caught.value.field == "store_url"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "has no bucket"),
        ("s3:///prefix", "has no bucket"),
        ("s3://bucket/p?versionId=1", "query strings"),
        ("file://otherhost/models", "names host 'otherhost'"),
        ("s3://bucket/../up", "unsafe store key"),
        ("", "empty"),
    ],
)
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    # GIVEN a malformed store URL / WHEN resolving it / THEN the error says what is wrong with it
    with pytest.raises(ConfigError, match=message):
        store_for(url)
