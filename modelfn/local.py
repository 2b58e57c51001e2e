"""Publish and query a bundle on this machine: the last steps of the quickstart and the examples.

Signs a copy of an unsigned bundle with a local key (created on first use), pushes it to a local
store and answers one ``/predict`` request through the same app Lambda and containers run,
verification included. The bundle directory itself stays unsigned, so packaging can run again.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelfn.config import Settings

PRIVATE_KEY, PUBLIC_KEY = "signing.key", "signing.pub"


def ensure_keys(key_dir: Path) -> Path:
    """The public key of the local signing pair in ``key_dir``, created on first use."""
    from modelfn.signing.keys import write_keypair

    if not (key_dir / PRIVATE_KEY).exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        write_keypair(key_dir / PRIVATE_KEY, key_dir / PUBLIC_KEY)
    return key_dir / PUBLIC_KEY


def publish_locally(bundle_dir: Path, *, store: Path, key_dir: Path, allow_custom_code: bool = False) -> Settings:
    """Sign a copy of ``bundle_dir`` with the local key, push it to ``store``; return settings that serve it."""
    from modelfn.bundle.manifest import Manifest
    from modelfn.config import Settings
    from modelfn.repository.transfer import push_bundle
    from modelfn.signing.sign import KeyFileSigner, sign_bundle
    from modelfn.store.registry import store_for

    public_key = ensure_keys(key_dir)
    manifest = Manifest.from_json((bundle_dir / "manifest.json").read_bytes())
    with tempfile.TemporaryDirectory(prefix="modelfn-sign-") as tmp:
        signed = Path(tmp) / "bundle"
        shutil.copytree(bundle_dir, signed, symlinks=True, ignore=shutil.ignore_patterns("model.sig"))
        sign_bundle(signed, KeyFileSigner(key_dir / PRIVATE_KEY), name=manifest.name, version=manifest.version)
        push_bundle(signed, store_for(str(store)), name=manifest.name, version=manifest.version, progress=False)
    return Settings(
        store_url=str(store),
        model_name=manifest.name,
        model_version=str(manifest.version),
        trusted_keys=(str(public_key),),
        allow_custom_code=allow_custom_code,
    )


def predict_locally(settings: Settings, request: dict[str, Any]) -> Any:
    """Verify + load the model for ``settings`` and answer one ``/predict`` request in-process."""
    import json

    from modelfn.errors import ModelfnError
    from modelfn.serving.routes import dispatch
    from modelfn.serving.state import ModelState

    state = ModelState.load(settings)
    if state.failure is not None:
        raise state.failure
    body = json.dumps(request).encode()
    response = dispatch(state, "POST", "/predict", {"content-type": "application/json"}, body)
    answer = json.loads(response.body)
    if response.status != 200:
        raise ModelfnError(f"/predict answered {response.status}: {answer}")
    return answer


def serve_once(bundle_dir: Path, request: dict[str, Any], *, allow_custom_code: bool = False) -> Any:
    """Sign, push and serve ``bundle_dir`` from a scratch key and store; return the answer to ``request``."""
    with tempfile.TemporaryDirectory(prefix="modelfn-local-") as scratch:
        settings = publish_locally(
            bundle_dir,
            store=Path(scratch) / "store",
            key_dir=Path(scratch) / "keys",
            allow_custom_code=allow_custom_code,
        )
        return predict_locally(settings, request)
