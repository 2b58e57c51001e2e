"""Key rotation (SECURITY.md rule 11): several trusted keys, each with an optional validity window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelfn.config import Settings
from modelfn.errors import ConfigError, UntrustedKeyError
from modelfn.loader import load_bundle
from modelfn.packaging import package
from modelfn.signing.keys import TrustSet, TrustWindow, parse_trust_entry
from modelfn.signing.sign import build_signature, hash_bundle
from modelfn.signing.verify import VerifyPolicy, verify_signature
from tests.fixtures.bundles import publish
from tests.fixtures.keys import SigningKey

JUNE = datetime(2026, 6, 1, tzinfo=UTC)
JULY = datetime(2026, 7, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_trust_entries_parse_windows_and_refuse_bad_ones(signing_key: SigningKey) -> None:
    # GIVEN entries with and without windows
    path = str(signing_key.public_path)
    # THEN the key and its bounds are read
    assert parse_trust_entry(path) == (path, TrustWindow())
    assert parse_trust_entry(f"{path};not_before={_iso(JUNE)};not_after={_iso(JULY)}") == (
        path,
        TrustWindow(JUNE, JULY),
    )
    # AND malformed options are refused naming the setting
    for bad in (
        f"{path};until={_iso(JULY)}",
        f"{path};not_after=2026-07-01",  # no zone: ambiguous
        f"{path};not_after=soon",
        f"{path};not_after={_iso(JULY)};not_after={_iso(JULY)}",
        f"{path};not_before={_iso(JULY)};not_after={_iso(JUNE)}",
    ):
        with pytest.raises(ConfigError) as refused:
            TrustSet.from_entries([bad])
        assert refused.value.field == "trusted_keys", bad
    with pytest.raises(ConfigError, match="twice with different windows"):
        TrustSet.from_entries([path, f"{path};not_after={_iso(JULY)}"])


def test_signatures_verify_only_inside_the_key_window(signing_key: SigningKey, tiny_bundle_dir: Path) -> None:
    # GIVEN a bundle signed by a key trusted from June to July
    sig = build_signature(hash_bundle(tiny_bundle_dir), signing_key.signer, name="tiny", version=1)
    trust = TrustSet.from_entries([f"{signing_key.public_path};not_before={_iso(JUNE)};not_after={_iso(JULY)}"])
    # WHEN verified inside the window THEN it passes
    assert verify_signature(sig, trust, VerifyPolicy(now=JUNE + timedelta(days=3))).name == "tiny"
    # WHEN verified before or after THEN the key is treated as untrusted, and the message says when
    with pytest.raises(UntrustedKeyError, match="trusted only from 2026-06-01"):
        verify_signature(sig, trust, VerifyPolicy(now=JUNE - timedelta(seconds=1)))
    with pytest.raises(UntrustedKeyError, match="left the trust set at 2026-07-01"):
        verify_signature(sig, trust, VerifyPolicy(now=JULY))


def test_windows_come_through_the_environment(signing_key: SigningKey, other_signing_key: SigningKey) -> None:
    # GIVEN MODELFN_TRUSTED_KEYS listing an old key with an end and a new key with a start
    value = f"{signing_key.public_path};not_after={_iso(JULY)},{other_signing_key.public_path};not_before={_iso(JUNE)}"
    settings = Settings.load(environ={"MODELFN_TRUSTED_KEYS": value})
    # THEN both keys are trusted, each with its window
    trust = TrustSet.from_entries(settings.trusted_keys)
    assert dict(trust.windows) == {
        signing_key.hint: TrustWindow(not_after=JULY),
        other_signing_key.hint: TrustWindow(not_before=JUNE),
    }


def test_rotation_refuses_old_bundles_once_the_old_key_leaves(
    tmp_path: Path, tiny_onnx_path: Path, signing_key: SigningKey, other_signing_key: SigningKey
) -> None:
    # GIVEN v1 signed by the old key and v2 by the new key, in one store
    store = str(tmp_path / "store")
    old, new = signing_key, other_signing_key
    for version, key in ((1, old), (2, new)):
        bundle = tmp_path / f"v{version}"
        package(tiny_onnx_path, None, bundle, name="tiny", version=version)
        publish(bundle, store, key)
    now = datetime.now(UTC)

    def load(version: int, *entries: str) -> int:
        settings = Settings(store_url=store, model_name="tiny", model_version=str(version), trusted_keys=entries)
        return load_bundle(settings).manifest.version

    # WHEN both keys are trusted during the overlap THEN both versions load
    during = (f"{old.public_path};not_after={_iso(now + timedelta(days=1))}", str(new.public_path))
    assert load(1, *during) == 1
    assert load(2, *during) == 2
    # WHEN the old key's window has closed THEN v1 is refused at the next load and v2 still loads
    after = (f"{old.public_path};not_after={_iso(now - timedelta(hours=1))}", str(new.public_path))
    with pytest.raises(UntrustedKeyError, match="left the trust set"):
        load(1, *after)
    assert load(2, *after) == 2
    # WHEN the old key is removed from the trust set THEN v1 is refused too
    with pytest.raises(UntrustedKeyError, match="not in the trust set"):
        load(1, str(new.public_path))
    # AND a new key not yet in its window cannot stand in for the old one
    early = (f"{new.public_path};not_before={_iso(now + timedelta(days=1))}",)
    with pytest.raises(UntrustedKeyError, match="trusted only from"):
        load(2, *early)
