"""Stores under test: every shared behaviour runs against a local directory and a real S3 endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfn.store.base import Store
from modelfn.store.local import LocalStore
from modelfn.store.s3 import S3Store

STORE_KINDS = ["local", pytest.param("s3", marks=pytest.mark.slow)]


@pytest.fixture(params=STORE_KINDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, empty store of each kind (S3 on moto_server, with a key prefix to exercise it)."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(bucket, "models/")
