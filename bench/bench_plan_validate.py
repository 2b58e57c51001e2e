"""Check the plan's concurrency model against a measured load test (Little's law).

Starts ``modelfn serve``'s app under uvicorn with N worker processes (one onnxruntime thread each)
for a small signed MLP, then, from this process:

1. measures the unloaded service time S (client- and server-side): sequential requests, one at a
   time, right before each load level;
2. drives an open-loop Poisson load at λ requests/s for a bounded number of requests (each on a
   new connection, so an idle worker accepts it: one shared queue, as in M/M/c);
3. measures, in the server (per-request start/end in each worker, as Lambda counts a busy
   environment), throughput X = n / T, mean time in system W and the time-averaged number of
   requests in flight L = Σ durations / T (which equals X · W: Little's law);
4. compares with the plan's formulas (``modelfn.plan.queueing``) at the realized arrival rate X:
   requests in service (server side) with X · S, Lambda's model, where every request has its own
   environment; requests in the system (client side, queued + in service) with X · W_MMc(X, S, N),
   the container model. A ratio of 1 is a perfect prediction.

    python bench/bench_plan_validate.py --workers 2 --loads 0.1,0.2,0.3 --requests 2000
    python bench/bench_plan_validate.py --sleep-ms 20 --loads 0.3,0.6   # fixed service time, no model

Writes bench/results/plan_validate.json (with flat ``cold_start_ms``, ``warm_latency_ms`` and
``memory_mb`` that ``modelfn plan --bench`` reads); prints predicted/measured per load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelfn.plan.queueing import littles_law, mmc_time_in_system  # noqa: E402

BODY_FEATURES = 256


def app() -> Any:
    """uvicorn factory (one per worker process): the same verified app ``modelfn serve`` runs, timed per request."""
    record = Path(os.environ["BENCH_RECORD_DIR"]) / f"{os.getpid()}.txt"
    if os.environ.get("BENCH_SLEEP_MS"):
        return Recorder(SleepApp(float(os.environ["BENCH_SLEEP_MS"]) / 1000), record)
    from modelfn.config import Settings
    from modelfn.serving.asgi import create_app
    from modelfn.serving.state import ModelState

    state = ModelState.load(Settings.load())
    if not state.ready:
        raise SystemExit(f"model did not load: {state.failure!r}")
    return Recorder(create_app(state), record)


class SleepApp:
    """A worker busy for exactly ``seconds`` per request (blocking, so one request at a time per worker).

    Takes the model and CPU contention out of the service time, leaving the concurrency model itself
    (Poisson arrivals, N workers, one shared accept queue) to compare with the prediction.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/predict":
            while (await receive()).get("more_body"):
                pass
            time.sleep(self.seconds)  # blocks this worker's event loop on purpose
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})


class Recorder:
    """Writes ``phase start end`` (perf_counter, shared by processes on Linux) for each request.

    Measuring in the server keeps client-side scheduling out of W: the plan predicts how long the
    function is busy per request, which is what Lambda bills and counts as concurrency.
    """

    def __init__(self, inner: Any, path: Path) -> None:
        self.inner = inner
        self.sink = path.open("a", buffering=1)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict":
            await self.inner(scope, receive, send)
            return
        phase = dict(scope["headers"]).get(b"x-bench-phase", b"-").decode()
        start = time.perf_counter()
        await self.inner(scope, receive, send)
        self.sink.write(f"{phase} {start} {time.perf_counter()}\n")


def make_model(hidden: int, layers: int) -> bytes:
    """A float32 MLP (``x`` [N, 256] → ``y`` [N, hidden]) with fixed random weights."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev, width = [], [], "x", BODY_FEATURES
    for i in range(layers):
        w = (rng.standard_normal((width, hidden)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        out = "y" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [out]))
        prev, width = out, hidden
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", BODY_FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", hidden])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    data: bytes = model.SerializeToString()
    return data


def publish(tmp: Path, hidden: int, layers: int) -> dict[str, str]:
    """Package, sign and push the MLP to a local store; the MODELFN_* env that serves it."""
    from modelfn.packaging import package
    from modelfn.repository.transfer import push_bundle
    from modelfn.signing.keys import write_keypair
    from modelfn.signing.sign import KeyFileSigner, sign_bundle
    from modelfn.store.registry import store_for

    (tmp / "mlp.onnx").write_bytes(make_model(hidden, layers))
    write_keypair(tmp / "k.key", tmp / "k.pub")
    package(tmp / "mlp.onnx", None, tmp / "bundle", name="mlp", version=1)
    sign_bundle(tmp / "bundle", KeyFileSigner(tmp / "k.key"), name="mlp", version=1)
    push_bundle(tmp / "bundle", store_for(str(tmp / "store")), name="mlp", version=1, progress=False)
    return {
        "MODELFN_STORE_URL": str(tmp / "store"),
        "MODELFN_MODEL_NAME": "mlp",
        "MODELFN_TRUSTED_KEYS": str(tmp / "k.pub"),
        "MODELFN_THREADS": "1",
        "MODELFN_LOG_LEVEL": "WARNING",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], workers: int, port: int, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    """uvicorn with ``workers`` processes on 127.0.0.1:port, and the seconds until every worker answered ready."""
    t0 = time.perf_counter()
    args = [sys.executable, "-m", "uvicorn", "bench_plan_validate:app", "--factory", "--app-dir", str(ROOT / "bench"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
            "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 120
    ready = 0
    while ready < 4 * workers:  # several ready answers in a row: every worker has loaded
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"server did not start:\n{log.read_text()[-3000:]}")
        try:
            status = request(port, "GET", "/v2/health/ready", b"")[0]
            ready = ready + 1 if status == 200 else 0
        except OSError:
            ready = 0
            time.sleep(0.05)
    return proc, time.perf_counter() - t0


def peak_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    """Largest peak resident set (VmHWM) among the uvicorn worker processes (Linux /proc)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    peaks = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def request(port: int, method: str, path: str, body: bytes, phase: str = "-") -> tuple[int, float, float]:
    """(status, start, end) of one request on a new connection (perf_counter seconds)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"content-type": "application/json", "x-bench-phase": phase}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        response.read()
        status = response.status
    finally:
        conn.close()
    return status, start, time.perf_counter()


def body(batch: int) -> bytes:
    rng = random.Random(1)
    return json.dumps({"inputs": {"x": [[rng.random() for _ in range(BODY_FEATURES)] for _ in range(batch)]}}).encode()


def service_time(port: int, payload: bytes, n: int, records: Path, phase: str) -> tuple[float, float]:
    """Mean (client-side, server-side) duration of ``n`` sequential requests, after 20 warm-up requests."""
    for _ in range(20):
        request(port, "POST", "/predict", payload)
    client = []
    for _ in range(n):
        status, start, end = request(port, "POST", "/predict", payload, phase)
        if status != 200:
            raise SystemExit(f"predict answered {status}")
        client.append(end - start)
    time.sleep(0.2)
    spans = recorded(records, phase)
    return statistics.fmean(client), statistics.fmean(end - start for start, end in spans)


def recorded(records: Path, phase: str) -> list[tuple[float, float]]:
    """The server-side (start, end) of every request of ``phase``, from all workers."""
    out = []
    for path in records.glob("*.txt"):
        for line in path.read_text().splitlines():
            name, start, end = line.split()
            if name == phase:
                out.append((float(start), float(end)))
    return out


def open_loop(port: int, payload: bytes, rate: float, n: int, seed: int, records: Path) -> dict[str, float]:
    """Poisson arrivals at ``rate``/s for ``n`` requests; throughput, mean time in system, mean in flight."""
    rng = random.Random(seed)
    results: list[tuple[int, float, float]] = []
    lock = threading.Lock()
    phase = f"load{seed}"

    def one() -> None:
        outcome = request(port, "POST", "/predict", payload, phase)
        with lock:
            results.append(outcome)

    with ThreadPoolExecutor(max_workers=64) as pool:
        t0 = time.perf_counter()
        at = 0.0
        for _ in range(n):
            at += rng.expovariate(rate)
            delay = t0 + at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one)
    failures = sum(1 for status, _, _ in results if status != 200)
    time.sleep(0.2)  # the last lines reach the record files
    out: dict[str, float] = {"offered_rps": rate, "failures": failures}
    client = [(start, end) for _, start, end in results]
    for side, spans in (("client", client), ("server", recorded(records, phase))):
        span = max(end for _, end in spans) - min(start for start, _ in spans)
        durations = [end - start for start, end in spans]
        out[f"{side}_throughput_rps"] = len(spans) / span
        out[f"{side}_time_in_system_ms"] = statistics.fmean(durations) * 1000
        out[f"{side}_in_flight"] = sum(durations) / span
    return out


def validate(
    workers: int, loads: list[float], requests: int, hidden: int, layers: int, batch: int, sleep_ms: float | None = None
) -> dict[str, Any]:
    """Run the whole check; return the figures."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {"BENCH_SLEEP_MS": str(sleep_ms)} if sleep_ms else publish(tmp, hidden, layers)
        records = tmp / "records"
        records.mkdir()
        env["BENCH_RECORD_DIR"] = str(records)
        port = free_port()
        server, cold_start_s = start_server(env, workers, port, tmp / "uvicorn.log")
        try:
            payload = body(batch)
            rows = []
            for i, load in enumerate(loads):
                # S right before each level: on a shared machine the CPU available drifts between levels.
                s_client, s_server = service_time(port, payload, 100, records, f"sequential{i}")
                rate = load * workers / s_client  # utilization counted with the whole request cost
                measured = open_loop(port, payload, rate, requests, i, records)
                row: dict[str, Any] = {
                    "utilization": load,
                    "client_service_time_ms": s_client * 1000,
                    "server_service_time_ms": s_server * 1000,
                    **measured,
                }
                # Predictions at the arrival rate realized (n / span), so Poisson sampling noise in the
                # rate is not counted as model error; at the offered rate too, for reference.
                arrived = measured["client_throughput_rps"]
                # In service (server side): L = X · S, the Lambda model (every request its own environment).
                row["busy_predicted"] = littles_law(arrived, s_server)
                row["busy_ratio"] = row["busy_predicted"] / measured["server_in_flight"]
                # In the system (client side: queued + in service): L = X · W_MMc(X, S, N), the container model.
                row["system_predicted"] = littles_law(arrived, mmc_time_in_system(arrived, s_client, workers))
                row["system_predicted_at_offered_rate"] = littles_law(rate, mmc_time_in_system(rate, s_client, workers))
                row["system_ratio"] = row["system_predicted"] / measured["client_in_flight"]
                rows.append(row)
            memory_mb = peak_rss_mb(server)
            warm_ms = statistics.fmean(r["client_service_time_ms"] for r in rows)
        finally:
            server.terminate()
            server.wait(30)
    # Flat figures `modelfn plan --bench` reads: spawn to every worker verified and ready, unloaded
    # request duration, worker peak RSS.
    return {
        "cold_start_ms": cold_start_s * 1000,
        "warm_latency_ms": warm_ms,
        "memory_mb": memory_mb,
        "workers": workers,
        "requests_per_load": requests,
        "loads": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loads", default="0.1,0.2,0.3", help="target utilizations λ·S/N")
    parser.add_argument("--requests", type=int, default=2000, help="requests per load level")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sleep-ms", type=float, help="serve a fixed-time stand-in instead of the model")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of bench/results/plan_validate.json")
    args = parser.parse_args()
    result = validate(args.workers, [float(x) for x in args.loads.split(",")], args.requests, args.hidden,
                      args.layers, args.batch, args.sleep_ms)  # fmt: skip
    print(f"N={result['workers']} workers, {result['requests_per_load']} requests per level; cold start"
          f" {result['cold_start_ms']:.0f} ms, warm {result['warm_latency_ms']:.2f} ms,"
          f" peak RSS {result['memory_mb']:.0f} MB")  # fmt: skip
    for row in result["loads"]:
        print(f"  ρ={row['utilization']:.2f}  λ={row['offered_rps']:6.1f}/s  X={row['client_throughput_rps']:6.1f}/s"
              f"  S={row['client_service_time_ms']:.2f} ms  W={row['client_time_in_system_ms']:.2f} ms\n"
              f"    in service: measured {row['server_in_flight']:.3f}  predicted X·S {row['busy_predicted']:.3f}"
              f"  ratio {row['busy_ratio']:.3f}\n"
              f"    in system:  measured {row['client_in_flight']:.3f}  predicted X·W_MMc {row['system_predicted']:.3f}"
              f"  ratio {row['system_ratio']:.3f}", flush=True)  # fmt: skip
    out = args.out or ROOT / "bench" / "results" / "plan_validate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    main()
