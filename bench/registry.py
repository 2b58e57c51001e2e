"""Every benchmark run_all.py knows: its script, arguments, result file, and the measures read from that file.

A benchmark is a script runnable as ``python bench/<script> [args]`` that writes JSON under
bench/results/. ``measures`` turns that JSON into table rows: modelfn's figure, the figure it is
compared with (floor, raw onnxruntime, a peer, a limit), the ratio modelfn ÷ reference and the goal
from issue #10. A script whose JSON has a top-level ``"report"`` list of rows (``measure``,
``modelfn``, ``reference``, ``unit``, optional ``max_ratio``/``min_ratio``/``max_delta``/``goal``) is
read from that list, so a new benchmark needs no reader here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rows import Row, generic_rows, row

Reader = Callable[[dict[str, Any]], list[Row]]


@dataclass(frozen=True)
class Bench:
    """One benchmark: ``python bench/<script> *args`` (``quick`` for --quick) writes results/<result>."""

    name: str
    script: str
    result: str
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ("--quick",)
    models: tuple[str, ...] = ()
    timeout_s: int = 1800
    reader: Reader = generic_rows
    reference_flag: bool = False  # passes --check-against-reference through
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def coldstart(data: dict[str, Any]) -> list[Row]:
    out = []
    for name, m in data.get("models", {}).items():
        out.append(row(f"cold start {name}: Lambda handler ÷ floor (spawn → first verified prediction)",
                       m["modelfn_ms_p50"], m["floor_ms_p50"], "ms", max_ratio=1.1))  # fmt: skip
        if "reference_floor_ms_p50" in m:
            out.append(row(f"floor {name}: bench/floor.py ÷ reference floor script", m["floor_ms_p50"],
                           m["reference_floor_ms_p50"], "ms"))  # fmt: skip
    return out


def handler(data: dict[str, Any]) -> list[Row]:
    out = []
    for name, m in data.items():
        if not isinstance(m, dict) or "raw_session_run" not in m:
            continue
        raw, lam = m["raw_session_run"]["p50_ms"], m["lambda_handler"]["p50_ms"]
        goal = {"max_delta": 0.1} if name == "mlp" else {}
        out.append(row(f"warm Lambda path {name}, batch 1, JSON (p50) vs raw session.run", lam, raw, "ms", **goal))
        out.append(row(f"warm {name}: EMF metrics + JSON logs on vs off (p50)", m["lambda_handler_emf_logs"]["p50_ms"],
                       lam, "ms"))  # fmt: skip
        out.append(
            row(f"warm {name}: Prometheus mirror on vs off (p50)", m["asgi_app_prometheus"]["p50_ms"], lam, "ms")
        )
    return out


def imports(data: dict[str, Any]) -> list[Row]:
    ms = data.get("imports_ms", {})
    floor = next((v for k, v in ms.items() if k.startswith("floor:")), None)
    ours = ms.get("modelfn.handlers.http (no model)")
    return [row("import modelfn.handlers.http ÷ import onnxruntime+numpy+boto3", ours, floor, "ms")]


def lambda_package(data: dict[str, Any]) -> list[Row]:
    out = []
    for runtime, m in data.items():
        arch = m.get("arch", "")
        out.append(row(f"Lambda zip {runtime} {arch}, unzipped ÷ Lambda's 250 MB limit", m["unzipped_mb"], 250, "MB",
                       max_ratio=1.0))  # fmt: skip
        out.append(row(f"Lambda zip {runtime} {arch}, zipped ÷ 50 MB direct-upload limit", m["zipped_mb"], 50, "MB",
                       max_ratio=1.0))  # fmt: skip
    return out


def latest_versions(data: dict[str, Any]) -> list[Row]:
    counts = data.get("counts", {})
    if len(counts) < 2:
        return []
    low, high = min(counts, key=int), max(counts, key=int)
    a, b = counts[high], counts[low]
    key = "hinted" if "hinted_ms_p50" in a else "directories"  # results written before the hints existed
    out = [
        row(f"resolve latest: LIST requests at {high} ÷ at {low} versions", a[f"{key}_list_requests"],
            b[f"{key}_list_requests"], "requests", max_ratio=1.0),
        row(f"resolve latest: time at {high} ÷ at {low} versions (flat: issue #10 item 4)", a[f"{key}_ms_p50"],
            b[f"{key}_ms_p50"], "ms", max_ratio=1.2),
    ]  # fmt: skip
    if key == "hinted":
        out.append(row(f"resolve latest at {high} versions: hints ÷ directory listing (the fallback)",
                       a["hinted_ms_p50"], a["directories_ms_p50"], "ms"))  # fmt: skip
        rtt = data.get("rtt", {})
        if str(high) in rtt and str(low) in rtt:
            slow_high, slow_low = rtt[str(high)]["hinted_ms_p50"], rtt[str(low)]["hinted_ms_p50"]
            label = f"resolve latest with {rtt.get('rtt_ms')} ms per request: time at {high} ÷ at {low} versions"
            out.append(row(label, slow_high, slow_low, "ms", max_ratio=1.2))
    out.append(row(f"resolve latest at {high} versions: directory listing ÷ full listing", a["directories_ms_p50"],
                   a["full_listing_ms_p50"], "ms"))  # fmt: skip
    return out


def batch(data: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for name, m in data.get("models", {}).items():
        if "handwritten_rows_per_s" in m:
            out.append(row(f"batch {name}: storage-event handler ÷ hand-written S3 + numpy CSV job (rows/s)",
                           m["handler_rows_per_s"], m["handwritten_rows_per_s"], "rows/s", min_ratio=0.8))  # fmt: skip
        out.append(row(f"batch {name}: storage-event handler ÷ onnxruntime on an in-memory array (rows/s)",
                       m["handler_rows_per_s"], m["raw_ort_rows_per_s"], "rows/s"))  # fmt: skip
    return out


def peers(data: dict[str, Any]) -> list[Row]:
    servers = data.get("servers", {})
    out: list[Row] = []
    for name, ours in servers.items():
        if not name.startswith("modelfn-"):
            continue
        model = name.removeprefix("modelfn-")
        for peer_name, peer in servers.items():
            if peer_name.startswith("modelfn-") or not peer_name.endswith(f"-{model}"):
                continue
            peer_label = peer_name.removesuffix(f"-{model}")
            if "error" in peer or "error" in ours:
                out.append(Row(f"serve {model}: modelfn vs {peer_label}", note=(peer.get("error") or ours["error"])))
                continue
            out.append(row(f"serve {model} cold start: modelfn ÷ {peer_label}", ours["cold_ms_p50"],
                           peer["cold_ms_p50"], "ms"))  # fmt: skip
            warm_goal = {"max_ratio": 1.0} if peer_label == "fastapi" else {}
            out.append(row(f"serve {model} warm p50: modelfn ÷ {peer_label}", ours["warm"]["p50_ms"],
                           peer["warm"]["p50_ms"], "ms", **warm_goal))  # fmt: skip
            for clients in ("32",):
                a, b = ours.get("throughput", {}).get(clients), peer.get("throughput", {}).get(clients)
                if a and b:
                    out.append(row(f"serve {model} at {clients} clients: modelfn ÷ {peer_label} (requests/s)",
                                   a["requests_per_s"], b["requests_per_s"], "req/s"))  # fmt: skip
    return out


def large_tensors(data: dict[str, Any]) -> list[Row]:
    out = []
    for name, m in data.items():
        if not isinstance(m, dict) or "raw_session_run_p50_ms" not in m:
            continue
        raw, pct = m["raw_session_run_p50_ms"], m.get("goal_overhead_pct")
        for key, label in (("octet_stream", "octet-stream"), ("v2_binary", "V2 binary"), ("npy", ".npy"),
                           ("json", "JSON")):  # fmt: skip
            v = m.get(f"lambda_{key}")
            if v:
                goal = {"max_ratio": 1 + pct / 100} if pct is not None and key != "json" else {}
                out.append(row(f"{name} batch 1, Lambda path, {label} body ÷ raw session.run", v["p50_ms"], raw, "ms",
                               **goal))  # fmt: skip
        for key, label in (("octet_stream", "octet-stream"), ("v2_binary", "V2 binary"), ("npy", ".npy")):
            v = m.get(f"dispatch_{key}")
            if v:
                out.append(row(f"{name} batch 1, router alone, {label} body ÷ raw session.run", v["p50_ms"], raw, "ms"))
        for key, label in (("json", "/predict"), ("json_v2", "V2 infer")):
            j = m.get(key)
            if j:
                out.append(row(f"{name}: time the {label} JSON router adds ÷ orjson.loads of the same body",
                               j["router_added_ms"], j["orjson_loads_p50_ms"], "ms", max_ratio=1.3))  # fmt: skip
    return out


def batching(data: dict[str, Any]) -> list[Row]:
    table = data.get("results", {})
    on, off, fastapi = table.get("modelfn-on", {}), table.get("modelfn-off", {}), table.get("fastapi-ort", {})
    level = "32" if "32" in on else max(on, key=int, default=None)
    if level is None:
        return []
    a, b, f = on[level], off.get(level, {}), fastapi.get(level, {})
    return [
        row(f"adaptive batching at {level} clients: on ÷ off (requests/s)", a.get("rps"), b.get("rps"), "req/s",
            min_ratio=2.0),
        row(f"adaptive batching at {level} clients: p99 on ÷ off", a.get("p99_ms"), b.get("p99_ms"), "ms"),
        row(f"batching on at {level} clients ÷ FastAPI+onnxruntime (requests/s)", a.get("rps"), f.get("rps"), "req/s"),
    ]  # fmt: skip


def seed_systems(data: dict[str, Any]) -> list[Row]:
    out = []
    for name, m in data.get("systems", {}).items():
        system, ours = m.get("system", {}), m.get("modelfn", {})
        if name.startswith("fastapi"):
            out.append(row(f"seed: modelfn serve ÷ {name}, warm p50 (RF)", ours.get("warm_p50_ms"),
                           system.get("warm_p50_ms"), "ms", max_ratio=1.0))  # fmt: skip
            continue
        out.append(row(f"seed: modelfn ÷ {name}, cold start", ours.get("cold_median_ms"), system.get("cold_median_ms"),
                       "ms", max_ratio=0.25))  # fmt: skip
        out.append(row(f"seed: modelfn ÷ {name}, warm p50", ours.get("warm_p50_ms"), system.get("warm_p50_ms"), "ms",
                       max_ratio=0.5))  # fmt: skip
    return out


BENCHES: tuple[Bench, ...] = (
    Bench("coldstart", "bench_coldstart.py", "coldstart.json", ("--runs", "7"), ("--runs", "2", "--models", "rf"),
          models=("rf", "mlp", "cnn"), reader=coldstart, reference_flag=True),
    Bench("handler", "bench_handler.py", "handler.json", (), ("--models", "mlp", "--budget", "0.5"),
          models=("mlp", "cnn"), reader=handler),
    Bench("imports", "bench_imports.py", "imports.json", ("--runs", "9"), ("--runs", "1"), reader=imports),
    Bench("lambda_package", "bench_lambda_package.py", "lambda_package_x86_64.json", (),
          ("--python", "3.12", "--runs", "1"), reader=lambda_package),
    Bench("latest_versions", "bench_latest_versions.py", "latest_versions.json", (),
          ("--counts", "1,10", "--runs", "2"), reader=latest_versions),
    Bench("batch", "bench_batch.py", "bench_batch.json", (),
          ("--rf-rows", "20000", "--mlp-rows", "1000", "--chunk", "5000", "--runs", "1", "--skip-rss"),
          models=("rf", "mlp"), reader=batch),
    Bench("peers", "bench_peers.py", "peers.json", (), ("--quick",), models=("rf", "mlp"), reader=peers),
    Bench("large_tensors", "bench_large_tensors.py", "large_tensors.json", (), ("--rounds", "1", "--iters", "3"),
          reader=large_tensors),
    Bench("batching", "bench_batching.py", "batching.json", (), ("--levels", "1,32", "--requests", "300", "--rounds",
          "1"), reader=batching),
    Bench("seed_systems", "seed_systems/run.py", "seed_systems.json", timeout_s=3600, reader=seed_systems),
)  # fmt: skip
