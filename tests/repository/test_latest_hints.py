"""``latest`` from the hints pushes leave: a flat cost however many versions, and nothing unsigned decides alone.

Every case runs against the local store and S3 on moto_server. A hint is honoured only when its
version is signed and the version above it is not; a missing, malformed, lying or stale hint falls
back to the directory listing and still finds the highest signed version.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelfn.errors import ObjectNotFound, StoreError
from modelfn.repository.transfer import push_bundle
from modelfn.repository.versions import (
    MAX_HINTS_TRIED,
    hint_key,
    list_versions,
    listed_latest,
    next_version,
    resolve_listing,
)
from modelfn.store.base import ObjectInfo, ProgressCallback, Store
from modelfn.store.local import LocalStore
from modelfn.store.s3 import S3Store


class _CountingStore:
    """A real store that records every listing it is asked for (and can fail one prefix's listing)."""

    after: builtins.list[str]

    def __init__(self, inner: LocalStore | S3Store, fail_prefix: str | None = None) -> None:
        self.inner = inner
        self.url = inner.url
        self.listed: list[str] = []
        self.dirs_listed: builtins.list[str] = []
        self.listed_before_dirs: builtins.list[str] | None = None
        self.fail_prefix = fail_prefix

    def list(self, prefix: str) -> list[ObjectInfo]:
        self.listed.append(prefix)
        if prefix == self.fail_prefix:
            raise StoreError(f"cannot list {prefix}: injected failure")
        return self.inner.list(prefix)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        self.dirs_listed.append(prefix)
        if self.listed_before_dirs is None:
            self.listed_before_dirs = list(self.listed)
        return self.inner.list_dirs(prefix)

    def read(self, key: str, *, pin: ObjectInfo | None = None) -> Iterator[bytes]:
        return self.inner.read(key, pin=pin)

    def write_file(self, key: str, path: Path, *, progress: ProgressCallback | None = None) -> None:
        self.inner.write_file(key, path, progress=progress)

    def write_bytes(self, key: str, data: bytes, *, if_none_match: bool = False) -> bool:
        return self.inner.write_bytes(key, data, if_none_match=if_none_match)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class _CountingS3Store(_CountingStore):
    """The counting store over S3, which can also list from a key on."""

    inner: S3Store

    def list_after(self, prefix: str, start_after: str, page_size: int) -> Iterator[ObjectInfo]:
        self.after.append(start_after)
        return self.inner.list_after(prefix, start_after, page_size)


def _counting(store: LocalStore | S3Store, fail_prefix: str | None = None) -> _CountingStore:
    counting = (
        _CountingS3Store(store, fail_prefix) if isinstance(store, S3Store) else _CountingStore(store, fail_prefix)
    )
    counting.after = []
    return counting


def _push(store: Store, bundle_dir: Path, *versions: int) -> None:
    for version in versions:
        push_bundle(bundle_dir, store, name="iris", version=version, progress=False)


def _signed_by_hand(store: Store, version: int) -> None:
    """A version copied in by other means than ``modelfn push``: no hint."""
    store.write_bytes(f"iris/{version}/model.onnx", b"m")
    store.write_bytes(f"iris/{version}/model.sig", b"s")


def _hints(store: Store) -> list[str]:
    return [info.key for info in store.list("iris/.latest/")]


def test_pushed_hint_is_honoured_with_three_small_listings(store: LocalStore | S3Store, bundle_dir: Path) -> None:
    # GIVEN versions 1, 2 and 3 pushed one after the other
    _push(store, bundle_dir, 1, 2, 3)
    # THEN only the highest hint remains (each push prunes the ones below its version)
    assert _hints(store) == ["iris/.latest/3"]
    # WHEN latest is resolved
    counting = _counting(store)
    version, objects = resolve_listing(counting, "iris", "latest")
    # THEN it is 3, from the hints, version 3's files and the (empty) version above: no directory listing.
    # S3 answers the last two with one request: the listing after iris/3/ ends with 3's files
    assert version == 3
    assert [o.key for o in objects] == ["iris/3/manifest.json", "iris/3/model.onnx", "iris/3/model.sig"]
    if isinstance(store, S3Store):
        assert counting.listed == ["iris/.latest/"] and counting.after == ["iris/3/"]
    else:
        assert counting.listed[0] == "iris/.latest/" and sorted(counting.listed[1:]) == ["iris/3/", "iris/4/"]
    assert counting.dirs_listed == []
    # AND push numbering still follows the signed versions only
    assert list_versions(store, "iris") == [1, 2, 3]
    assert next_version(store, "iris") == 4


def test_gaps_and_an_older_explicit_push_never_lower_latest(store: LocalStore | S3Store, bundle_dir: Path) -> None:
    # GIVEN versions 1 and 5 (a gap: `modelfn package --version` may skip numbers), then an older 3 pushed last
    _push(store, bundle_dir, 1, 5, 3)
    counting = _counting(store)
    # WHEN latest is resolved / THEN it is still 5, found from its hint without listing directories
    assert resolve_listing(counting, "iris", "latest")[0] == 5
    assert counting.dirs_listed == []
    assert _hints(store) == ["iris/.latest/3", "iris/.latest/5"]


def test_a_push_in_flight_stays_invisible(store: LocalStore | S3Store, bundle_dir: Path) -> None:
    # GIVEN versions 1 and 2 pushed, and a push of 4 stopped right before its signature (its hint already written)
    _push(store, bundle_dir, 1, 2)
    seen: list[int] = []

    class PausingStore:
        url = store.url

        def __getattr__(self, attr: str) -> object:
            return getattr(store, attr)

        def write_bytes(self, key: str, data: bytes, *, if_none_match: bool = False) -> bool:
            if key == "iris/4/model.sig":
                assert _hints(store) == ["iris/.latest/2", "iris/.latest/4"]
                seen.append(resolve_listing(store, "iris", "latest")[0])  # a loader starting at this moment
            return store.write_bytes(key, data, if_none_match=if_none_match)

    # WHEN the push of 4 runs to its end
    push_bundle(bundle_dir, PausingStore(), name="iris", version=4, progress=False)  # type: ignore[arg-type]
    # THEN a loader mid-push saw 2 (4 unsigned), and after the push sees 4 from its hint alone
    assert seen == [2]
    assert resolve_listing(store, "iris", "latest")[0] == 4
    assert _hints(store) == ["iris/.latest/4"]


def test_stale_hint_falls_back_to_the_directory_listing(store: LocalStore | S3Store, bundle_dir: Path) -> None:
    # GIVEN versions 1 and 2 pushed, then 3 copied in by hand (signed, no hint)
    _push(store, bundle_dir, 1, 2)
    _signed_by_hand(store, 3)
    counting = _counting(store)
    # WHEN latest is resolved / THEN the signed version above the hint makes it stale: directories decide, 3
    version, objects = resolve_listing(counting, "iris", "latest")
    assert version == 3 and [o.key for o in objects] == ["iris/3/model.onnx", "iris/3/model.sig"]
    assert counting.dirs_listed == ["iris/"]


@pytest.mark.parametrize("forged", [[9], [9, 8, 7, 6]])
def test_hints_of_unsigned_versions_never_pick_one(
    store: LocalStore | S3Store, bundle_dir: Path, forged: list[int]
) -> None:
    # GIVEN versions 1..3 pushed, their hints removed, and hints naming versions that are not signed
    # (9 holds files but no signature)
    _push(store, bundle_dir, 1, 2, 3)
    store.delete(hint_key("iris", 3))
    store.write_bytes("iris/9/model.onnx", b"unsigned")
    for version in forged:
        store.write_bytes(hint_key("iris", version), b"")
    counting = _counting(store)
    # WHEN latest is resolved / THEN the highest signed version, 3, from the directory listing
    assert resolve_listing(counting, "iris", "latest")[0] == 3
    assert counting.dirs_listed == ["iris/"]
    # AND before giving up on the hints, at most MAX_HINTS_TRIED hinted versions (and those above them) were listed
    assert counting.listed_before_dirs is not None and counting.listed_before_dirs[0] == "iris/.latest/"
    hinted_listings = counting.listed_before_dirs[1:]
    assert 1 <= len(hinted_listings) <= 2 * MAX_HINTS_TRIED
    assert {f"iris/{v}/" for v in forged[:MAX_HINTS_TRIED]} <= set(hinted_listings)


def test_an_unsigned_hint_above_a_signed_one_passes_to_it(store: LocalStore | S3Store, bundle_dir: Path) -> None:
    # GIVEN versions 1 and 2 pushed, and a forged hint 7 above them (nothing stored under 7)
    _push(store, bundle_dir, 1, 2)
    store.write_bytes(hint_key("iris", 7), b"")
    counting = _counting(store)
    # WHEN latest is resolved / THEN hint 7 is skipped (unsigned) and 2 is confirmed by its own checks
    assert resolve_listing(counting, "iris", "latest")[0] == 2
    assert counting.dirs_listed == []


@pytest.mark.parametrize("name", ["03", "0", "latest", "3.json", "-3"])
def test_malformed_or_missing_hints_fall_back(store: LocalStore | S3Store, name: str) -> None:
    # GIVEN versions 1..3 copied by hand (no hints) and one hint whose name is not a canonical version
    for version in (1, 2, 3):
        _signed_by_hand(store, version)
    store.write_bytes(f"iris/.latest/{name}", b"")
    counting = _counting(store)
    # WHEN latest is resolved / THEN the malformed hint is ignored and directories decide: 3
    assert resolve_listing(counting, "iris", "latest")[0] == 3
    assert counting.dirs_listed == ["iris/"]


def test_no_signed_version_is_still_not_found(store: LocalStore | S3Store) -> None:
    # GIVEN only a hint and unsigned files / THEN latest is refused as not found, naming the model
    store.write_bytes(hint_key("iris", 1), b"")
    store.write_bytes("iris/1/model.onnx", b"m")
    with pytest.raises(ObjectNotFound, match="no signed versions of model 'iris'"):
        resolve_listing(store, "iris", "latest")


def test_a_failed_listing_of_the_version_above_is_raised(store: LocalStore | S3Store, bundle_dir: Path) -> None:
    # GIVEN version 9 pushed (10 sorts before it, so it is listed beside 9, at once), and a store whose
    # listing of the version above fails
    _push(store, bundle_dir, 9)
    failing = _counting(store, fail_prefix="iris/10/")
    # WHEN latest is resolved / THEN the store error surfaces (the concurrent check is never silently skipped)
    with pytest.raises(StoreError, match="injected failure"):
        resolve_listing(failing, "iris", "latest")


def test_symlinked_signature_or_hint_never_counts(tmp_path: Path, bundle_dir: Path) -> None:
    # GIVEN pushed versions 1 and 2, a version 4 whose signature links to 2's with a hint, and a linked hint 6
    store = LocalStore(tmp_path / "store")
    _push(store, bundle_dir, 1, 2)
    (store.root / "iris" / "4").mkdir()
    os.symlink(store.root / "iris" / "2" / "model.sig", store.root / "iris" / "4" / "model.sig")
    store.write_bytes(hint_key("iris", 4), b"")
    os.symlink(store.root / "iris" / ".latest" / "2", store.root / "iris" / ".latest" / "6")
    # WHEN latest is resolved / THEN 2: the linked signature does not sign 4, the linked hint is ignored
    assert resolve_listing(store, "iris", "latest")[0] == 2


@pytest.mark.parametrize(
    ("signed", "unsigned", "files", "listed_too"),
    [
        pytest.param([*range(2, 10), 12], [], 3, [], id="2..9 sort after 12: past 13's place"),
        pytest.param([1, 9], [], 3, ["iris/9/", "iris/10/"], id="10 sorts before 9: both listed"),
        pytest.param([1, 3], ["iris/30/model.onnx"], 3, ["iris/4/"], id="30 sorts between 3 and 4"),
        pytest.param([1, 3], ["iris/4/model.onnx"], 3, ["iris/4/"], id="4 in flight"),
        pytest.param([3], ["iris/4junk"], 40, [], id="a bundle over one page"),
    ],
)
def test_one_request_on_s3_answers_as_the_directory_listing_does(
    store: LocalStore | S3Store,
    tmp_path: Path,
    signed: list[int],
    unsigned: list[str],
    files: int,
    listed_too: list[str],
) -> None:
    # GIVEN signed versions (the highest pushed with its hint, the others copied in) and unsigned objects
    bundle = tmp_path / "big"
    bundle.mkdir()
    for i in range(files - 1):
        (bundle / f"f{i:02d}.bin").write_bytes(b"x")
    (bundle / "model.sig").write_bytes(b"s")
    for version in signed[:-1]:
        _signed_by_hand(store, version)
    _push(store, bundle, signed[-1])
    for key in unsigned:
        store.write_bytes(key, b"unsigned")
    counting = _counting(store)
    # WHEN latest is resolved from the hint
    version, objects = resolve_listing(counting, "iris", "latest")
    # THEN the same version and objects as the directory listing finds, without listing directories
    assert (version, objects) == listed_latest(store, "iris")
    assert version == signed[-1] and len(objects) == files
    assert counting.dirs_listed == []
    # AND on S3 one listing after the version answered, plus the listings the key order could not spare
    if isinstance(store, S3Store):
        assert counting.after == ([] if listed_too[:1] == [f"iris/{version}/"] else [f"iris/{version}/"])
        assert counting.listed[0] == "iris/.latest/" and sorted(counting.listed[1:]) == sorted(listed_too)
