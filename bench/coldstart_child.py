"""One modelfn cold start: import the Lambda HTTP handler (init: fetch, verify, load) and answer one request.

argv: input shape (comma separated). Settings come from MODELFN_* variables. Prints one JSON
line with the phase timings in milliseconds.
"""

import time

T0 = time.perf_counter()
import json  # noqa: E402
import sys  # noqa: E402

import modelfn.handlers.http as http  # noqa: E402  (Lambda init phase: verified load happens here)

T_INIT = time.perf_counter()
import numpy as np  # noqa: E402  (already imported by onnxruntime)

from modelfn.invoke import LocalLambdaContext, http_api_event  # noqa: E402

shape = [1, *map(int, sys.argv[1].split(","))]
rows = json.dumps({"instances": np.zeros(shape, dtype=np.float32).tolist()})

event = http_api_event(rows.encode(), path="/predict")
response = http.handler(event, LocalLambdaContext())
T_FIRST = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({"init_ms": (T_INIT - T0) * 1e3, "first_request_ms": (T_FIRST - T_INIT) * 1e3,
                  "in_process_total_ms": (T_FIRST - T0) * 1e3}))  # fmt: skip
