"""The storage-event Lambda handler: verify and load once, then score every announced object.

``build_storage_handler(settings)`` runs at import of ``modelfn.handlers.storage_event`` (Lambda's
INIT phase): it refuses, with a ``ConfigError``, a missing ``output_url`` or one that overlaps the
trigger's ``input_url`` (a result written where the trigger fires would invoke the function again),
then fetches, verifies and loads the model. A model that fails to load leaves the handler not ready:
every invocation raises ``ModelNotReady``; nothing is ever scored by an unverified model.

Per delivery (see ``modelfn.batch.events``):

* **SQS**: Powertools' ``BatchProcessor``; a record that fails (unreadable object, wrong columns,
  deadline) is listed in ``batchItemFailures`` and retried by SQS, the others' outputs stand.
* **S3 direct / EventBridge**: every object is tried; if any failed, the invocation raises so
  Lambda's retries and on-failure destination take it (finished objects are skipped on retry).

Deadline: before each record and each chunk, the context's remaining time is compared with
``DEADLINE_RESERVE_MS``; below it, the work stops without writing and the rest is reported as failed.
Objects under ``output_url`` are never scored (a second guard against recursive invocation). An
object overwritten or deleted since its event is acknowledged and skipped: its announced bytes are
gone, retrying cannot bring them back, and a replacement has its own event.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from modelfn.batch.events import SOURCES, CreatedObject, event_source
from modelfn.errors import (
    ConfigError,
    DeadlineExceeded,
    InvalidRequest,
    ModelfnError,
    ObjectChanged,
    ObjectNotFound,
)
from modelfn.serving.metrics import BATCH_ERRORS, BATCH_SIZE, METRICS, ROWS_PROCESSED, error_metric

if TYPE_CHECKING:
    from modelfn.batch.job import JobOutcome
    from modelfn.batch.sink import Output
    from modelfn.config import Settings
    from modelfn.serving.state import ModelState
    from modelfn.store.s3 import S3Store

logger = logging.getLogger("modelfn.batch")

DEADLINE_RESERVE_MS = 2_000
"""Stop taking work when less than this is left of the invocation."""


class LambdaContext(Protocol):
    """The part of Lambda's context object this handler reads."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the platform stops the invocation."""
        ...


class StorageEventFailed(ModelfnError):
    """Raise when objects of a direct S3 / EventBridge invocation failed, so Lambda retries the event."""

    code = "storage_event_failed"


def is_storage_event(event: Mapping[str, Any]) -> bool:
    """True for S3 notifications (direct or via SQS, ``s3:TestEvent`` included) and EventBridge Object Created."""
    return event_source(event) is not None


def check_locations(settings: Settings) -> None:
    """Refuse a missing ``output_url``, or one overlapping the trigger's ``input_url`` (recursive invocation)."""
    if not settings.output_url:
        raise ConfigError(
            "no output location: set MODELFN_OUTPUT_URL (s3://bucket/prefix or a path)", field="output_url"
        )
    if settings.input_url and _overlaps(settings.input_url, settings.output_url):
        raise ConfigError(
            f"output_url {settings.output_url!r} overlaps the trigger's input_url {settings.input_url!r}: results"
            " written there would trigger the function again; choose disjoint prefixes",
            field="output_url",
        )


def build_storage_handler(settings: Settings) -> StorageEventHandler:
    """Check the locations, verify and load the model once, and return the Lambda handler function."""
    from modelfn.batch.sink import output_for
    from modelfn.serving.state import ModelState

    check_locations(settings)
    assert settings.output_url is not None
    output = output_for(settings.output_url)
    state = ModelState.load(settings)
    # Powertools' event and batch classes (~50 ms) load here, in the init phase that provisioned
    # concurrency and SnapStart pre-run, instead of on the first event's clock.
    for module in ("aws_lambda_powertools.utilities.batch", "aws_lambda_powertools.utilities.data_classes"):
        importlib.import_module(module)

    return StorageEventHandler(state, output, settings.chunk_rows)


class StorageEventHandler:
    """Holds the loaded model, the output location and one S3 client for every invocation."""

    def __init__(self, state: ModelState, output: Output, chunk_rows: int) -> None:
        self.state, self.output, self.chunk_rows = state, output, chunk_rows
        self._client: Any = None

    def reset_clients(self) -> None:
        """Forget the cached S3 client (after a SnapStart restore: new credentials, new connections)."""
        self._client = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.state.require()
        source = event_source(event)
        if source is None:
            raise InvalidRequest(
                f"not a storage event; tried {', '.join(SOURCES)} (replay tests/events/s3_object_created.json"
                " with `modelfn invoke --event` to test locally)",
                field="event",
            )
        if source == "sqs":
            return self._sqs(event, context)
        from modelfn.batch.events import eventbridge_object, s3_notification_objects

        objects = s3_notification_objects(event) if source == "s3" else [eventbridge_object(event)]
        METRICS.add(BATCH_SIZE, len(objects))
        results: list[dict[str, Any]] = []
        failures: list[ModelfnError] = []
        for obj in objects:
            try:
                results.append(self._score(obj, context))
            except ModelfnError as exc:
                logger.error("scoring %s failed (%s): %s", obj.url, exc.code, exc.message)
                _count_failure(exc)
                failures.append(exc)
        if failures:
            raise StorageEventFailed(
                f"{len(failures)} of {len(objects)} objects failed; first: {failures[0].message}",
                field=failures[0].field,
            ) from failures[0]
        return {"results": results}

    def _sqs(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        from modelfn.batch.events import sqs_body_objects

        def record_handler(record: Any) -> list[dict[str, Any]]:
            try:
                _check_deadline(context)
                return [self._score(obj, context) for obj in sqs_body_objects(record.body)]
            except ModelfnError as exc:
                _count_failure(exc)
                raise

        METRICS.add(BATCH_SIZE, len(event.get("Records") or ()))
        processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(process_partial_response(event, record_handler, processor, context))

    def _score(self, obj: CreatedObject, context: Any) -> dict[str, Any]:
        """Score one object (or skip it when it lies under the output location)."""
        from modelfn.batch.job import score_object
        from modelfn.store.base import ObjectInfo

        _check_deadline(context)
        if _overlaps(obj.url, self.output.url):
            logger.warning("skipped %s: it is under the output location %s", obj.url, self.output.url)
            return {"input": obj.url, "skipped": "under the output location"}
        if obj.key.endswith("/"):
            return {"input": obj.url, "skipped": "a folder marker, not data"}
        etag = f'"{obj.etag.strip(chr(34))}"' if obj.etag else None  # If-Match wants the quoted form S3 lists
        pin = ObjectInfo(obj.key, obj.size, etag, obj.version_id) if obj.size is not None else None
        try:
            outcome = score_object(
                self.state.require(),
                self._store(obj.bucket),
                obj.key,
                self.output,
                pin=pin,
                chunk_rows=self.chunk_rows,
                between_chunks=lambda: _check_deadline(context),
            )
        except ObjectChanged as exc:
            # The announced version is gone (overwritten in an unversioned bucket): its successor has its own event.
            logger.warning("skipped %s: %s", obj.url, exc.message)
            return {"input": obj.url, "skipped": "superseded by a newer object"}
        except ObjectNotFound as exc:
            # Deleted since it was announced: there is nothing left to score, and retrying cannot change that.
            logger.warning("skipped %s: %s", obj.url, exc.message)
            return {"input": obj.url, "skipped": "deleted since the event"}
        logger.info("scored %s: %d rows -> %s", obj.url, outcome.rows, outcome.output_key)
        METRICS.add(ROWS_PROCESSED, outcome.rows)
        return _summary(outcome)

    def _store(self, bucket: str) -> S3Store:
        from modelfn.store.s3 import S3Store

        if self._client is None:
            from modelfn.store.base import StoreTimeouts

            self._client = S3Store(bucket, timeouts=StoreTimeouts.from_settings(self.state.settings)).client
        return S3Store(bucket, "", client=self._client)


def _count_failure(exc: ModelfnError) -> None:
    """One failed record or object: ``BatchErrors`` plus the per-type error count."""
    METRICS.add(BATCH_ERRORS)
    METRICS.add(error_metric(exc.code))


def _check_deadline(context: LambdaContext | None) -> None:
    """Raise ``DeadlineExceeded`` when less than the reserve is left (no context: no deadline)."""
    if context is None:
        return
    remaining = int(context.get_remaining_time_in_millis())
    if remaining < DEADLINE_RESERVE_MS:
        raise DeadlineExceeded(
            f"{remaining} ms left, under the {DEADLINE_RESERVE_MS} ms reserve: stopped to retry later",
            field="deadline",
        )


def _overlaps(a: str, b: str) -> bool:
    """True when one location is inside the other (same scheme/bucket, one prefix containing the other)."""
    from modelfn.batch.locations import contains

    return contains(a, b) or contains(b, a)


def _summary(outcome: JobOutcome) -> dict[str, Any]:
    return {
        "input": outcome.input_url,
        "output": f"{outcome.output_url.rstrip('/')}/{outcome.output_key}",
        "rows": outcome.rows,
        "already_done": outcome.already_done,
    }
