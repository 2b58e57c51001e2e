"""AWS Lambda storage-event handler: S3 ObjectCreated (direct, via SQS, or EventBridge) → batch predictions.

Everything happens at import, in Lambda's INIT phase: settings, the output-location check, then
fetch → verify → load. Each invocation scores the announced objects into ``MODELFN_OUTPUT_URL``
(see ``modelfn.batch.trigger`` and ``modelfn.batch.job``).
"""

from __future__ import annotations

from modelfn.batch.trigger import build_storage_handler
from modelfn.config import Settings
from modelfn.handlers._snapstart import on_restore
from modelfn.handlers._snapstart import register as register_snapstart_hooks
from modelfn.serving.observability import LambdaObservability

settings = Settings.load()
observability = LambdaObservability(settings)  # before the load: its phase timings and failures are metrics
scorer = build_storage_handler(settings)
observability.serve(scorer.state)
register_snapstart_hooks(scorer.state)  # SnapStart: snapshot only a verified model; fresh clients per restore
on_restore(scorer.reset_clients)
handler = observability.wrap(scorer)
