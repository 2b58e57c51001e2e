"""The stores (local directory, S3 on moto) and the bundle-shaped directory the repository tests push."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfn.store.local import LocalStore
from modelfn.store.s3 import S3Store


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore | S3Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return S3Store(request.getfixturevalue("s3_bucket"), "registry")


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    """A bundle-shaped directory (push neither signs nor verifies, so the file bytes are opaque)."""
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "model.onnx").write_bytes(b"onnx bytes")
    (root / "manifest.json").write_bytes(b'{"name": "iris", "version": 1}')
    (root / "model.sig").write_bytes(b"{}")
    return root
