"""Served states and clients for the serving tests (real onnxruntime sessions over tiny models)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelfn.loader import LoadedBundle
from modelfn.serving.asgi import create_app
from modelfn.serving.state import ModelState
from tests.serving.asgi_client import SyncASGIClient
from tests.serving.tiny_models import echo_bundle, linear_bundle, served


@pytest.fixture(scope="session")
def linear() -> LoadedBundle:
    return linear_bundle()


@pytest.fixture(scope="session")
def echo() -> LoadedBundle:
    return echo_bundle()


@pytest.fixture
def state(linear: LoadedBundle) -> ModelState:
    return served(linear, max_body_bytes=64 * 1024)


@pytest.fixture
def client(state: ModelState) -> Iterator[SyncASGIClient]:
    client = SyncASGIClient(create_app(state))
    yield client
    client.close()


@pytest.fixture
def echo_client(echo: LoadedBundle) -> Iterator[SyncASGIClient]:
    client = SyncASGIClient(create_app(served(echo)))
    yield client
    client.close()
