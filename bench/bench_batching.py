"""Adaptive batching: requests/s and latency vs concurrency, modelfn serve with batching off and on, beside FastAPI.

An MLP 784-512-512-10 (built here with onnx.helper, random weights) is signed into a local store
and served three ways at once: ``modelfn serve`` (batching off), ``modelfn serve --max-batch-size``
(on) and a FastAPI + uvicorn + onnxruntime app (bench/fastapi_ort_app.py). A client in its own
process holds N keep-alive connections (raw asyncio streams: the lightest client, since it shares
the CPUs with the servers) and sends one-row ``/predict`` bodies. Servers are measured in
alternation, round after round, so each ratio compares numbers from the same minutes.

Usage: python bench/bench_batching.py [--levels 1,8,32,128] [--requests 2000] [--rounds 2]
       [--max-batch-size 32] [--max-batch-delay-ms 5] [--threads N]
Each sample also has the server's CPU time per request (``cpu_ms_per_request``, from /proc): on a
machine shared with other work, requests/s follow the CPU share each server gets, CPU per request
much less so. ``--threads`` sets MODELFN_THREADS (onnxruntime intra-op threads) for both modelfn servers.
``run(concurrency_levels, requests)`` is the same measurement for a suite to call; it returns the
dict this script writes to bench/results/batching.json. Goal (issue 10 item 5): at 32 clients,
batching on ≥ 2x the requests/s of batching off, p99 ≤ max delay + one batched run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get("MODELFN_BENCH_RESULTS", BENCH / "results"))
LAYERS = (784, 512, 512, 10)
SERVERS = ("modelfn-off", "modelfn-on", "fastapi-ort")


def build_mlp(path: Path, layers: Sequence[int] = LAYERS) -> None:
    """An MLP (Gemm + Relu; 784-512-512-10 by default), dynamic batch axis ``N``, random weights (seed 0)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "input"
    last = len(layers) - 2
    for i, (n_in, n_out) in enumerate(zip(layers, layers[1:], strict=False)):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(np.zeros(n_out, np.float32), f"B{i}")]
        gemm = "output" if i == last else f"g{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"B{i}"], [gemm]))
        if i != last:
            nodes.append(helper.make_node("Relu", [gemm], [f"h{i}"]))
            prev = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", layers[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", layers[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())


def publish(workdir: Path, layers: Sequence[int] = LAYERS) -> tuple[Path, dict[str, str]]:
    """Build, package, sign and push the MLP; the ONNX path and the MODELFN_* env that serves it."""
    from modelfn.packaging import package
    from modelfn.repository.transfer import push_bundle
    from modelfn.signing.keys import write_keypair
    from modelfn.signing.sign import KeyFileSigner, sign_bundle
    from modelfn.store.registry import store_for

    onnx_path, store, bundle = workdir / "mlp.onnx", workdir / "store", workdir / "bundle"
    build_mlp(onnx_path, layers)
    write_keypair(workdir / "k.key", workdir / "k.pub")
    package(onnx_path, None, bundle, name="mlp", version=1)
    sign_bundle(bundle, KeyFileSigner(workdir / "k.key"), name="mlp", version=1)
    push_bundle(bundle, store_for(str(store)), name="mlp", version=1, progress=False)
    env = {"MODELFN_STORE_URL": str(store), "MODELFN_MODEL_NAME": "mlp", "MODELFN_TRUSTED_KEYS": str(workdir / "k.pub")}
    return onnx_path, env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _server(args: list[str], env: dict[str, str], body: bytes, log: Path) -> Iterator[tuple[int, int]]:
    """Start one server on a free port, wait until it answers /predict, yield its port and pid, stop it."""
    import httpx

    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*args, "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args} did not come up; see {log}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.post(f"http://127.0.0.1:{port}/predict", content=body, timeout=5).status_code == 200:
                        break
                time.sleep(0.05)
            yield port, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def _client(port: int, body: bytes, concurrency: int, requests: int) -> dict[str, Any]:
    """``concurrency`` keep-alive connections sending ``requests`` POSTs in all; per-request latencies."""
    head = (
        f"POST /predict HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    message = head + body
    left = [requests]
    latencies: list[float] = []
    errors = [0]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                t0 = time.perf_counter()
                writer.write(message)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if b" 200 " not in status_line:
                    errors[0] += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(ordered[len(ordered) // 2] * 1e3, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3, 3),
    }


def _measure(port: int, body_file: Path, concurrency: int, requests: int, pid: int | None = None) -> dict[str, Any]:
    """The client in its own process (it must not share the server's interpreter or GIL); with ``pid``, the
    server's CPU milliseconds per request too."""
    args = [sys.executable, __file__, "--client", str(port), str(body_file), str(concurrency), str(requests)]
    before = _cpu_s(pid)
    done = subprocess.run(args, check=True, capture_output=True, text=True)
    after = _cpu_s(pid)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if before is not None and after is not None:
        result["cpu_ms_per_request"] = round((after - before) * 1e3 / max(1, result["requests"]), 4)
    return result


def _cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process, all its threads (Linux /proc); None elsewhere."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loadavg() -> str | None:
    """The 1, 5 and 15 minute load averages (how shared the machine was), where /proc has them."""
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return None


def _scrape(port: int) -> dict[str, float]:
    """The batching series from the server's /metrics: ``name{labels}`` -> value."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines())
        if name.startswith("InferenceBatch")
    }


def _batch_stats(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Between two scrapes: mean requests per run, and the p99 queue wait (as its histogram bucket's bound)."""
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    runs = delta.get("InferenceBatchSize_count", 0.0)
    waits = delta.get("InferenceBatchWait_count", 0.0)
    bounds = sorted(
        (float(key.split('le="')[1].split('"')[0]), value)
        for key, value in delta.items()
        if key.startswith("InferenceBatchWait_bucket")
    )
    p99 = next((bound for bound, count in bounds if waits and count >= 0.99 * waits), float("inf"))
    return {
        "runs": runs,
        "mean_requests_per_run": round(delta.get("InferenceBatchSize_sum", 0.0) / runs, 2) if runs else 0.0,
        "queue_wait_p99_ms_at_most": p99,
    }


def run(
    concurrency_levels: Sequence[int] = (1, 8, 32, 128),
    requests: int = 2000,
    *,
    rounds: int = 2,
    max_batch_size: int = 32,
    max_batch_delay_ms: float = 5.0,
    layers: Sequence[int] = LAYERS,
    threads: int | None = None,
) -> dict[str, Any]:
    """Requests/s, p50 and p99 per server and concurrency (median of ``rounds`` alternated runs), and the ratios."""
    body = json.dumps({"instances": [np.random.default_rng(1).standard_normal(layers[0]).round(5).tolist()]}).encode()
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        onnx_path, env = publish(work, layers)
        if threads is not None:
            env["MODELFN_THREADS"] = str(threads)
        load_before = _loadavg()
        body_file = work / "body.json"
        body_file.write_bytes(body)
        serve = [sys.executable, "-m", "modelfn.cli", "serve"]
        batching = ["--max-batch-size", str(max_batch_size), "--max-batch-delay-ms", str(max_batch_delay_ms)]
        uvicorn = [
            sys.executable,
            "-m",
            "uvicorn",
            "fastapi_ort_app:app",
            "--app-dir",
            str(BENCH),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        specs = {
            "modelfn-off": (serve, env),
            "modelfn-on": ([*serve, *batching], env),
            "fastapi-ort": (uvicorn, {"BENCH_ONNX": str(onnx_path)}),
        }
        servers = {
            name: stack.enter_context(_server(args, e, body, work / f"{name}.log")) for name, (args, e) in specs.items()
        }
        ports = {name: port for name, (port, _) in servers.items()}
        batches: dict[int, list[dict[str, float]]] = {c: [] for c in concurrency_levels}
        samples: dict[str, dict[int, list[dict[str, Any]]]] = {
            name: {c: [] for c in concurrency_levels} for name in ports
        }
        for _ in range(rounds):
            for concurrency in concurrency_levels:
                n = max(requests, 4 * concurrency)
                for name, port in ports.items():  # alternate: one run of each server, then the next level
                    _measure(port, body_file, concurrency, min(200, n))  # warm the connections' path
                    before = _scrape(ports["modelfn-on"])
                    samples[name][concurrency].append(_measure(port, body_file, concurrency, n, servers[name][1]))
                    if name == "modelfn-on":
                        batches[concurrency].append(_batch_stats(before, _scrape(port)))
    table = {name: {str(c): _median(runs) for c, runs in per_level.items()} for name, per_level in samples.items()}
    ratios = {
        str(c): {
            "on_over_off_rps": round(table["modelfn-on"][str(c)]["rps"] / table["modelfn-off"][str(c)]["rps"], 2),
            "on_over_off_rps_per_round": [
                round(on["rps"] / off["rps"], 2)
                for on, off in zip(samples["modelfn-on"][c], samples["modelfn-off"][c], strict=True)
            ],
            "on_over_fastapi_rps": round(table["modelfn-on"][str(c)]["rps"] / table["fastapi-ort"][str(c)]["rps"], 2),
            "off_over_fastapi_rps": round(table["modelfn-off"][str(c)]["rps"] / table["fastapi-ort"][str(c)]["rps"], 2),
            "off_over_on_cpu_per_request": _ratio(table["modelfn-off"][str(c)], table["modelfn-on"][str(c)]),
        }
        for c in concurrency_levels
    }
    return {
        "model": f"MLP {'-'.join(map(str, layers))}, one row per request, POST /predict JSON",
        "settings": {"max_batch_size": max_batch_size, "max_batch_delay_ms": max_batch_delay_ms, "threads": threads},
        "requests_per_run": requests,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "loadavg": {"before": load_before, "after": _loadavg()},
        "results": table,
        "ratios": ratios,
        "batching_on_server": {str(c): _median(runs) for c, runs in batches.items()},
        "goal": "32 clients: on/off rps >= 2; p99 <= max delay + one batched run",
    }


def _ratio(off: dict[str, Any], on: dict[str, Any]) -> float | None:
    """Server CPU per request, off ÷ on (how much less CPU a request costs with batching), where measured."""
    if "cpu_ms_per_request" not in off or not on.get("cpu_ms_per_request"):
        return None
    return round(float(off["cpu_ms_per_request"]) / float(on["cpu_ms_per_request"]), 2)


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over the rounds (errors: their total)."""
    return {
        key: sum(r[key] for r in runs) if key == "errors" else round(statistics.median(r[key] for r in runs), 3)
        for key in runs[0]
        if key != "requests"
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        port, body_file, concurrency, requests = sys.argv[2:6]
        result = asyncio.run(_client(int(port), Path(body_file).read_bytes(), int(concurrency), int(requests)))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,8,32,128")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-batch-delay-ms", type=float, default=5.0)
    parser.add_argument("--layers", default=",".join(map(str, LAYERS)), help="MLP widths, input first")
    parser.add_argument("--threads", type=int, default=None, help="MODELFN_THREADS for the modelfn servers")
    parser.add_argument("--out", default="batching")
    opts = parser.parse_args()
    levels = [int(c) for c in opts.levels.split(",")]
    result = run(
        levels,
        opts.requests,
        rounds=opts.rounds,
        max_batch_size=opts.max_batch_size,
        max_batch_delay_ms=opts.max_batch_delay_ms,
        layers=[int(n) for n in opts.layers.split(",")],
        threads=opts.threads,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{opts.out}.json"
    path.write_text(json.dumps(result, indent=2))
    for c in levels:
        cells = {name: result["results"][name][str(c)] for name in SERVERS}
        row = [
            f"{name} {cell['rps']:>8.1f} rps p99 {cell['p99_ms']:>7.2f} ms cpu {cell.get('cpu_ms_per_request')} ms/req"
            for name, cell in cells.items()
        ]
        ratio = result["ratios"][str(c)]
        print(f"c={c:<4}", " | ".join(row), f"| on/off {ratio['on_over_off_rps']} {ratio['on_over_off_rps_per_round']}")
    for c in levels:
        print(f"c={c:<4} batching on: {result['batching_on_server'][str(c)]}")
    print("load average before/after:", result["loadavg"], "| wrote", path)


if __name__ == "__main__":
    main()
