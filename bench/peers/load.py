"""Measure one server: spawn → first good answer (cold), sequential keep-alive latency, throughput under load.

Cold start = from ``Popen`` until the first 200 whose body passes the server's check (polling every
20 ms). Warm = ``n`` sequential POSTs on one keep-alive httpx client after 20 warm-up requests
(p50/p99 and a 200-point quantile sketch for the CDF charts). Throughput = ``c`` aiohttp clients, each
with its own keep-alive connection, sending back to back for ``seconds`` after a short warm-up:
answers/s, p50/p99, errors. The load generator shares the machine's cores with the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from peers.servers import Server

CONCURRENCY = (1, 8, 32, 128)
HEADERS = {"content-type": "application/json"}


def summary_ms(samples_s: list[float]) -> dict[str, Any]:
    ordered = sorted(s * 1e3 for s in samples_s)
    if not ordered:
        return {"n": 0}
    quantiles = [ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1) / 199))] for q in range(200)]
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 4),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 4),
        "mean_ms": round(statistics.fmean(ordered), 4),
        "quantiles_ms": [round(q, 4) for q in quantiles],
    }


def _start(server: Server, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(server.cmd, cwd=server.cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def measure(
    server: Server, log: Path, n: int = 0, seconds: float = 0.0, levels: tuple[int, ...] = CONCURRENCY,
    cold_timeout_s: float = 120.0,
) -> dict[str, Any]:  # fmt: skip
    """Start ``server``, time its cold start; with ``n``/``seconds`` also warm latency and throughput; stop it."""
    import httpx

    headers = {"content-type": "application/json"}
    t0 = time.perf_counter()
    proc = _start(server, log)
    out: dict[str, Any] = {"cmd": " ".join(server.cmd), "versions": server.versions}
    try:
        with httpx.Client(timeout=10.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{server.name} exited with {proc.returncode} before answering (log: {log})")
                if time.perf_counter() - t0 > cold_timeout_s:
                    raise RuntimeError(f"{server.name} gave no good answer within {cold_timeout_s:.0f} s (log: {log})")
                try:
                    response = client.post(server.url, content=server.body, headers=headers, timeout=5.0)
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 200:
                    out["cold_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
                    if not server.check(response.json()):
                        raise RuntimeError(f"{server.name} answered wrongly: {response.text[:200]}")
                    break
                time.sleep(0.02)
            if n:
                for _ in range(20):
                    client.post(server.url, content=server.body, headers=headers)
                samples = []
                for _ in range(n):
                    start = time.perf_counter()
                    response = client.post(server.url, content=server.body, headers=headers)
                    samples.append(time.perf_counter() - start)
                    if response.status_code != 200:
                        raise RuntimeError(f"{server.name}: {response.status_code} {response.text[:200]}")
                out["warm"] = summary_ms(samples)
        if seconds:
            out["throughput"] = {str(c): asyncio.run(_load(server, c, seconds)) for c in levels}
    finally:
        _stop(proc)
    return out


async def _load(server: Server, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` closed-loop clients on their own keep-alive connections for ``seconds`` (after 0.5 s warm-up)."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    recording = False
    stop_at = 0.0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while True:
            start = time.perf_counter()
            if recording and start >= stop_at:
                return
            try:
                async with session.post(
                    server.url, data=server.body, headers={"content-type": "application/json"}
                ) as r:
                    await r.read()
                    ok = r.status == 200
            except aiohttp.ClientError:
                ok = False
            if recording:
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        await asyncio.sleep(0.5)
        recording, begin = True, time.perf_counter()
        stop_at = begin + seconds
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    stats = summary_ms(latencies)
    stats.pop("quantiles_ms", None)
    return {"clients": clients, "requests_per_s": round(len(latencies) / elapsed, 1), "errors": errors, **stats}
