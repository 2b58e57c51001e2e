"""AWS Lambda storage-event handler: S3 ObjectCreated (direct, via SQS, or EventBridge) → batch predictions.

Everything happens at import, in Lambda's INIT phase: settings, the output-location check, then
fetch → verify → load. Each invocation scores the announced objects into ``MODELFN_OUTPUT_URL``
(see ``modelfn.batch.trigger`` and ``modelfn.batch.job``).
"""

from __future__ import annotations

from modelfn.batch.trigger import build_storage_handler
from modelfn.config import Settings

settings = Settings.load()
handler = build_storage_handler(settings)
