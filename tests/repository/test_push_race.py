"""Concurrent pushes of one version (SECURITY.md rule 27): exactly one wins, what it leaves verifies.

Two different bundles, both signed as ``tiny`` v1 by the trusted key, are pushed at the same moment
to a fresh store, many times: by two threads, and by two real ``modelfn push`` processes, on a
local store and on S3 (moto_server). Every trial must end with exactly one success, the other a
``VersionConflict`` (exit code 2 and a clear message for the CLI), the winner's bytes stored and
verified by the loader, and no claim left behind.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from modelfn.config import Settings
from modelfn.errors import ModelfnError
from modelfn.loader import fetch_verified
from modelfn.repository.claims import CLAIMS_ROOT, VersionConflict
from modelfn.repository.transfer import push_bundle
from modelfn.store.base import Store
from modelfn.store.registry import store_for
from tests.fixtures.keys import SigningKey, make_signing_key
from tests.fixtures.models import make_tiny_onnx

THREAD_TRIALS = {"local": 30, "s3": 15}
"""Before claims, two threads left a signed version that does not verify in 27 of 30 local trials."""
PROCESS_TRIALS = 4


@dataclasses.dataclass(frozen=True)
class Rivals:
    """Two signed bundles of tiny v1 whose model bytes differ, and the key that signed both."""

    a: Path
    b: Path
    key: SigningKey


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rivals(tmp_path_factory: pytest.TempPathFactory) -> Rivals:
    import onnx

    from modelfn.packaging import package
    from modelfn.signing.sign import sign_bundle

    root = tmp_path_factory.mktemp("rivals")
    key = make_signing_key(root / "keys")
    bundles = []
    for label in ("a", "b"):
        model = onnx.load_from_string(make_tiny_onnx())
        model.doc_string = f"rival {label}"  # same function, different bytes: a mix of the two cannot verify
        source = root / f"{label}.onnx"
        source.write_bytes(model.SerializeToString())
        out = root / label
        package(source, None, out, name="tiny", version=1)
        sign_bundle(out, key.signer, name="tiny", version=1)
        bundles.append(out)
    assert (bundles[0] / "model.onnx").read_bytes() != (bundles[1] / "model.onnx").read_bytes()
    return Rivals(bundles[0], bundles[1], key)


def _race(push: Callable[[Path], None], rivals: Rivals) -> dict[Path, BaseException | None]:
    """Push both bundles from two threads released at the same moment; the outcome of each."""
    start = threading.Barrier(2)
    outcomes: dict[Path, BaseException | None] = {}

    def run(bundle: Path) -> None:
        start.wait()
        try:
            push(bundle)
            outcomes[bundle] = None
        except BaseException as exc:  # recorded and asserted on below
            outcomes[bundle] = exc

    threads = [threading.Thread(target=run, args=(bundle,)) for bundle in (rivals.a, rivals.b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(outcomes) == 2, "a push never finished"
    return outcomes


def _check_winner(store_url: str, winner: Path, key: SigningKey) -> None:
    """The stored version is exactly the winner's bundle, the loader verifies it, and no claim is left."""
    settings = Settings(store_url=store_url, model_name="tiny", trusted_keys=(str(key.public_path),))
    verified = fetch_verified(settings)
    expected = _files(winner)
    assert verified.files == {name: data for name, data in expected.items() if name != "model.sig"}
    store = store_for(store_url)
    stored = {info.key: b"".join(store.read(info.key)) for info in store.list("tiny/")}
    assert stored == {f"tiny/1/{name}": data for name, data in expected.items()} | {"tiny/.latest/1": b""}
    assert store.list(f"{CLAIMS_ROOT}/") == []


def _store_urls(kind: str, tmp_path: Path, request: pytest.FixtureRequest, trials: int) -> list[str]:
    if kind == "local":
        return [str(tmp_path / f"store-{i}") for i in range(trials)]
    bucket = request.getfixturevalue("s3_bucket")
    return [f"s3://{bucket}/trial-{i}-{uuid.uuid4().hex[:6]}" for i in range(trials)]


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.slow)])
def test_two_threads_pushing_one_version_exactly_one_wins(
    kind: str, rivals: Rivals, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for store_url in _store_urls(kind, tmp_path, request, THREAD_TRIALS[kind]):
        # GIVEN a fresh store, and two different bundles signed as tiny v1
        store = store_for(store_url)
        # WHEN both are pushed at the same moment from two threads
        outcomes = _race(functools.partial(_push, store=store), rivals)
        # THEN exactly one push succeeded and the other failed with a VersionConflict naming the version
        winners = [bundle for bundle, error in outcomes.items() if error is None]
        losers = [error for error in outcomes.values() if error is not None]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert isinstance(losers[0], VersionConflict) and "version 1" in losers[0].message, losers[0]
        assert losers[0].field == "version"
        # AND the stored version is the winner's, verified by the loader, with no claim left behind
        _check_winner(store_url, winners[0], rivals.key)


def _push(bundle: Path, store: Store) -> None:
    push_bundle(bundle, store, name="tiny", version=1, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_modelfn_push_processes_exactly_one_wins(
    kind: str, rivals: Rivals, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for store_url in _store_urls(kind, tmp_path, request, PROCESS_TRIALS):
        # GIVEN a fresh store / WHEN two `modelfn push` processes push different bundles as tiny v1 at once
        command = [sys.executable, "-m", "modelfn.cli", "push", "--store", store_url]
        processes = {
            bundle: subprocess.Popen(
                [*command, str(bundle)], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for bundle in (rivals.a, rivals.b)
        }
        results = {bundle: (p.wait(120), p.communicate()) for bundle, p in processes.items()}
        # THEN exactly one exits 0; the other exits 2 with an error naming the model and version
        winners = [bundle for bundle, (code, _) in results.items() if code == 0]
        losers = [(code, err.decode()) for code, (_, err) in results.values() if code != 0]
        assert len(winners) == 1 and len(losers) == 1, results
        code, stderr = losers[0]
        assert code == 2 and "error: model 'tiny' version 1" in stderr, stderr
        # AND what is stored is the winner's bundle, and it verifies
        _check_winner(store_url, winners[0], rivals.key)


def test_a_failed_push_releases_its_claim_and_a_retry_succeeds(rivals: Rivals, tmp_path: Path) -> None:
    # GIVEN a local store whose upload of model.onnx fails once
    store = store_for(str(tmp_path / "store"))
    failing = _FailOnce(store, "tiny/1/model.onnx")
    # WHEN a push fails midway
    with pytest.raises(ModelfnError, match="disk full"):
        push_bundle(rivals.a, failing, name="tiny", version=1, progress=False)
    # THEN it left no claim and no signature, so `latest` does not see the half-written version
    assert store.list(f"{CLAIMS_ROOT}/") == []
    assert not any(info.key.endswith("model.sig") for info in store.list("tiny/"))
    # AND the next push of that version succeeds and verifies
    push_bundle(rivals.b, store, name="tiny", version=1, progress=False)
    _check_winner(str(tmp_path / "store"), rivals.b, rivals.key)


class _FailOnce:
    """A real store whose upload of one key fails once, as a full disk or dropped connection would."""

    def __init__(self, inner: Store, key: str) -> None:
        self.inner, self.key, self.url = inner, key, inner.url
        self.list, self.read, self.write_bytes, self.delete = inner.list, inner.read, inner.write_bytes, inner.delete

    def write_file(self, key: str, path: Path, *, progress: Callable[[int], None] | None = None) -> None:
        if key == self.key:
            self.key = ""
            from modelfn.errors import StoreError

            raise StoreError(f"cannot upload {key}: disk full", field="key")
        self.inner.write_file(key, path, progress=progress)
