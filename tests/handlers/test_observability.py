"""Lambda observability: EMF metric lines, structured JSON logs and cold-start flags from the real handlers.

Each case imports a handler in a fresh interpreter (its INIT phase loads the model at import), invokes
it, and parses what it printed: CloudWatch EMF blobs (``_aws`` key) and Powertools log lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fixtures.bundles import Published

REPO_ROOT = Path(__file__).resolve().parents[2]
INVOKE_HTTP = """
import modelfn.handlers.http as h
from tests.handlers.events import LambdaContext, http_event
good = b'{"instances": [[1, 2, 3, 4]]}'
for body in (good, good, b'{"instances": "nope"}'):
    h.handler(http_event("http_api_v2", "POST", "/predict", body), LambdaContext())
import logging
logging.getLogger("modelfn.serving").warning("probe after the last invocation")
"""


def _run(code: str, env: dict[str, str]) -> list[dict[str, Any]]:
    """Run ``code`` in a fresh interpreter; every JSON object it printed on stdout, in order."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _env(published: Published | None, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELFN_", "POWERTOOLS_", "AWS_LAMBDA_"))}
    if published is None:
        env.update(MODELFN_STORE_URL=str(tmp_path / "empty"), MODELFN_MODEL_NAME="absent")
    else:
        env.update(published.env)
    env.update(extra)
    return env


def _emf(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "_aws" in line]


def _total(blob: dict[str, Any], name: str) -> float:
    """A metric's value in a blob: Powertools writes a list of the values recorded (or one number)."""
    value = blob[name]
    return float(sum(value)) if isinstance(value, list) else float(value)


def _metric_names(blob: dict[str, Any]) -> set[str]:
    return {m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def test_http_handler_emits_emf_and_structured_logs_on_lambda(local_published: Published, tmp_path: Path) -> None:
    # GIVEN the HTTP handler started as Lambda starts it, with the SAM template's service and namespace
    env = _env(
        local_published, tmp_path, AWS_LAMBDA_FUNCTION_NAME="modelfn-http", POWERTOOLS_SERVICE_NAME="stack-a",
        POWERTOOLS_METRICS_NAMESPACE="modelfn",
    )  # fmt: skip
    # WHEN it is imported (INIT: fetch, verify, load) and invoked three times, the last with a bad body
    lines = _run(INVOKE_HTTP, env)
    blobs = _emf(lines)
    # THEN one EMF line per invocation, in namespace modelfn with the dimension the canary alarms watch
    assert len(blobs) == 3
    for blob in blobs:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "modelfn"
        assert directive["Dimensions"] == [["service"]]
        assert blob["service"] == "stack-a"
        assert (blob["model_name"], blob["model_version"]) == ("tiny", 1)
        assert len(blob["root_digest"]) == 64
    first, second, third = blobs
    # AND the first carries the cold start and the load phases, each a positive time in ms
    assert _total(first, "ColdStart") == 1
    assert {"LoadFetchTime", "LoadVerifyTime", "LoadSessionTime", "InferenceLatency"} <= _metric_names(first)
    assert _total(first, "LoadFetchTime") >= _total(first, "LoadVerifyTime") > 0
    assert _total(first, "LoadSessionTime") > 0
    # AND later invocations are warm: latency only, no cold start, no load phases
    assert _metric_names(second) == {"InferenceLatency"}
    assert _total(second, "InferenceLatency") > 0
    # AND the bad request is counted by type and as a request error
    assert _total(third, "Error.invalid_request") == 1
    assert _total(third, "RequestErrors") == 1
    # AND log lines are Powertools JSON carrying the request id, the cold-start flag and the model identity
    logs = [line for line in lines if "_aws" not in line and "level" in line]
    assert logs, "expected structured log lines"
    init_line = next(line for line in logs if str(line["message"]).startswith("serving tiny v1"))
    assert init_line["name"] == "modelfn.serving"
    probe = next(line for line in logs if line["message"] == "probe after the last invocation")
    assert probe["request_id"] == "6f1ab1b9-2b21-4e9f-8e2a-0c0d1e2f3a4b"
    assert probe["cold_start"] is False
    assert (probe["model_name"], probe["model_version"], probe["service"]) == ("tiny", 1, "stack-a")
    assert probe["root_digest"] == first["root_digest"]


def test_failed_load_emits_model_load_failed_for_the_canary_alarm(tmp_path: Path) -> None:
    # GIVEN a Lambda whose model is absent from its store
    env = _env(None, tmp_path, AWS_LAMBDA_FUNCTION_NAME="modelfn-http", POWERTOOLS_SERVICE_NAME="stack-b")
    # WHEN it starts and is invoked
    blobs = _emf(_run(INVOKE_HTTP, env))
    # THEN the first EMF line counts ModelLoadFailed under namespace modelfn, service = the stack
    first = blobs[0]
    assert _total(first, "ModelLoadFailed") == 1
    assert first["service"] == "stack-b"
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "modelfn"
    # AND every request was a 503 counted by type, never a model served
    assert all(_total(blob, "Error.model_not_ready") == 1 for blob in blobs)


def test_no_emf_and_no_json_logs_off_lambda_unless_asked(local_published: Published, tmp_path: Path) -> None:
    # GIVEN the handler run locally (no AWS_LAMBDA_FUNCTION_NAME)
    quiet = _run(INVOKE_HTTP, _env(local_published, tmp_path))
    # THEN nothing is printed on stdout
    assert quiet == []
    # WHEN EMF is asked for explicitly
    asked = _emf(_run(INVOKE_HTTP, _env(local_published, tmp_path, MODELFN_EMF_METRICS="on")))
    # THEN the EMF lines appear (default namespace modelfn)
    assert len(asked) == 3
    assert asked[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "modelfn"
