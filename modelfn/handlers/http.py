"""AWS Lambda HTTP handler (API Gateway REST/HTTP APIs, Function URLs, ALB) over the lean app.

Everything happens at import, in Lambda's INIT phase (so provisioned concurrency and SnapStart
start warm): settings, then fetch → verify → load. A failed load still yields a handler that
answers 503 + Retry-After. Requests are answered on the invocation's thread
(``modelfn.handlers.lambda_http``: Mangum's event shapes without its per-request event loop).
"""

from __future__ import annotations

from modelfn.config import Settings
from modelfn.handlers._snapstart import register as register_snapstart_hooks
from modelfn.handlers.lambda_http import lambda_http_handler
from modelfn.serving.asgi import create_app
from modelfn.serving.observability import LambdaObservability
from modelfn.serving.state import ModelState

settings = Settings.load()
observability = LambdaObservability(settings)  # before the load: its phase timings and failures are metrics
state = ModelState.load(settings)
observability.serve(state)
register_snapstart_hooks(state)  # SnapStart: snapshot only a verified model; fresh randomness and clients per restore
app = create_app(state)
handler = observability.wrap(lambda_http_handler(app))
