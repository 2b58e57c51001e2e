"""Head to head: each seed system on its own model beside `modelfn serve` on the same model.

    python bench/seed_systems/run.py [--quick] [--only sys[,sys]] [--reuse-site]

Cold = wall time from spawning the server to its first HTTP 200 prediction (POST every 10 ms);
warm = p50/p99 of sequential keep-alive POSTs (httpx.Client) after 50 unmeasured ones. The system
and modelfn alternate run by run, ``--rounds`` rounds (2; ``--quick``: 1 round, 1 cold run, 100
warm requests). Writes bench/results/seed_systems.json and .md. The first run creates the
environments (bench/.venvs/) and builds the models (bench/results/seed_systems/); later runs reuse them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import envs
from systems import APPS, PAYLOADS, SYSTEMS, WORK, System, build_model, modelfn_payload, publish

RESULTS = Path(os.environ.get("MODELFN_BENCH_RESULTS", Path(__file__).resolve().parents[1] / "results"))
REFERENCE_FASTAPI = "fastapi_uvloop"
"""FastAPI + onnxruntime on uvicorn with uvloop + httptools, serving the RF's ONNX (modelfn's warm-path yardstick)."""


def free_ports(n: int) -> list[int]:
    """``n`` free loopback ports below 32768 (MMS's frontend rejects higher ones as "Invalid port number")."""
    import random

    ports: list[int] = []
    while len(ports) < n:
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def _session_pids(sid: int) -> list[int]:
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getsid(int(p)) == sid and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(p))
            except (OSError, IndexError):
                pass
    return pids


def session_cpu_ms(sid: int) -> float:
    """CPU time (user + system, reaped children included) spent so far by every process of a server's session.

    On a loaded machine wall-clock cold starts swing with the neighbours; the CPU a server burns
    before its first answer does much less, so the report carries both.
    """
    ticks = 0
    for pid in _session_pids(sid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks * 1e3 / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM the server's session, then SIGKILL what is left of it (by pid) after ``timeout``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    end = time.monotonic() + timeout
    while time.monotonic() < end and _session_pids(proc.pid):
        proc.poll()
        time.sleep(0.05)
    for pid in _session_pids(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(5)


class Side:
    """One server under test: its start command, its URL and request body."""

    def __init__(self, label: str, cmd: str, path: str, body: bytes, n_ports: int, warm_n: int) -> None:
        self.label, self.cmd_of, self.path, self.body = label, cmd, path, body
        self.n_ports, self.warm_n = n_ports, warm_n
        self.cold_ms: list[float] = []
        self.cold_cpu_ms: list[float] = []
        self.warm: list[float] = []
        self.first: str = ""

    def run_once(self, *, warm_n: int, timeout: float) -> None:
        """Spawn, time the first 200, optionally time ``warm_n`` warm requests, stop."""
        import httpx

        ports = free_ports(self.n_ports)
        cmd = self.cmd_of.replace("{port}", str(ports[0])) if isinstance(self.cmd_of, str) else self.cmd_of(ports)
        url = f"http://127.0.0.1:{ports[0]}{self.path}"
        headers = {"content-type": "application/json"}
        log = (WORK / "logs" / f"{self.label}.log").open("ab")
        with httpx.Client(timeout=5.0) as client:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, shell=True, cwd=WORK, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
            try:
                last = ""
                while True:
                    try:
                        resp = client.post(url, content=self.body, headers=headers)
                        if resp.status_code == 200:
                            self.cold_ms.append((time.perf_counter() - t0) * 1e3)
                            self.cold_cpu_ms.append(session_cpu_ms(proc.pid))
                            self.first = resp.text[:300]
                            break
                        last = f"HTTP {resp.status_code} {resp.text[:200]}"
                    except httpx.HTTPError as exc:
                        last = repr(exc)[:200]
                    if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                        raise RuntimeError(f"{self.label}: no 200 ({last}); see {log.name}")
                    time.sleep(0.01)
                if warm_n:
                    for _ in range(50):
                        client.post(url, content=self.body, headers=headers).raise_for_status()
                    for _ in range(warm_n):
                        t = time.perf_counter()
                        resp = client.post(url, content=self.body, headers=headers)
                        self.warm.append((time.perf_counter() - t) * 1e3)
                        resp.raise_for_status()
            finally:
                stop(proc)
                log.close()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cold_ms": [round(c, 1) for c in self.cold_ms], "first_response": self.first}
        if self.cold_ms:
            out["cold_median_ms"] = round(statistics.median(self.cold_ms), 1)
            out["cold_cpu_ms"] = [round(c, 1) for c in self.cold_cpu_ms]
            out["cold_cpu_median_ms"] = round(statistics.median(self.cold_cpu_ms), 1)
        if self.warm:
            q = statistics.quantiles(self.warm, n=100, method="inclusive")
            out.update(warm_n=len(self.warm), warm_p50_ms=round(statistics.median(self.warm), 3),
                       warm_p99_ms=round(q[98], 3))  # fmt: skip
        return out


def modelfn_side(label: str, system_model: str, body: bytes, warm_n: int) -> Side:
    serve = publish(system_model)
    cli = f"{sys.executable} -c 'from modelfn._entry import main; main()'"
    cmd = (f"exec {cli} serve --store {serve['store']} --model {serve['model']} --trust {serve['trust']}"
           " --host 127.0.0.1 --port {port}")  # fmt: skip
    return Side(label, cmd, "/predict", body, 1, warm_n)


def compare(system: System, *, rounds: int, cold_per_round: int, warm_n: int | None, timeout: float) -> dict[str, Any]:
    """Alternate system and modelfn: cold runs one by one, then each side's warm run, ``rounds`` times."""
    envs.ensure(system.env)
    build_model(system.model, system.env)
    if system.prepare:
        system.prepare()
    n = warm_n if warm_n is not None else system.warm_n
    sides = [Side(system.name, system.cmd, system.path, (PAYLOADS / f"{system.payload}.json").read_bytes(),
                  system.n_ports, n),
             modelfn_side(f"modelfn-{system.name}", system.model, modelfn_payload(system), n)]  # fmt: skip
    for _ in range(rounds):
        for k in range(cold_per_round):
            for side in sides:  # the last cold run of each side in a round carries its warm run
                side.run_once(warm_n=n if k == cold_per_round - 1 else 0, timeout=timeout)
                print(f"  {side.label}: cold {side.cold_ms[-1]:.0f} ms", file=sys.stderr, flush=True)
    sys_s, mf_s = (s.summary() for s in sides)
    return {"system": sys_s, "modelfn": mf_s, "ratios": ratios(sys_s, mf_s)}


def ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """a ÷ b for cold median and warm p50/p99 (how many times faster ``b`` is)."""
    out = {}
    for key in ("cold_median_ms", "cold_cpu_median_ms", "warm_p50_ms", "warm_p99_ms"):
        if key in a and key in b and b[key]:
            out[key.removesuffix("_ms").replace("_median", "")] = round(a[key] / b[key], 2)
    return out


def fastapi_reference(*, rounds: int, cold_per_round: int, warm_n: int, timeout: float) -> dict[str, Any]:
    """modelfn vs FastAPI+onnxruntime on uvicorn (uvloop + httptools), both serving the RF's ONNX."""
    serve = publish("sk")
    onnx = WORK / "store" / serve["model"] / "1" / "model.onnx"
    cmd = (
        f"MODEL={onnx} OUT_INDEX=1 exec {sys.executable} -m uvicorn --app-dir {APPS} onnx_app:app"
        " --host 127.0.0.1 --port {port} --workers 1 --loop uvloop --http httptools --log-level warning"
    )
    rf = SYSTEMS["sk_flask"]
    sides = [Side(REFERENCE_FASTAPI, cmd, "/predict", (PAYLOADS / "rf.json").read_bytes(), 1, warm_n),
             modelfn_side("modelfn-rf", "sk", modelfn_payload(rf), warm_n)]  # fmt: skip
    for _ in range(rounds):
        for k in range(cold_per_round):
            for side in sides:
                side.run_once(warm_n=warm_n if k == cold_per_round - 1 else 0, timeout=timeout)
                print(f"  {side.label}: cold {side.cold_ms[-1]:.0f} ms", file=sys.stderr, flush=True)
    ref, mf = (s.summary() for s in sides)
    return {"system": ref, "modelfn": mf, "ratios": ratios(ref, mf)}


def _in_netns(name: str, argv: list[str]) -> dict[str, Any]:
    """Run this script for one system inside a private network namespace (only loopback) and read its result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "part.json"
        inner = " ".join([sys.executable, str(Path(__file__).resolve()), *argv, "--only", name, "--part", str(out)])
        subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner}"], check=True)
        result: dict[str, Any] = json.loads(out.read_text())[name]
        return result


def table(results: dict[str, Any]) -> str:
    """Markdown: per system its cold and warm figures beside modelfn's, and system ÷ modelfn."""
    lines = [
        "| system | cold ms, median (runs) | modelfn cold ms, median (runs) | cold ÷ modelfn | cold CPU ms: system / "
        "modelfn (÷) | warm p50 / p99 ms | modelfn p50 / p99 ms | warm p50 ÷ modelfn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        s, m, q = r["system"], r["modelfn"], r["ratios"]
        lines.append(
            f"| {name} | {s.get('cold_median_ms')} ({', '.join(map(str, s['cold_ms']))}) | {m.get('cold_median_ms')}"
            f" ({', '.join(map(str, m['cold_ms']))}) | **{q.get('cold')}×** | {s.get('cold_cpu_median_ms')} /"
            f" {m.get('cold_cpu_median_ms')} ({q.get('cold_cpu')}×) | {s.get('warm_p50_ms')} / {s.get('warm_p99_ms')}"
            f" | {m.get('warm_p50_ms')} / {m.get('warm_p99_ms')} | **{q.get('warm_p50')}×** |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, 1 cold run per side, 100 warm requests")
    ap.add_argument("--only", default="", help=f"comma-separated: {', '.join([*SYSTEMS, REFERENCE_FASTAPI])}")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cold", type=int, default=2, help="cold runs per side per round")
    ap.add_argument("--reuse-site", action="store_true", help="new environments read this one's site-packages")
    ap.add_argument("--timeout", type=float, default=240, help="seconds to the first 200 before a run fails")
    ap.add_argument("--part", help=argparse.SUPPRESS)  # inside the network namespace: write one result here
    a = ap.parse_args()
    rounds, cold, warm_n = (1, 1, 100) if a.quick else (a.rounds, a.cold, None)
    names = [n for n in a.only.split(",") if n] or [*SYSTEMS, REFERENCE_FASTAPI]
    unknown = sorted(set(names) - {*SYSTEMS, REFERENCE_FASTAPI})
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown}; choose from {[*SYSTEMS, REFERENCE_FASTAPI]}")
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    for name in names:  # environments first (pip is noisy and slow; keep it out of the timed part)
        if name in SYSTEMS:
            envs.ensure(SYSTEMS[name].env, reuse_site=a.reuse_site, log=WORK / "logs" / "pip.log")
    results: dict[str, Any] = {}
    argv = ["--rounds", str(a.rounds), "--cold", str(a.cold), "--timeout", str(a.timeout), *(["--quick"] * a.quick)]
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        if name == REFERENCE_FASTAPI:
            results[name] = fastapi_reference(rounds=rounds, cold_per_round=cold, warm_n=warm_n or 500,
                                              timeout=a.timeout)  # fmt: skip
        elif SYSTEMS[name].netns and not a.part:
            results[name] = _in_netns(name, argv)
        else:
            results[name] = compare(SYSTEMS[name], rounds=rounds, cold_per_round=cold, warm_n=warm_n,
                                    timeout=a.timeout)  # fmt: skip
    if a.part:
        Path(a.part).write_text(json.dumps(results))
        return
    report = {
        "what": "system ÷ modelfn, same model; cold = spawn -> first 200, warm = sequential keep-alive",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "rounds": rounds, "cold_runs_per_round": cold, "systems": results,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "seed_systems.json").write_text(json.dumps(report, indent=1))
    (RESULTS / "seed_systems.md").write_text(table(results))
    print(table(results))


if __name__ == "__main__":
    main()
