"""``modelfn event`` writes events the handlers accept as-is, in the shapes the platform (and SAM) use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import numpy as np
import pytest
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event, SQSEvent
from typer.testing import CliRunner

from modelfn.cli import app
from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected

runner = CliRunner()
SAM = Path(sys.executable).parent / "sam"
EVENTS = Path(__file__).resolve().parents[1] / "events"
ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0]]
# Fields API Gateway sends only when used (cookies, query string, authorizer, ...) and SAM's sample headers.
HTTP_OPTIONAL = {".cookies", ".queryStringParameters", ".pathParameters", ".stageVariables", ".headers.Header1",
                 ".headers.Header2", ".requestContext.authentication", ".requestContext.authorizer"}  # fmt: skip


def run(*args: str, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def run_failing(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 2, result.output
    return result.output


def serve_args(published: Published) -> list[str]:
    return ["--store", published.settings.store_url, "--model", published.name, "--trust",
            published.settings.trusted_keys[0]]  # fmt: skip


def key_tree(value: Any) -> Any:
    """The nested key structure of a JSON value (lists by their first element), without the values."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [key_tree(value[0])] if value else []
    return type(value).__name__ if isinstance(value, dict | list) else None


def sam_event(*args: str) -> dict[str, Any]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    out = subprocess.run([str(SAM), "local", "generate-event", *args], capture_output=True, text=True, check=True,
                         env=env, timeout=120)  # fmt: skip
    event: dict[str, Any] = json.loads(out.stdout)
    return event


def test_generated_http_event_is_served_as_is(local_published: Published, tmp_path: Path) -> None:
    # GIVEN an HTTP API event written by `modelfn event http`
    event_file = tmp_path / "http.json"
    run("event", "http", "-d", json.dumps({"instances": ROWS}), "--out", str(event_file))
    # WHEN `modelfn invoke --event` replays it against the published model
    response = json.loads(run("invoke", "--event", str(event_file), *serve_args(local_published)))
    # THEN the HTTP handler answers with the model's predictions
    assert response["statusCode"] == 200, response
    np.testing.assert_allclose(response["body"]["predictions"], tiny_onnx_expected(np.array(ROWS, np.float32)),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_generated_get_event_reads_health_from_stdin(local_published: Published) -> None:
    # GIVEN a GET event for the readiness route, piped in on stdin
    event = run("event", "http", "--method", "GET", "--path", "/v2/health/ready")
    # WHEN it is invoked with --event -
    response = json.loads(run("invoke", "--event", "-", *serve_args(local_published), input=event))
    # THEN readiness reports the verified model
    assert response["statusCode"] == 200
    assert response["body"]["name"] == local_published.name and response["body"]["ready"] is True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ours", "sams"),
    [
        (["s3"], ["s3", "put"]),
        (["sqs"], ["sqs", "receive-message"]),
        (["http", "-d", "{}"], ["apigateway", "http-api-proxy"]),
    ],
)
def test_shapes_match_sam_generate_event(ours: list[str], sams: list[str]) -> None:
    # GIVEN the event `sam local generate-event` writes for the same trigger
    expected = sam_event(*sams)
    # WHEN modelfn writes its own
    mine = json.loads(run("event", *ours, "--bucket", "b", "--key", "k") if ours[0] != "http" else run("event", *ours))
    # THEN every field SAM's event has is present at the same place (modelfn may add more)
    missing = set(_missing_keys(key_tree(expected), key_tree(mine)))
    assert missing - HTTP_OPTIONAL == set(), missing


def _missing_keys(expected: Any, actual: Any, where: str = "") -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [where or "."]
        return [m for k, v in expected.items() for m in
                (_missing_keys(v, actual[k], f"{where}.{k}") if k in actual else [f"{where}.{k}"])]  # fmt: skip
    if isinstance(expected, list) and expected:
        return _missing_keys(expected[0], actual[0], f"{where}[0]") if isinstance(actual, list) and actual else [where]
    return []


def test_storage_events_carry_keys_url_encoded_as_s3_does() -> None:
    # GIVEN a key with a space, a plus and a non-ASCII letter, in two records
    keys = ["in/a b+c.jsonl", "in/é.csv"]
    s3 = json.loads(run("event", "s3", "--bucket", "data", "--key", keys[0], "--key", keys[1], "--size", "7"))
    sqs = json.loads(run("event", "sqs", "--bucket", "data", "--key", keys[0], "--key", keys[1]))
    bridge = json.loads(run("event", "eventbridge", "--bucket", "data", "--key", keys[0]))
    # THEN the raw keys are encoded as S3 encodes them (space as '+') and decode back to the originals
    records = list(S3Event(s3).records)
    assert [r.s3.get_object.key for r in records] == ["in/a+b%2Bc.jsonl", "in/%C3%A9.csv"]
    assert [unquote_plus(r.s3.get_object.key) for r in records] == keys
    assert S3Event(s3).object_key == keys[0] and records[0].s3.get_object.size == 7
    bodies = [S3Event(json.loads(r.body)) for r in SQSEvent(sqs).records]
    assert [b.object_key for b in bodies] == keys and [b.bucket_name for b in bodies] == ["data", "data"]
    assert [r.event_source_arn.split(":")[-1] for r in SQSEvent(sqs).records] == ["modelfn-storage"] * 2
    detail = EventBridgeEvent(bridge)
    assert (detail.source, detail.detail_type) == ("aws.s3", "Object Created")
    assert detail.detail["object"]["key"] == keys[0]  # EventBridge carries keys unencoded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kafka"], "choose one of s3, sqs, eventbridge, http"),
        (["eventbridge", "--key", "a", "--key", "b"], "exactly one object"),
        (["http"], "needs --data"),
        (["http", "-d", "@/nonexistent/body.json"], "cannot read --data file"),
        (["s3", "--bucket", ""], "bucket"),
    ],
)
def test_bad_event_arguments_exit_2_naming_the_problem(args: list[str], message: str) -> None:
    assert message in run_failing("event", *args)


def test_invoke_names_the_sources_it_tried_for_an_unknown_event(local_published: Published, tmp_path: Path) -> None:
    # GIVEN a JSON object that is no platform event
    event_file = tmp_path / "odd.json"
    event_file.write_text('{"hello": "world"}')
    # WHEN it is invoked, THEN the error lists what was tried and how to get a real event
    out = run_failing("invoke", "--event", str(event_file), *serve_args(local_published))
    assert "matches no handler" in out and "storage" in out and "modelfn event" in out
    event_file.write_text("[1, 2]")
    assert "must be a JSON object" in run_failing("invoke", "--event", str(event_file), *serve_args(local_published))


def test_emulation_modules_import_no_runtime_or_framework() -> None:
    # GIVEN a fresh interpreter, WHEN the event builders and the emulator module are imported
    code = (
        "import sys, json, modelfn.emulate.events, modelfn.emulate.lambda_rie; print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    modules = set(json.loads(out.stdout))
    # THEN nothing heavy came with them (boto3 and mangum load only when an event needs them)
    heavy = ("onnxruntime", "boto3", "fastapi", "pydantic", "mangum", "numpy", "modelfn.adapters")
    assert sorted(m for m in modules if m.split(".")[0] in heavy or m.startswith("modelfn.adapters")) == []


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("http_api_v2", "http"),
        ("apigw_rest_v1", "http"),
        ("function_url", "http"),
        ("alb", "http"),
        ("s3_object_created", "storage"),
        ("sqs_s3", "storage"),
        ("sqs_s3_test_event", "storage"),
        ("eventbridge_object_created", "storage"),
    ],
)
def test_canned_events_pick_their_handler(name: str, kind: str) -> None:
    from modelfn.invoke import event_kind, read_event

    # GIVEN a canned platform event from tests/events, WHEN its shape is classified, THEN the right handler is chosen
    assert event_kind(read_event(EVENTS / f"{name}.json")) == kind
