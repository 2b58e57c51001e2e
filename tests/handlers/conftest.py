"""The Lambda HTTP handler over the lean app serving a tiny real model, as ``modelfn.handlers.http`` builds it."""

from __future__ import annotations

import pytest

from modelfn.handlers.lambda_http import LambdaHTTPHandler, lambda_http_handler
from modelfn.loader import LoadedBundle
from modelfn.serving.asgi import create_app
from tests.serving.tiny_models import linear_bundle, served

MAX_BODY_BYTES = 1024


@pytest.fixture(scope="session")
def linear() -> LoadedBundle:
    return linear_bundle()


@pytest.fixture
def handler(linear: LoadedBundle) -> LambdaHTTPHandler:
    return lambda_http_handler(create_app(served(linear, max_body_bytes=MAX_BODY_BYTES)))
