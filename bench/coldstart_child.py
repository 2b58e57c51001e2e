"""One modelfn cold start: import the Lambda HTTP handler (init: fetch, verify, load) and answer one request.

argv: path of the request body (JSON, written by bench_coldstart.py: the client builds it, not the
function), then ``--phases`` to time each load phase. Settings come from MODELFN_* variables. Prints
one JSON line with the timings in milliseconds; with ``--phases`` also ``phases``: name -> [wall, CPU]
between consecutive marks on the init thread (CPU is the whole process's, so the onnxruntime import
that runs in a background thread during the store calls is counted where it overlaps).
"""

import time

T0 = time.perf_counter()
C0 = time.process_time()
import json  # noqa: E402
import sys  # noqa: E402

MARKS: list[tuple[str, float, float]] = []


def mark(name: str) -> None:
    """The phase ``name`` ends now."""
    MARKS.append((name, time.perf_counter(), time.process_time()))


def instrument() -> None:
    """Mark the load's phase boundaries by wrapping the functions that start or end them."""
    import functools

    import modelfn.loader as loader
    import modelfn.repository.versions as versions
    import modelfn.runtime.onnx_session as onnx_session
    import modelfn.signing.verify as verify
    import modelfn.store.s3 as s3

    def wrap(owner: object, attr: str, before: str | None, after: str | None) -> None:
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def inner(*args: object, **kwargs: object) -> object:
            if before:
                mark(before)
            try:
                return fn(*args, **kwargs)
            finally:
                if after:
                    mark(after)

        setattr(owner, attr, inner)

    wrap(loader, "load_bundle", "handler imports + settings", None)
    wrap(s3, "new_client", None, "boto3 import + client")
    wrap(versions, "resolve_listing", None, "list (resolve version)")
    wrap(verify, "verify_signature", "GET model.sig", "verify signature")
    wrap(loader, "_read_signed_files", "check file set", "GET signed files (hashed while read)")
    wrap(loader, "build_runtime", "parse manifest", None)
    wrap(onnx_session, "inspect_onnx", None, "guard (inspect_onnx)")
    wrap(onnx_session, "resolve_providers", "external-data check + wait for onnxruntime import", None)
    wrap(onnx_session.OnnxModel, "__init__", None, "InferenceSession + schema check")
    wrap(onnx_session.OnnxModel, "warm_up", None, "warm-up run")


PHASES = "--phases" in sys.argv[2:]
with open(sys.argv[1], "rb") as file:  # the event arrives from outside the function: not timed work
    body = file.read()
if PHASES:
    instrument()
import modelfn.handlers.http as http  # noqa: E402  (Lambda init phase: verified load happens here)

T_INIT = time.perf_counter()
mark("rest of init (app, observability)")
from modelfn.invoke import LocalLambdaContext, http_api_event  # noqa: E402

response = http.handler(http_api_event(body, path="/predict"), LocalLambdaContext())
T_FIRST = time.perf_counter()
mark("first request (JSON parse + run)")
assert response["statusCode"] == 200, response
result = {"init_ms": (T_INIT - T0) * 1e3, "first_request_ms": (T_FIRST - T_INIT) * 1e3,
          "in_process_total_ms": (T_FIRST - T0) * 1e3}  # fmt: skip
if PHASES:
    phases, last_wall, last_cpu = {}, T0, C0
    for name, wall, cpu in MARKS:
        phases[name] = [round((wall - last_wall) * 1e3, 3), round((cpu - last_cpu) * 1e3, 3)]
        last_wall, last_cpu = wall, cpu
    result["phases"] = phases
print(json.dumps(result))
