"""Helpers for the signing tests: tiny bundles on disk and hand-crafted (but really signed) envelopes."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelfn.signing.dsse import PAYLOAD_TYPE, encode_bundle, pae
from modelfn.signing.sign import Signer, hash_bundle
from modelfn.signing.statement import build_statement, encode_statement

BUNDLE_FILES: dict[str, bytes] = {
    "manifest.json": b'{"name": "iris", "version": 3}\n',
    "model.onnx": bytes(range(256)) * 4,
    "extra/vocab.txt": b"setosa\nversicolor\nvirginica\n",
}


def make_bundle(directory: Path, files: dict[str, bytes] | None = None) -> Path:
    """Write a small bundle (no signature yet) and return its directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (BUNDLE_FILES if files is None else files).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def statement_for(bundle_dir: Path, *, name: str = "iris", version: int = 3) -> dict[str, Any]:
    """The statement ``sign_bundle`` would sign for this directory, as an editable dict."""
    return build_statement(hash_bundle(bundle_dir), name=name, version=version)


def sign_payload(payload: bytes, signer: Signer, *, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """A ``model.sig`` whose signature over ``payload`` is genuinely valid for ``signer``."""
    signature = signer.sign(pae(payload_type, payload))
    bundle = json.loads(encode_bundle(payload, signature, signer.key_hint))
    bundle["dsseEnvelope"]["payloadType"] = payload_type
    return json.dumps(bundle).encode()


def sign_statement(statement: dict[str, Any], signer: Signer) -> bytes:
    """Sign an arbitrary (possibly hostile) statement with a real key."""
    return sign_payload(encode_statement(statement), signer)


def edit_bundle(sig_bytes: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """Apply ``edit`` to the decoded outer bundle JSON (the signature itself is left as is)."""
    bundle = json.loads(sig_bytes)
    edit(bundle)
    return json.dumps(bundle).encode()


def payload_of(sig_bytes: bytes) -> dict[str, Any]:
    """The decoded statement inside a ``model.sig`` (for assertions only)."""
    envelope = json.loads(sig_bytes)["dsseEnvelope"]
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def sign_with_model_signing(bundle_dir: Path, private_key: Path) -> Path:
    """Sign ``bundle_dir`` with the reference ``model_signing`` API (key method), as a team without modelfn would."""
    import model_signing

    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"], ignore_git_paths=False)
    signing = model_signing.signing.Config().use_elliptic_key_signer(private_key=private_key)
    signing.set_hashing_config(hashing).sign(bundle_dir, bundle_dir / "model.sig")
    return bundle_dir / "model.sig"
