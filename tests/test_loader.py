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
    ObjectNotFound,
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
    # AND its root_digest is the signed one: sha256 over the files' raw sha256 digests in name order,
    # computed here from the bundle's own files, and equal to the digest model.sig's subject carries
    files = sorted(p.name for p in local_published.bundle_dir.iterdir() if p.name != "model.sig")
    expected = hashlib.sha256(
        b"".join(hashlib.sha256((local_published.bundle_dir / f).read_bytes()).digest() for f in files)
    ).hexdigest()
    assert files == ["manifest.json", "model.onnx"]
    assert health["root_digest"] == expected == _signed_subject_digest(local_published)
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


def test_missing_signature_makes_the_version_unknown(local_published: Published, session_spy: list[bytes]) -> None:
    # GIVEN a store with a signed v1 and an explicit request for it after the signature is removed
    _store_file(local_published, "model.sig").unlink()
    settings = dataclasses.replace(local_published.settings, model_version="1")
    # THEN the version lookup finds no signed v1 (an unsigned version does not exist for readers)
    error = _load_refused(settings, ObjectNotFound, session_spy, match="version 1 not found.*signed versions: none")
    assert error.field == "model_version"


def test_missing_signature_beside_a_nested_decoy_is_refused_by_the_loader(
    local_published: Published, session_spy: list[bytes]
) -> None:
    # GIVEN v1's model.sig moved into a subfolder (a key ending in /model.sig, but not the bundle's signature)
    sig = _store_file(local_published, "model.sig")
    (sig.parent / "sub").mkdir()
    sig.rename(sig.parent / "sub" / "model.sig")
    settings = dataclasses.replace(local_published.settings, model_version="1")
    # THEN the loader's own check refuses the unsigned bundle, naming the missing signature
    _load_refused(
        settings, SignatureError, session_spy, match="model.sig is missing: unsigned bundles are never loaded"
    )


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


# --- identity: the signed name/version, the manifest and the store path must agree (issue 9 item 10) ---


def _signed_subject_digest(published: Published) -> str:
    """The root digest as written in model.sig's statement subject (read here, not through modelfn)."""
    import base64
    import json

    envelope = json.loads((published.bundle_dir / "model.sig").read_bytes())["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    digest: str = statement["subject"][0]["digest"]["sha256"]
    return digest


def _rewrite_manifest(bundle_dir: Path, **changes: Any) -> None:
    """Change manifest fields before signing (so the manifest is validly signed but says something else)."""
    import msgspec

    from modelfn.bundle.manifest import Manifest

    path = bundle_dir / "manifest.json"
    path.write_bytes(msgspec.structs.replace(Manifest.from_json(path.read_bytes()), **changes).to_json())


def _sign_and_push(
    bundle_dir: Path, store: str, key: SigningKey, *, signed: tuple[str, int], path: tuple[str, int]
) -> Settings:
    """Sign as ``signed`` (name, version) and push under ``path``; settings asking for ``path``."""
    from modelfn.repository.transfer import push_bundle
    from modelfn.signing.sign import sign_bundle
    from modelfn.store.registry import store_for

    sign_bundle(bundle_dir, key.signer, name=signed[0], version=signed[1])
    push_bundle(bundle_dir, store_for(store), name=path[0], version=path[1], progress=False)
    return Settings(
        store_url=store, model_name=path[0], model_version=str(path[1]), trusted_keys=(str(key.public_path),), threads=1
    )


def test_signature_for_another_model_name_is_refused(
    tmp_path: Path, tiny_bundle_dir: Path, signing_key: SigningKey, session_spy: list[bytes]
) -> None:
    # GIVEN a bundle signed for model "other" v1, pushed where "tiny" v1 belongs
    settings = _sign_and_push(tiny_bundle_dir, str(tmp_path / "s"), signing_key, signed=("other", 1), path=("tiny", 1))
    # THEN loading "tiny" is refused naming both names, before any file but the signature is read
    error = _load_refused(settings, PolicyError, session_spy, match="signature is for model 'other', but 'tiny'")
    assert error.field == "name"


@pytest.mark.parametrize(("change", "says"), [({"name": "tiny2"}, "tiny2 v1"), ({"version": 7}, "tiny v7")])
def test_manifest_that_differs_from_the_signature_is_refused(
    tmp_path: Path,
    tiny_bundle_dir: Path,
    signing_key: SigningKey,
    session_spy: list[bytes],
    change: dict[str, Any],
    says: str,
) -> None:
    # GIVEN a signed manifest whose name or version differs from the signed predicate's tiny v1
    _rewrite_manifest(tiny_bundle_dir, **change)
    settings = _sign_and_push(tiny_bundle_dir, str(tmp_path / "s"), signing_key, signed=("tiny", 1), path=("tiny", 1))
    # THEN it is refused: one bundle has one identity
    error = _load_refused(settings, UnsafeBundleError, session_spy, match=f"manifest says {says} but the signature")
    assert error.field == "manifest.json"


def test_manifest_artifact_outside_the_signed_files_is_refused(
    tmp_path: Path, tiny_bundle_dir: Path, signing_key: SigningKey, session_spy: list[bytes]
) -> None:
    # GIVEN a signed manifest naming an artifact that is not one of the signed files
    _rewrite_manifest(tiny_bundle_dir, artifact="weights.onnx")
    settings = _sign_and_push(tiny_bundle_dir, str(tmp_path / "s"), signing_key, signed=("tiny", 1), path=("tiny", 1))
    # THEN the runtime is never built from anything else
    _load_refused(settings, UnsafeBundleError, session_spy, match="artifact 'weights.onnx' is not a signed file")


def test_oversized_signature_is_refused_before_it_is_read(local_published: Published, session_spy: list[bytes]) -> None:
    # GIVEN a model.sig over the 1 MiB limit (a hostile store trying to exhaust memory)
    from modelfn.loader import MAX_SIGNATURE_BYTES

    _store_file(local_published, "model.sig").write_bytes(b"{" + b" " * MAX_SIGNATURE_BYTES)
    # THEN it is refused by its listed size, naming the limit
    _load_refused(local_published.settings, SignatureError, session_spy, match=f"over the {MAX_SIGNATURE_BYTES} byte")


class _UnderListingStore:
    """A store backend without pinned reads whose listing is stale: it reports model.onnx one byte short."""

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        from modelfn.store.local import LocalStore

        self._inner = LocalStore(urlsplit(url).path)
        self.url = url

    def list(self, prefix: str) -> list[Any]:
        listed = self._inner.list(prefix)
        return [dataclasses.replace(i, size=i.size - 1) if i.key.endswith("/model.onnx") else i for i in listed]

    def read(self, key: str, *, pin: Any = None) -> Iterator[bytes]:
        return self._inner.read(key)  # this backend cannot pin: the loader's size guard is what remains


def test_object_larger_than_listed_is_refused_while_streaming(
    local_published: Published, session_spy: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a store backend (registered by scheme, as plugins are) whose reads return more bytes than it listed
    from modelfn.store.registry import STORES

    monkeypatch.setitem(STORES, "stale", lambda url, *_: _UnderListingStore(url))
    settings = dataclasses.replace(local_published.settings, store_url=f"stale://{local_published.settings.store_url}")
    # THEN the read stops at the listed size and the load is refused naming the file
    error = _load_refused(settings, IntegrityError, session_spy, match="model.onnx is larger than listed")
    assert error.field == "model.onnx"


def test_an_unexpected_exception_during_load_leaves_the_server_not_ready(
    tmp_path: Path, tiny_bundle_dir: Path, signing_key: SigningKey
) -> None:
    # GIVEN a validly signed bundle whose graph onnxruntime cannot build (an operator that does not exist)
    from onnx import TensorProto, helper

    from modelfn.serving.asgi import create_app
    from modelfn.serving.metrics import MODEL_LOAD_FAILED, Metrics
    from modelfn.serving.state import ModelState
    from tests.serving.asgi_client import SyncASGIClient

    graph = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["x"], ["y"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (tiny_bundle_dir / "model.onnx").write_bytes(model.SerializeToString())
    settings = _sign_and_push(tiny_bundle_dir, str(tmp_path / "s"), signing_key, signed=("tiny", 1), path=("tiny", 1))
    # WHEN the server state loads it
    metrics = Metrics()
    state = ModelState.load(settings, metrics=metrics)
    # THEN nothing raised: not ready, the failure recorded and counted, and HTTP answers 503 + Retry-After
    assert not state.ready and state.failure is not None
    assert "while loading" in state.failure.message and state.failure.__cause__ is not None
    assert metrics.count(MODEL_LOAD_FAILED) == 1
    client = SyncASGIClient(create_app(state))
    try:
        for method, path in (("GET", "/v2/health/ready"), ("POST", "/predict")):
            response = client.request(method, path, json={"instances": [[1, 2, 3, 4]]} if method == "POST" else None)
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1
    finally:
        client.close()


# --- bundles signed by the reference model_signing tool: identity from the signed manifest (issue 9 defect 4) ---


def _reference_signed(bundle_dir: Path, store: str, key: SigningKey, *, path: tuple[str, int]) -> Settings:
    from modelfn.repository.transfer import push_bundle
    from modelfn.store.registry import store_for
    from tests.signing.helpers import sign_with_model_signing

    sign_with_model_signing(bundle_dir, key.private_path)
    push_bundle(bundle_dir, store_for(store), name=path[0], version=path[1], progress=False)
    return Settings(
        store_url=store, model_name=path[0], model_version=str(path[1]), trusted_keys=(str(key.public_path),), threads=1
    )


def test_reference_signed_bundle_loads_with_the_signed_manifest_identity(
    tmp_path: Path, tiny_bundle_dir: Path, signing_key: SigningKey
) -> None:
    # GIVEN tiny v1 signed by model_signing (no modelfn predicate: subject = the directory name) and pushed
    settings = _reference_signed(tiny_bundle_dir, str(tmp_path / "s"), signing_key, path=("tiny", 1))
    # WHEN loaded, with a minimum version the signed manifest meets
    bundle = load_bundle(dataclasses.replace(settings, min_version=1))
    # THEN it serves as tiny v1, the identity the signed manifest carries
    assert (bundle.manifest.name, bundle.manifest.version) == ("tiny", 1)
    assert bundle.model.predict({"x": np.ones((1, 4), np.float32)})["y"].shape == (1, 3)


@pytest.mark.parametrize(
    ("path", "overrides", "match", "field"),
    [
        (("tiny", 2), {}, "signed manifest is for version 1, but the store path says 2", "version"),
        (("other", 1), {}, "signed manifest is for model 'tiny', but 'other' was requested", "name"),
        (("tiny", 1), {"min_version": 2}, "signed version 1 is below the minimum 2", "version"),
    ],
    ids=["moved-version", "moved-name", "rollback"],
)
def test_reference_signed_bundle_identity_is_still_checked(
    tmp_path: Path,
    tiny_bundle_dir: Path,
    signing_key: SigningKey,
    session_spy: list[bytes],
    path: tuple[str, int],
    overrides: dict[str, Any],
    match: str,
    field: str,
) -> None:
    # GIVEN a reference-signed tiny v1 pushed under `path`, and maybe a minimum version above it
    settings = _reference_signed(tiny_bundle_dir, str(tmp_path / "s"), signing_key, path=path)
    # THEN the signed manifest's identity is checked like a predicate's: store path and anti-rollback
    error = _load_refused(dataclasses.replace(settings, **overrides), PolicyError, session_spy, match=match)
    assert error.field == field


# --- signed files are fetched side by side once the signature verifies (issue 10 item 4) ---


class _RendezvousStore:
    """A real local store whose reads of signed files wait for each other: sequential reads never meet."""

    def __init__(self, url: str) -> None:
        import threading
        from urllib.parse import urlsplit

        from modelfn.store.local import LocalStore

        self._inner = LocalStore(urlsplit(url).path)
        self.url = url
        self.barrier = threading.Barrier(2, timeout=10)
        self.threads: set[str] = set()

    def list(self, prefix: str) -> list[Any]:
        return self._inner.list(prefix)

    def read(self, key: str, *, pin: Any = None) -> Iterator[bytes]:
        import threading

        if not key.endswith("/model.sig"):
            self.threads.add(threading.current_thread().name)
            self.barrier.wait()  # both signed files are in flight at once, or this breaks
        return self._inner.read(key, pin=pin)


def test_signed_files_are_fetched_concurrently_after_the_signature(
    local_published: Published, session_spy: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a store whose reads of manifest.json and model.onnx only return once both have started
    from modelfn.store.registry import STORES

    stores: list[_RendezvousStore] = []

    def make(url: str, *_: Any) -> _RendezvousStore:
        stores.append(_RendezvousStore(url))
        return stores[-1]

    monkeypatch.setitem(STORES, "meet", make)
    settings = dataclasses.replace(local_published.settings, store_url=f"meet://{local_published.settings.store_url}")
    # WHEN the bundle loads
    bundle = load_bundle(settings)
    # THEN both files were read at the same time, on two threads, and the verified model serves
    assert bundle.manifest.name == "tiny" and not stores[0].barrier.broken
    assert len(stores[0].threads) == 2
    assert len(session_spy) == 1


def test_with_several_bad_files_the_first_by_name_is_reported(
    local_published: Published, session_spy: list[bytes]
) -> None:
    # GIVEN two signed files tampered with (manifest.json sorts before model.onnx)
    for victim in ("model.onnx", "manifest.json"):
        path = _store_file(local_published, victim)
        path.write_bytes(path.read_bytes() + b" ")
    # WHEN it is loaded again and again (reads run concurrently and may finish in any order)
    # THEN the error always names manifest.json, never the runtime sees a byte
    for _ in range(5):
        error = _load_refused(local_published.settings, IntegrityError, session_spy, match="manifest.json")
        assert error.field == "manifest.json"
