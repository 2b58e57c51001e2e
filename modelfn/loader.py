"""Fetch → verify → hash while reading → hand the same bytes to the runtime.

The order is the security argument: the signature is read and checked (against the configured
trust set only) before any other file is fetched; each file is hashed as it streams in and
compared with its signed digest; the manifest is parsed and the runtime built only from bytes
that passed. Nothing is re-opened by path after hashing (SECURITY.md rules 1-11, 15). The
manifest's ``runtime`` picks the runtime: ``onnx`` (onnxruntime) or ``python`` (custom code, built
only when ``allow_custom_code`` is on, so without it the module's bytes are never executed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modelfn.bundle.layout import MANIFEST_FILE, ONNX_DATA_RE, PICKLE_EXTENSIONS, SIGNATURE_FILE, version_prefix
from modelfn.errors import IntegrityError, PolicyError, SignatureError, UnsafeBundleError
from modelfn.gc_pause import collections_paused
from modelfn.serving.metrics import LOAD_FETCH_TIME, LOAD_SESSION_TIME, LOAD_VERIFY_TIME, METRICS

if TYPE_CHECKING:
    from modelfn.bundle.manifest import Manifest
    from modelfn.config import Settings
    from modelfn.runtime.base import Model
    from modelfn.signing.verify import SignedStatement
    from modelfn.store.base import ObjectInfo, Store

logger = logging.getLogger("modelfn.loader")

MAX_SIGNATURE_BYTES = 1024 * 1024
MAX_PARALLEL_READS = 8
"""Signed files fetched at once after the signature verifies (botocore pools 10 connections per client)."""


@dataclasses.dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose every file matched its signed digest; bytes held in memory only."""

    statement: SignedStatement
    files: dict[str, bytes]
    manifest: Manifest
    source: str


@dataclasses.dataclass(frozen=True)
class LoadedBundle:
    """A verified bundle with its runtime session built (and warmed up, per ``warm_up``): what serving uses."""

    manifest: Manifest
    model: Model
    root_digest: str
    key_hint: str
    verified_at: dt.datetime
    source: str = ""

    def health(self) -> dict[str, Any]:
        """Identity of the served model, as health endpoints report it (SECURITY.md rule 20)."""
        return {
            "name": self.manifest.name,
            "version": self.manifest.version,
            "root_digest": self.root_digest,
            "verified_at": self.verified_at.isoformat(),
        }


def load_bundle(settings: Settings) -> LoadedBundle:
    """Resolve, verify and load the configured model; raise a ModelfnError subclass on any refusal."""
    from modelfn.errors import ConfigError

    if not settings.model_name:
        raise ConfigError("no model configured: set MODELFN_MODEL_NAME (or --model)", field="model_name")
    with collections_paused(keep_frozen=False):  # a refused or replaced load's cycles stay collectable
        _import_runtime_in_background()  # overlaps the store round trips; no model byte reaches it early
        with METRICS.timed(LOAD_FETCH_TIME, span="fetch"):  # includes LoadVerifyTime (the signature check)
            verified = fetch_verified(settings)
        with METRICS.timed(LOAD_SESSION_TIME, span="session"):
            return build_runtime(verified, settings)


def _import_runtime_in_background() -> None:
    """Start importing onnxruntime (~100+ ms) while the store calls wait on the network.

    The runtime's later ``import`` waits on the module lock for this one, so the work is never done
    twice; nothing reaches onnxruntime before verification, only its code is loaded earlier.
    A failure here is left for that later import to raise with its usual message.
    """
    import sys

    if "onnxruntime" in sys.modules:
        return
    import threading

    def run() -> None:
        try:
            import onnxruntime  # noqa: F401
        except Exception:  # reported by the runtime's own import
            pass

    threading.Thread(target=run, name="modelfn-import-runtime", daemon=True).start()


def fetch_verified(settings: Settings) -> VerifiedBundle:
    """Everything up to (not including) the runtime: resolve the version, verify, fetch and hash."""
    from modelfn.bundle.manifest import Manifest
    from modelfn.repository.versions import resolve_listing
    from modelfn.signing.keys import TrustSet
    from modelfn.signing.verify import (
        VerifyPolicy,
        check_file_set,
        check_min_version,
        signed_identity,
        verify_signature,
    )
    from modelfn.store.registry import store_for

    assert settings.model_name is not None
    trust = TrustSet.from_entries(settings.trusted_keys)
    store = store_for(settings.store_url, settings)
    version, objects = resolve_listing(store, settings.model_name, settings.model_version)
    prefix = version_prefix(settings.model_name, version)
    listing = {info.key[len(prefix) :]: info for info in objects}
    _refuse_unsafe_listing(listing)

    sig_info = listing.get(SIGNATURE_FILE)
    if sig_info is None:
        raise SignatureError(f"{store.url}/{prefix}{SIGNATURE_FILE} is missing: unsigned bundles are never loaded")
    if sig_info.size > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"{SIGNATURE_FILE} is {sig_info.size} bytes, over the {MAX_SIGNATURE_BYTES} byte limit")
    sig_bytes = b"".join(store.read(sig_info.key, pin=sig_info))
    policy = VerifyPolicy(pinned_digest=settings.pinned_digest)  # min_version: checked on the identity below
    with METRICS.timed(LOAD_VERIFY_TIME, span="verify"):
        statement = verify_signature(sig_bytes, trust, policy)
    if statement.version is not None:  # modelfn's predicate: refuse a swapped bundle before fetching more
        _check_identity("signature", statement.name, statement.version, settings.model_name, version)
        check_min_version(statement.version, settings.min_version)

    present = [name for name in listing if name != SIGNATURE_FILE]
    check_file_set(statement, present)
    files = _read_signed_files(store, listing, sorted(statement.resources), statement)
    manifest = Manifest.from_json(files[MANIFEST_FILE]) if MANIFEST_FILE in files else None
    if manifest is None:
        raise UnsafeBundleError(f"the signed file list has no {MANIFEST_FILE}")
    signed_name, signed_version = signed_identity(statement, manifest.name, manifest.version)
    if statement.version is None:  # signed by the reference tool: the signed manifest carries the identity
        _check_identity("signed manifest", signed_name, signed_version, settings.model_name, version)
        check_min_version(signed_version, settings.min_version)
    if manifest.artifact not in files:
        raise UnsafeBundleError(f"manifest artifact {manifest.artifact!r} is not a signed file of the bundle")
    return VerifiedBundle(statement=statement, files=files, manifest=manifest, source=f"{store.url}/{prefix}")


def build_runtime(verified: VerifiedBundle, settings: Settings) -> LoadedBundle:
    """Build (and, per ``settings.warm_up``, warm) the manifest's runtime from the verified bytes (never a path)."""
    model = _RUNTIMES[verified.manifest.runtime](verified, settings)
    if warm_up_wanted(settings):
        model.warm_up()
    return LoadedBundle(
        manifest=verified.manifest,
        model=model,
        root_digest=verified.statement.root_digest,
        key_hint=verified.statement.key_hint,
        verified_at=dt.datetime.now(dt.UTC),
        source=verified.source,
    )


INIT_TYPE_ENV = "AWS_LAMBDA_INITIALIZATION_TYPE"
"""Set by Lambda for the init phase: ``on-demand``, ``provisioned-concurrency`` or ``snap-start``."""


def warm_up_wanted(settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to run the model once right after loading (``warm_up``: on, off, auto).

    ``auto`` warms up wherever loading happens ahead of traffic (containers before readiness,
    provisioned concurrency, SnapStart) and skips it in an on-demand Lambda cold start: the first
    request waits for the init phase there, so a warm-up run only adds its time (one full run of
    the model: ~5 % of a ResNet-18-sized cold start), while onnxruntime's first run on CPU is not
    slower than the next.
    """
    if settings.warm_up != "auto":
        return settings.warm_up == "on"
    return (os.environ if environ is None else environ).get(INIT_TYPE_ENV) != "on-demand"


def _onnx_data_files(verified: VerifiedBundle) -> dict[str, bytes]:
    """The signed external-data files (``model.onnx.data``...) of a model too large for one model.onnx."""
    return {name: data for name, data in verified.files.items() if ONNX_DATA_RE.match(name)}


def _onnx_model(verified: VerifiedBundle, settings: Settings) -> Model:
    from modelfn.runtime.onnx_session import OnnxModel

    return OnnxModel(
        _artifact_bytes(verified, settings),
        verified.manifest,
        threads=settings.threads,
        providers=settings.providers,
        data_files=_onnx_data_files(verified),
    )


def _artifact_bytes(verified: VerifiedBundle, settings: Settings) -> bytes:
    """The verified artifact; an encrypted one is decrypted here, in memory only (SECURITY.md rule 16)."""
    manifest = verified.manifest
    ciphertext = verified.files[manifest.artifact]
    if manifest.encryption is None:
        return ciphertext
    from modelfn.bundle.encryption import decrypt_artifact

    return decrypt_artifact(
        ciphertext, manifest.encryption, name=manifest.name, version=manifest.version, artifact=manifest.artifact,
        key_file=settings.decryption_key_file,
    )  # fmt: skip


def _python_model(verified: VerifiedBundle, settings: Settings) -> Model:
    """Custom code runs with the process's rights: only by explicit opt-in, and only after verification."""
    from modelfn.config import ENV_NAMES

    manifest = verified.manifest
    if not settings.allow_custom_code:
        raise PolicyError(
            f"{manifest.name} v{manifest.version} carries Python code ({manifest.artifact}), which runs with this"
            f" process's rights; it is served only with {ENV_NAMES['allow_custom_code']}=true (setting"
            " allow_custom_code), for signers you trust",
            field="allow_custom_code",
        )
    from modelfn.runtime.python_model import PythonModel

    return PythonModel(verified.files, manifest)


_RUNTIMES: dict[str, Callable[[VerifiedBundle, Settings], Model]] = {"onnx": _onnx_model, "python": _python_model}
"""Manifest ``runtime`` -> builder; the manifest schema admits only these names."""


def _refuse_unsafe_listing(listing: dict[str, ObjectInfo]) -> None:
    """Shape checks that hold whatever the signature says: no links, no pickle-family files."""
    for name, info in listing.items():
        if info.is_link:
            raise UnsafeBundleError(f"{name} is a symbolic link: bundles with links are refused")
        if name.lower().endswith(PICKLE_EXTENSIONS):
            raise UnsafeBundleError(f"{name} is a pickle-family file: refused, the serving path never unpickles")


def _check_identity(source: str, signed_name: str, signed_version: int, name: str, version: int) -> None:
    """The signed name/version must be the ones the store path claims (no bundle swapping)."""
    if signed_name != name:
        raise PolicyError(f"{source} is for model {signed_name!r}, but {name!r} was requested", field="name")
    if signed_version != version:
        raise PolicyError(
            f"{source} is for version {signed_version}, but the store path says {version}", field="version"
        )


def _read_signed_files(
    store: Store, listing: dict[str, ObjectInfo], names: list[str], statement: SignedStatement
) -> dict[str, bytes]:
    """Fetch the signed files side by side (each still pinned and hashed while read), keyed in name order.

    Sequential GETs cost one round trip per file on the cold path; the signature is already verified,
    so nothing here can be steered by unsigned data. Errors stay deterministic: the first failing file
    in name order is raised, and files not yet started are cancelled.
    """
    if len(names) <= 1:
        return {name: _read_hashed(store, listing[name], name, statement) for name in names}
    from concurrent.futures import ThreadPoolExecutor

    workers = min(len(names), MAX_PARALLEL_READS)
    with ThreadPoolExecutor(workers, thread_name_prefix="modelfn-fetch") as pool:
        futures = {name: pool.submit(_read_hashed, store, listing[name], name, statement) for name in names}
        try:
            return {name: futures[name].result() for name in names}
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _read_hashed(store: Store, info: ObjectInfo, name: str, statement: SignedStatement) -> bytes:
    """Stream one object, hashing as it arrives; return exactly the bytes that were hashed."""
    from modelfn.signing.verify import check_digest

    expected_size = info.size
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    received = 0
    for chunk in store.read(info.key, pin=info):
        received += len(chunk)
        if received > expected_size:
            raise IntegrityError(f"{name} is larger than listed ({expected_size} bytes): refused", field=name)
        digest.update(chunk)
        chunks.append(chunk)
    check_digest(statement, name, digest.hexdigest())
    return b"".join(chunks)
