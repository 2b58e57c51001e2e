"""The loader verifies before it loads: every refusal happens before onnxruntime sees a byte.

Each test publishes a real signed bundle to a real store (a local directory, or moto_server for
S3), tampers with it the way an attacker or a broken upload would, and loads it through
``load_bundle``. A spy on ``onnxruntime.InferenceSession`` proves the runtime is never called for a
refused bundle (SECURITY.md rules 1, 3, 9-12, 15, 20).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import onnxruntime as ort
import pytest

from modelfn.config import Settings
from modelfn.errors import (
    IntegrityError,
    ModelfnError,
    ObjectChanged,
    PolicyError,
    SignatureError,
    UnsafeBundleError,
    UntrustedKeyError,
)
from modelfn.loader import load_bundle
from tests.fixtures.bundles import Published, publish
from tests.fixtures.keys import SigningKey


@pytest.fixture
def session_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Records the model bytes every InferenceSession is built from (and still builds it)."""
    seen: list[bytes] = []
    real = ort.InferenceSession

    def spy(model: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(bytes(model) if isinstance(model, bytes | bytearray) else b"<path>")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    yield seen


def _store_file(published: Published, name: str) -> Path:
    return Path(published.settings.store_url) / published.name / str(published.version) / name


def _load_refused(
    settings: Settings, error: type[ModelfnError], spy: list[bytes], match: str | None = None
) -> ModelfnError:
    with pytest.raises(error, match=match) as info:
        load_bundle(settings)
    assert spy == [], "onnxruntime was called for a refused bundle"
    return info.value


def test_loads_verified_model_and_serves_the_signed_bytes(local_published: Published, session_spy: list[bytes]) -> None:
    # WHEN the published bundle is loaded
    bundle = load_bundle(local_published.settings)
    # THEN the runtime got exactly the bytes whose digest was signed (rule 9)
    signed = hashlib.sha256((local_published.bundle_dir / "model.onnx").read_bytes()).hexdigest()
    assert [hashlib.sha256(b).hexdigest() for b in session_spy] == [signed]
    # AND health names the verified model
    health = bundle.health()
    assert (health["name"], health["version"]) == ("tiny", 1)
    assert len(health["root_digest"]) == 64
    out = bundle.model.predict({"x": np.ones((2, 4), np.float32)})
    assert out["y"].shape == (2, 3)


@pytest.mark.parametrize("victim", ["model.onnx", "manifest.json"])
def test_one_flipped_bit_is_refused_naming_the_file(
    local_published: Published, session_spy: list[bytes], victim: str
) -> None:
    # GIVEN one bit flipped in a signed file in the store
    path = _store_file(local_published, victim)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    # THEN loading is refused with an IntegrityError that names the file
    error = _load_refused(local_published.settings, IntegrityError, session_spy, match=victim)
    assert error.field == victim


def test_truncated_model_is_refused(local_published: Published, session_spy: list[bytes]) -> None:
    path = _store_file(local_published, "model.onnx")
    path.write_bytes(path.read_bytes()[:-10])
    _load_refused(local_published.settings, IntegrityError, session_spy, match="model.onnx")


def test_unsigned_extra_file_is_refused(local_published: Published, session_spy: list[bytes]) -> None:
    _store_file(local_published, "extra.onnx").write_bytes(b"not signed")
    _load_refused(local_published.settings, UnsafeBundleError, session_spy, match="extra.onnx")


def test_pickle_beside_the_model_is_refused(local_published: Published, session_spy: list[bytes]) -> None:
    _store_file(local_published, "weights.pkl").write_bytes(b"\x80\x04K\x01.")
    _load_refused(local_published.settings, UnsafeBundleError, session_spy, match="pickle")


def test_symlink_in_the_store_is_refused(local_published: Published, session_spy: list[bytes], tmp_path: Path) -> None:
    target = _store_file(local_published, "model.onnx")
    moved = tmp_path / "elsewhere.onnx"
    target.rename(moved)
    os.symlink(moved, target)
    _load_refused(local_published.settings, UnsafeBundleError, session_spy, match="link")


def test_missing_signature_is_refused(local_published: Published, session_spy: list[bytes]) -> None:
    # GIVEN a store with a signed v1 and an explicit request for it after the signature is removed
    _store_file(local_published, "model.sig").unlink()
    settings = dataclasses.replace(local_published.settings, model_version="1")
    with pytest.raises(ModelfnError):
        load_bundle(settings)
    assert session_spy == []


def test_signature_by_an_untrusted_key_is_refused(
    local_published: Published, other_signing_key: SigningKey, session_spy: list[bytes]
) -> None:
    settings = dataclasses.replace(local_published.settings, trusted_keys=(str(other_signing_key.public_path),))
    _load_refused(settings, UntrustedKeyError, session_spy)


def test_removing_a_key_from_the_trust_set_fails_the_next_load(
    local_published: Published, other_signing_key: SigningKey, session_spy: list[bytes]
) -> None:
    # GIVEN a model that loads while its signer is trusted alongside another key
    both = (str(other_signing_key.public_path), *local_published.settings.trusted_keys)
    load_bundle(dataclasses.replace(local_published.settings, trusted_keys=both))
    session_spy.clear()
    # WHEN the signer's key is removed from the trust set (rule 11)
    only_other = (str(other_signing_key.public_path),)
    # THEN the next load is refused
    _load_refused(
        dataclasses.replace(local_published.settings, trusted_keys=only_other), UntrustedKeyError, session_spy
    )


def test_empty_trust_set_is_refused(local_published: Published, session_spy: list[bytes]) -> None:
    _load_refused(dataclasses.replace(local_published.settings, trusted_keys=()), SignatureError, session_spy)


def test_rollback_below_minimum_version_is_refused(local_published: Published, session_spy: list[bytes]) -> None:
    _load_refused(dataclasses.replace(local_published.settings, min_version=2), PolicyError, session_spy)


def test_pinned_digest_mismatch_is_refused(local_published: Published, session_spy: list[bytes]) -> None:
    _load_refused(dataclasses.replace(local_published.settings, pinned_digest="0" * 64), PolicyError, session_spy)


def test_expired_bundle_is_refused(
    tmp_path: Path, tiny_bundle_dir: Path, signing_key: SigningKey, session_spy: list[bytes]
) -> None:
    from modelfn.repository.transfer import push_bundle
    from modelfn.signing.sign import sign_bundle
    from modelfn.store.registry import store_for

    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    sign_bundle(tiny_bundle_dir, signing_key.signer, name="tiny", version=1, not_after=yesterday)
    push_bundle(tiny_bundle_dir, store_for(str(tmp_path / "s")), name="tiny", version=1, progress=False)
    settings = Settings(store_url=str(tmp_path / "s"), model_name="tiny", trusted_keys=(str(signing_key.public_path),))
    _load_refused(settings, PolicyError, session_spy, match="expired|not_after")


def test_bundle_moved_to_another_version_path_is_refused(local_published: Published, session_spy: list[bytes]) -> None:
    # GIVEN the signed v1 copied verbatim under v2 (a replay trying to look newer)
    src = _store_file(local_published, "")
    dst = src.parent / "2"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    # THEN "latest" resolves to 2 and is refused (never falls back to the older, valid v1)
    settings = dataclasses.replace(local_published.settings, model_version="latest")
    _load_refused(settings, PolicyError, session_spy, match="version")


def test_latest_resolves_to_the_highest_signed_version(
    tmp_path: Path, tiny_onnx_path: Path, signing_key: SigningKey
) -> None:
    from modelfn.packaging import package

    store = str(tmp_path / "store")
    for version in (1, 2, 3):
        out = tmp_path / f"b{version}"
        package(tiny_onnx_path, None, out, name="tiny", version=version)
        publish(out, store, signing_key)
    settings = Settings(store_url=store, model_name="tiny", trusted_keys=(str(signing_key.public_path),))
    assert load_bundle(settings).manifest.version == 3


@pytest.mark.slow
def test_s3_round_trip_loads(s3_published: Published) -> None:
    bundle = load_bundle(s3_published.settings)
    assert bundle.manifest.name == "tiny"
    assert bundle.source.startswith("s3://")


@pytest.mark.slow
def test_s3_flipped_bit_is_refused(s3_published: Published, session_spy: list[bytes]) -> None:
    bucket = s3_published.settings.store_url.split("/")[2]
    s3 = boto3.client("s3")
    key = "models/tiny/1/model.onnx"
    data = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[-5] ^= 0x80
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    _load_refused(s3_published.settings, IntegrityError, session_spy, match="model.onnx")


@pytest.mark.slow
def test_s3_object_replaced_mid_load_is_refused(
    s3_published: Published, session_spy: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a writer that replaces model.onnx right after the loader has read and checked the signature
    import modelfn.signing.verify as verify_module

    bucket = s3_published.settings.store_url.split("/")[2]
    original = (s3_published.bundle_dir / "model.onnx").read_bytes()
    real_verify = verify_module.verify_signature

    def verify_then_race(*args: Any, **kwargs: Any) -> Any:
        result = real_verify(*args, **kwargs)
        boto3.client("s3").put_object(Bucket=bucket, Key="models/tiny/1/model.onnx", Body=original + b"\0")
        return result

    monkeypatch.setattr(verify_module, "verify_signature", verify_then_race)
    # THEN the pinned read notices the object changed (rule 15) and nothing loads
    _load_refused(s3_published.settings, ObjectChanged, session_spy)
