"""The HTTP handler inside the real Lambda Runtime Interface Emulator (aws-lambda-rie + awslambdaric).

The emulator (``tests/handlers/rie.py``) starts ``python -m awslambdaric modelfn.handlers.http.handler``
exactly as the Lambda Python runtime does: the module import (init phase) verifies and loads the
model from the store named by ``MODELFN_*`` variables, and each invocation goes through Mangum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected
from tests.handlers.events import HTTP_SOURCES, http_event
from tests.handlers.rie import Emulator

pytestmark = pytest.mark.slow


@pytest.fixture
def emulator(local_published: Published, tmp_path: Path) -> Iterator[Emulator]:
    rie = Emulator(local_published.env, tmp_path / "rie.log")
    yield rie
    rie.stop()


@pytest.mark.parametrize("source", HTTP_SOURCES)
def test_predict_through_the_emulator(emulator: Emulator, source: str) -> None:
    # GIVEN a verified model loaded in the emulator's init phase
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    body = json.dumps({"instances": x.tolist()}).encode()
    # WHEN each front door's event shape is invoked, once with a base64 body
    for as_base64 in (False, True):
        response = emulator.invoke(
            http_event(
                source, "POST", "/predict", body, as_base64=as_base64, headers={"content-type": "application/json"}
            )
        )
        # THEN the handler answers 200 with the model's predictions
        assert response["statusCode"] == 200, response
        payload = json.loads(response["body"])
        np.testing.assert_allclose(payload["predictions"], tiny_onnx_expected(x), rtol=1e-5, atol=1e-6)


def test_health_reports_the_verified_identity(emulator: Emulator, local_published: Published) -> None:
    response = emulator.invoke(http_event("http_api_v2", "GET", "/v2/health/ready"))
    assert response["statusCode"] == 200
    ready = emulator.invoke(http_event("http_api_v2", "GET", f"/v2/models/{local_published.name}"))
    assert json.loads(ready["body"])["name"] == local_published.name


def test_bad_input_is_4xx_not_a_crash(emulator: Emulator) -> None:
    response = emulator.invoke(http_event("http_api_v2", "POST", "/predict", b"{not json"))
    assert response["statusCode"] == 400
    assert "error" in json.loads(response["body"])


def test_tampered_model_never_becomes_ready(local_published: Published, tmp_path: Path) -> None:
    # GIVEN a store whose model.onnx was modified after signing
    path = Path(local_published.settings.store_url) / "tiny" / "1" / "model.onnx"
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    rie = Emulator(local_published.env, tmp_path / "rie.log")
    try:
        # WHEN the function starts and gets a prediction request
        response = rie.invoke(http_event("http_api_v2", "POST", "/predict", b'{"instances": [[1, 2, 3, 4]]}'))
        # THEN it answers 503 with Retry-After instead of serving an unverified model
        assert response["statusCode"] == 503
        headers = {k.lower(): v for k, v in response["headers"].items()}
        assert "retry-after" in headers
    finally:
        rie.stop()
