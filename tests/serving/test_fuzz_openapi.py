"""Schemathesis over the served OpenAPI document, in process: 0 server errors, every answer documented (SECURITY.md 21).

The schema comes from the app itself (``/openapi.json``, the lazily built FastAPI description)
and every request goes through the lean ASGI app that Lambda and containers serve. Cases are
schema-valid and schema-violating (schemathesis' positive and negative modes) for every
operation; half of them name the served model and version so the bodies reach the decoders and
onnxruntime rather than stopping at a 404.

``MODELFN_FUZZ_CASES`` sets the number of cases (2,000 by default, the CI run; the longer run
documented in docs/security.md uses 10,000).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from modelfn.serving.asgi import create_app
from tests.serving.tiny_models import linear_bundle, served

CASES = int(os.environ.get("MODELFN_FUZZ_CASES", "2000"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
"""Left out: ``positive_data_acceptance``. The documented bodies are looser than the routes on
purpose (``/predict`` takes ``instances`` or ``inputs``, checked by the route with a message naming
the key), so a schema-valid ``{}`` is rightly a 400."""


@pytest.mark.slow
def test_openapi_fuzzing_finds_no_server_error_and_no_undocumented_answer() -> None:
    # GIVEN the served app (a real onnxruntime session) and the OpenAPI document it publishes
    app = create_app(served(linear_bundle(), max_body_bytes=64 * 1024))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = {(op.method.upper(), op.path) for op in (result.ok() for result in schema.get_all_operations())}
    cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE))
    seen: Counter[tuple[str, str]] = Counter()
    statuses: Counter[int] = Counter()

    @settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
    @given(case=cases, served_model=st.booleans())
    def fuzz(case: Any, served_model: bool) -> None:
        if served_model and case.path_parameters:
            case.path_parameters["name"] = "linear"
            if "version" in case.path_parameters:
                case.path_parameters["version"] = "3"
        # WHEN the case is sent in process
        response = case.call()
        seen[(case.method.upper(), case.path)] += 1
        statuses[response.status_code] += 1
        # THEN no 5xx, and the status, content type, headers and body are the documented ones
        case.validate_response(response, checks=CHECKS)

    fuzz()

    # THEN every operation was exercised, the bodies reached the model, and the case budget was spent
    assert set(seen) == operations, operations - set(seen)
    assert sum(seen.values()) >= CASES
    assert statuses[200] > 0 and statuses[422] > 0 and statuses[400] > 0, statuses
    assert not [s for s in statuses if s >= 500], statuses
