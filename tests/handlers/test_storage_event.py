"""The storage-event handler against a real S3 endpoint (moto_server): deliveries, idempotency, poison records,
recursion guards and deadlines (SECURITY.md rules 22-24; rule 25 is in test_storage_event_kill.py)."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from typing import Any

import boto3
import numpy as np
import pytest

from modelfn.batch.trigger import DEADLINE_RESERVE_MS, StorageEventFailed, build_storage_handler, is_storage_event
from modelfn.config import Settings
from modelfn.errors import ConfigError, InvalidRequest, ModelNotReady
from tests.batch.s3_events import body, csv_rows, eventbridge_event, keys, put, s3_event, sqs_event, sqs_of
from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected
from tests.handlers.events import HTTP_SOURCES, LambdaContext, load_event

pytestmark = pytest.mark.slow

X = (np.arange(40, dtype=np.float32).reshape(10, 4) - 20) / 8


@pytest.fixture
def settings(s3_published: Published, s3_bucket: str) -> Settings:
    """The tiny model from s3://bucket/models, triggered by s3://bucket/incoming, writing to s3://bucket/results."""
    return s3_published.settings.replace(
        input_url=f"s3://{s3_bucket}/incoming/", output_url=f"s3://{s3_bucket}/results/", chunk_rows=4
    )


def _predicted(csv: bytes) -> np.ndarray[Any, Any]:
    lines = csv.decode().splitlines()
    assert lines[0] == "a,b,c,d,y_0,y_1,y_2"
    return np.array([[float(v) for v in line.split(",")[4:]] for line in lines[1:]], dtype=np.float32)


def test_direct_s3_notification_scores_the_object(settings: Settings, s3_bucket: str) -> None:
    # GIVEN a CSV uploaded under the trigger's prefix (the key has a space, URL-encoded in the event)
    obj = put(s3_bucket, "incoming/day one.csv", csv_rows(X))
    handler = build_storage_handler(settings)
    # WHEN S3 invokes the function directly
    answer = handler(s3_event(obj), LambdaContext())
    # THEN the result is written under the output prefix, named from the input key, with a meta record
    (result,) = answer["results"]
    assert result["rows"] == 10 and result["already_done"] is False
    written = keys(s3_bucket, "results/")
    assert len(written) == 2
    out_key = next(k for k in written if k.endswith(".csv"))
    assert out_key.startswith("results/incoming/day one.csv/tiny-v1-")
    np.testing.assert_allclose(_predicted(body(s3_bucket, out_key)), tiny_onnx_expected(X), rtol=1e-5, atol=1e-5)
    meta = json.loads(body(s3_bucket, out_key + ".meta.json"))
    assert meta["rows"] == 10
    assert meta["input"]["etag"] == obj["etag"]
    assert meta["model"]["name"] == "tiny" and len(meta["model"]["root_digest"]) == 64
    assert {"read_s", "predict_s", "write_s", "total_s"} <= set(meta["timings"])


def test_eventbridge_object_created_scores_the_object(settings: Settings, s3_bucket: str) -> None:
    # GIVEN a JSON Lines object announced through EventBridge
    lines = b"".join(json.dumps({"x": row, "id": i}).encode() + b"\n" for i, row in enumerate(X.tolist()))
    obj = put(s3_bucket, "incoming/rows.jsonl", lines)
    # WHEN the handler gets the EventBridge event
    answer = build_storage_handler(settings)(eventbridge_event(obj), LambdaContext())
    # THEN each output line is its input object plus the prediction
    out_key = answer["results"][0]["output"].removeprefix(f"s3://{s3_bucket}/")
    records = [json.loads(line) for line in body(s3_bucket, out_key).splitlines()]
    assert [r["id"] for r in records] == list(range(10))
    np.testing.assert_allclose([r["y"] for r in records], tiny_onnx_expected(X), rtol=1e-5, atol=1e-5)


def test_s3_test_event_through_sqs_is_acknowledged(settings: Settings, s3_bucket: str) -> None:
    # GIVEN the s3:TestEvent S3 sends when a notification is configured
    event = load_event("sqs_s3_test_event")
    assert is_storage_event(event)
    # WHEN it arrives through SQS
    answer = build_storage_handler(settings)(event, LambdaContext())
    # THEN it succeeds and writes nothing
    assert answer == {"batchItemFailures": []}
    assert keys(s3_bucket, "results/") == []


def test_rule_22_a_duplicated_event_writes_exactly_one_identical_output(settings: Settings, s3_bucket: str) -> None:
    """SECURITY.md rule 22: a duplicated event writes exactly one, byte-identical output (If-None-Match: *)."""
    # GIVEN a versioned bucket (so every write of a key is counted) and one uploaded CSV
    boto3.client("s3").put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    obj = put(s3_bucket, "incoming/dup.csv", csv_rows(X))
    event = sqs_of(obj)
    handler = build_storage_handler(settings)
    # WHEN SQS delivers the same event twice in a row, then twice more at the same time from two threads
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    first = {key: body(s3_bucket, key) for key in keys(s3_bucket, "results/")}
    assert handler(copy.deepcopy(event), LambdaContext()) == {"batchItemFailures": []}
    answers: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: answers.append(handler(copy.deepcopy(event), None))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN every delivery succeeded and each output key was written exactly once, with the same bytes
    assert answers == [{"batchItemFailures": []}] * 2
    assert {key: body(s3_bucket, key) for key in keys(s3_bucket, "results/")} == first
    versions = boto3.client("s3").list_object_versions(Bucket=s3_bucket, Prefix="results/")["Versions"]
    assert sorted(v["Key"] for v in versions) == sorted(first)


def test_rule_23_a_poison_record_fails_alone(settings: Settings, s3_bucket: str) -> None:
    """SECURITY.md rule 23: with one poison record in N, exactly it is in batchItemFailures and N-1 outputs appear."""
    # GIVEN a batch of four: two good CSVs, one with a wrong column, one with an unparseable value
    good1 = put(s3_bucket, "incoming/good1.csv", csv_rows(X))
    good2 = put(s3_bucket, "incoming/good2.csv", csv_rows(X[:3]))
    wide = np.column_stack([X, X[:, 0]])
    wrong = put(s3_bucket, "incoming/wrong.csv", csv_rows(wide, header="a,b,c,d,bogus"))
    bad = put(s3_bucket, "incoming/bad.csv", b"a,b,c,d\n1,2,3,4\n5,6,oops,8\n")
    event = sqs_of(good1, wrong, good2, bad)
    message_ids = [record["messageId"] for record in event["Records"]]
    # WHEN the handler processes the batch
    answer = build_storage_handler(settings)(event, LambdaContext())
    # THEN exactly the poison records are reported
    failed = [item["itemIdentifier"] for item in answer["batchItemFailures"]]
    assert failed == [message_ids[1], message_ids[3]]
    # AND the good records' results exist, the poison ones have only an error record naming the problem
    written = keys(s3_bucket, "results/")
    results = [k for k in written if k.endswith(".csv")]
    assert sorted(k.split("/")[2] for k in results) == ["good1.csv", "good2.csv"]
    errors = {k.split("/")[2]: k for k in written if k.endswith(".error.json")}
    assert sorted(errors) == ["bad.csv", "wrong.csv"]
    wrong_error = json.loads(body(s3_bucket, errors["wrong.csv"]))
    assert wrong_error["code"] == "unprocessable_input" and wrong_error["field"] == "bogus"
    assert "4 feature columns" in wrong_error["error"]
    bad_error = json.loads(body(s3_bucket, errors["bad.csv"]))
    assert bad_error["field"] == "c" and "row 2" in bad_error["error"] and "oops" in bad_error["error"]
    assert not any(k.startswith(("results/incoming/wrong.csv/", "results/incoming/bad.csv/")) and k.endswith(".csv")
                   for k in written)  # fmt: skip


def test_direct_invocation_with_a_failed_object_raises_after_the_others(settings: Settings, s3_bucket: str) -> None:
    # GIVEN a direct S3 notification of a good and a bad object
    good = put(s3_bucket, "incoming/ok.csv", csv_rows(X))
    bad = put(s3_bucket, "incoming/broken.csv", b"a,b,c,d\n1,2,3\n")
    handler = build_storage_handler(settings)
    # WHEN it is invoked
    with pytest.raises(StorageEventFailed) as failure:
        handler(s3_event(bad, good), LambdaContext())
    # THEN it raises (Lambda retries the event) and the good object's result was still written
    assert "1 of 2" in failure.value.message
    assert any(k.startswith("results/incoming/ok.csv/") and k.endswith(".csv") for k in keys(s3_bucket, "results/"))


def test_rule_24_output_overlapping_the_trigger_is_refused_at_start(settings: Settings, s3_bucket: str) -> None:
    """SECURITY.md rule 24: an output location inside (or containing) the trigger's input location is refused."""
    for output in (f"s3://{s3_bucket}/incoming/results", f"s3://{s3_bucket}", f"s3://{s3_bucket}/incoming"):
        # WHEN the handler is built with an overlapping output location
        with pytest.raises(ConfigError) as refused:
            build_storage_handler(settings.replace(output_url=output))
        # THEN it refuses before loading anything, naming the setting
        assert refused.value.field == "output_url"
    with pytest.raises(ConfigError):
        build_storage_handler(dataclasses.replace(settings, output_url=None))


def test_rule_24_an_event_for_an_output_object_is_not_scored_again(settings: Settings, s3_bucket: str) -> None:
    """SECURITY.md rule 24: results never trigger more results (no recursive invocation)."""
    # GIVEN one scored object
    handler = build_storage_handler(settings)
    handler(s3_event(put(s3_bucket, "incoming/once.csv", csv_rows(X))), LambdaContext())
    before = keys(s3_bucket, "results/")
    # WHEN a (misconfigured) trigger announces the result object itself
    result_key = next(k for k in before if k.endswith(".csv"))
    head = boto3.client("s3").head_object(Bucket=s3_bucket, Key=result_key)
    obj = {"bucket": s3_bucket, "key": result_key, "size": head["ContentLength"], "etag": head["ETag"].strip('"')}
    answer = handler(s3_event(obj), LambdaContext())
    # THEN it is skipped and nothing new is written
    assert answer["results"][0]["skipped"]
    assert keys(s3_bucket, "results/") == before


@dataclasses.dataclass
class DwindlingContext:
    """Each record and chunk check spends ``step_ms`` of a fixed budget: a deadline without real waiting."""

    remaining_ms: int
    step_ms: int

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_ms -= self.step_ms
        return self.remaining_ms


def test_deadline_stops_taking_records_and_reports_the_rest(settings: Settings, s3_bucket: str) -> None:
    # GIVEN three records and an invocation with time for about one of them
    objects = [put(s3_bucket, f"incoming/d{i}.csv", csv_rows(X)) for i in range(3)]
    event = sqs_of(*objects)
    ids = [record["messageId"] for record in event["Records"]]
    context = DwindlingContext(remaining_ms=DEADLINE_RESERVE_MS + 2_500, step_ms=500)
    # WHEN the handler runs out of time
    answer = build_storage_handler(settings)(event, context)
    # THEN the first record is done and the rest are reported for retry, with nothing half-written
    assert [item["itemIdentifier"] for item in answer["batchItemFailures"]] == ids[1:]
    written = keys(s3_bucket, "results/")
    assert [k.split("/")[2] for k in written if k.endswith(".csv")] == ["d0.csv"]
    assert not any(k.endswith(".error.json") for k in written)


def test_no_time_left_means_nothing_is_taken(settings: Settings, s3_bucket: str) -> None:
    obj = put(s3_bucket, "incoming/late.csv", csv_rows(X))
    event = sqs_of(obj)
    answer = build_storage_handler(settings)(event, LambdaContext(remaining_ms=DEADLINE_RESERVE_MS - 1))
    assert [item["itemIdentifier"] for item in answer["batchItemFailures"]] == [event["Records"][0]["messageId"]]
    assert keys(s3_bucket, "results/") == []


def test_a_model_that_fails_verification_scores_nothing(settings: Settings, s3_bucket: str) -> None:
    # GIVEN a model file tampered with after signing
    client = boto3.client("s3")
    key = "models/tiny/1/model.onnx"
    data = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    client.put_object(Bucket=s3_bucket, Key=key, Body=data[:-1] + bytes([data[-1] ^ 1]))
    obj = put(s3_bucket, "incoming/x.csv", csv_rows(X))
    # WHEN the handler starts (not ready) and gets an event
    handler = build_storage_handler(settings)
    # THEN every invocation raises a clear not-ready error and nothing is written
    with pytest.raises(ModelNotReady, match="integrity"):
        handler(sqs_of(obj), LambdaContext())
    assert keys(s3_bucket, "results/") == []


def test_malformed_sqs_body_is_a_record_failure(settings: Settings, s3_bucket: str) -> None:
    good = put(s3_bucket, "incoming/fine.csv", csv_rows(X))
    event = sqs_event(json.dumps(s3_event(good)), '{"Records": [{"eventSource": "aws:s3"}]}')
    answer = build_storage_handler(settings)(event, LambdaContext())
    assert [item["itemIdentifier"] for item in answer["batchItemFailures"]] == [event["Records"][1]["messageId"]]


@pytest.mark.parametrize("name", ["s3_object_created", "sqs_s3", "sqs_s3_test_event", "eventbridge_object_created"])
def test_stored_storage_events_are_recognised(name: str) -> None:
    assert is_storage_event(load_event(name))


@pytest.mark.parametrize("name", HTTP_SOURCES)
def test_http_events_are_not_storage_events(name: str, settings: Settings) -> None:
    event = load_event(name)
    assert not is_storage_event(event)
    with pytest.raises(InvalidRequest, match="not a storage event"):
        build_storage_handler(settings)(event, LambdaContext())


def test_replaced_deleted_and_folder_marker_objects_are_skipped(settings: Settings, s3_bucket: str) -> None:
    # GIVEN three announced objects: one overwritten since (unversioned bucket), one deleted since, a folder marker
    replaced = put(s3_bucket, "incoming/replaced.csv", csv_rows(X))
    put(s3_bucket, "incoming/replaced.csv", csv_rows(X[:2]))
    deleted = put(s3_bucket, "incoming/deleted.csv", csv_rows(X))
    boto3.client("s3").delete_object(Bucket=s3_bucket, Key="incoming/deleted.csv")
    folder = put(s3_bucket, "incoming/2024/", b"")  # what "Create folder" in the S3 console writes
    event = sqs_of(replaced, deleted, folder)
    # WHEN their events arrive
    answer = build_storage_handler(settings)(event, LambdaContext())
    # THEN both are acknowledged (retrying cannot help) and nothing is scored from the wrong bytes
    assert answer == {"batchItemFailures": []}
    assert keys(s3_bucket, "results/") == []


def test_s3_events_fanned_out_through_sns_to_sqs_are_scored(settings: Settings, s3_bucket: str) -> None:
    # GIVEN an S3 notification published to SNS and delivered to SQS in SNS's envelope (no raw delivery)
    obj = put(s3_bucket, "incoming/fanout.csv", csv_rows(X))
    envelope = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:modelfn-input",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(s3_event(obj)),
        "Timestamp": "2024-04-09T18:03:49.000Z",
        "SignatureVersion": "1",
    }
    event = sqs_event(json.dumps(envelope))
    assert is_storage_event(event)
    # WHEN it is handled
    answer = build_storage_handler(settings)(event, LambdaContext())
    # THEN the object is scored
    assert answer == {"batchItemFailures": []}
    assert any(k.startswith("results/incoming/fanout.csv/") and k.endswith(".csv") for k in keys(s3_bucket, "results/"))
