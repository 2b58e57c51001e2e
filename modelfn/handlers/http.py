"""AWS Lambda HTTP handler (API Gateway REST/HTTP APIs, Function URLs, ALB) over the lean ASGI app.

Everything happens at import, in Lambda's INIT phase (so provisioned concurrency and SnapStart
start warm): settings, then fetch → verify → load. A failed load still yields a handler that
answers 503 + Retry-After. Lifespan is off: Mangum would run it on every invocation.
"""

from __future__ import annotations

from mangum import Mangum

from modelfn.config import Settings
from modelfn.handlers._base64_body import HANDLERS as BASE64_BODY_HANDLERS
from modelfn.handlers._snapstart import register as register_snapstart_hooks
from modelfn.serving.asgi import create_app
from modelfn.serving.observability import LambdaObservability
from modelfn.serving.state import ModelState

settings = Settings.load()
observability = LambdaObservability(settings)  # before the load: its phase timings and failures are metrics
state = ModelState.load(settings)
observability.serve(state)
register_snapstart_hooks(state)  # SnapStart: snapshot only a verified model; fresh randomness and clients per restore
app = create_app(state)
handler = observability.wrap(Mangum(app, lifespan="off", custom_handlers=BASE64_BODY_HANDLERS))
