"""How resolving ``latest`` scales with a model's history: 1, 100 and 1,000 stored versions on moto S3.

For each count, a model gets that many versions of three small objects each (manifest.json,
model.onnx, model.sig) plus the hint ``modelfn push`` leaves (``<name>/.latest/<count>``). Every
model is stored before anything is timed, so each request sees the same bucket: moto scans the
whole bucket on every LIST, which real S3 does not, and this keeps that scan equal across counts.
Three ways are timed side by side (median of --runs, warm client, the order alternating per round,
garbage collected before each sample):

- ``hinted``: ``resolve_listing(store, name, "latest")`` as the loader runs it (the hints, then one
  listing from the chosen version on: its files, and proof that the version above holds nothing);
- ``directories``: ``listed_latest``, the directory listing the loader used before hints and still
  falls back to (common prefixes only, then the candidates' files);
- ``full_listing``: the listing of ``<name>/`` that stores without directory listing fall back to.

``floor`` is one LIST of the chosen version's files alone, which any way must make. Requests are
counted per resolution (ListObjectsV2, and all S3 calls), with the entries (keys and common
prefixes) the listings returned: what a real store's work and response size follow. ``cold`` times
the first resolution on a fresh client (new connections; client creation not timed) at the lowest
count, hinted and directories alternating. On loopback moto every request is CPU (client and
server share the machine's cores); ``rtt`` repeats hinted vs directories with a simulated network
round trip (a sleep before each request is sent), closer to a real store, where latency dominates.

Usage: python bench/bench_latest_versions.py [--runs 15] [--counts 1,100,1000] [--rtt-ms 20]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save
from _moto import moto_server, s3_client

FILES = ("manifest.json", "model.onnx", "model.sig")
WAYS = ("hinted", "directories", "full_listing", "floor")


class _ObjectsOnly:
    """The same S3 store seen through the plain Store protocol (no ``list_dirs``): the full-listing path."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.url = inner.url

    def list(self, prefix: str) -> Any:
        return self.inner.list(prefix)


class _Counter:
    """Counts the S3 requests a client sends (ListObjectsV2, all of them) and the entries listings return."""

    def __init__(self) -> None:
        self.lists = 0
        self.calls = 0
        self.entries = 0

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call.s3.ListObjectsV2", self._list)
        client.meta.events.register("before-call.s3", self._call)
        client.meta.events.register("after-call.s3.ListObjectsV2", self._listed)

    def _list(self, **_: Any) -> None:
        self.lists += 1

    def _listed(self, parsed: dict[str, Any], **_: Any) -> None:
        self.entries += len(parsed.get("Contents", [])) + len(parsed.get("CommonPrefixes", []))

    def _call(self, **_: Any) -> None:
        self.calls += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--counts", default="1,100,1000")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="simulated round trip for the rtt rows (0: none)")
    args = parser.parse_args()
    counts = sorted(map(int, args.counts.split(",")))
    results: dict[str, Any] = {"runs": args.runs, "counts": {}}
    with moto_server() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        from modelfn.repository.versions import listed_latest, resolve_listing
        from modelfn.store.s3 import S3Store

        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket="bench")
        keys = [f"models/m{c}/{v}/{f}" for c in counts for v in range(1, c + 1) for f in FILES]
        keys += [f"models/m{c}/.latest/{c}" for c in counts]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: s3.put_object(Bucket="bench", Key=k, Body=b"x" * 64), keys))
        counter = _Counter()
        counter.attach(s3)
        store = S3Store("bench", "models", client=s3)
        ways: dict[str, Callable[[str, int], tuple[int, Any]]] = {
            "hinted": lambda name, _: resolve_listing(store, name, "latest"),
            "directories": lambda name, _: listed_latest(store, name),
            "full_listing": lambda name, _: listed_latest(_ObjectsOnly(store), name),  # type: ignore[arg-type]
            "floor": lambda name, count: (count, store.list(f"{name}/{count}/")),
        }
        samples: dict[tuple[int, str], list[float]] = {(c, w): [] for c in counts for w in WAYS}
        requests: dict[tuple[int, str], tuple[int, int, int]] = {}
        for round_ in range(args.runs):
            order = [(c, w) for c in counts for w in WAYS]
            for count, way in order if round_ % 2 == 0 else reversed(order):
                counter.lists = counter.calls = counter.entries = 0
                gc.collect()  # the 1,000-version full listing leaves garbage; no sample pays for collecting it
                t0 = time.perf_counter()
                version, objects = ways[way](f"m{count}", count)
                samples[count, way].append(time.perf_counter() - t0)
                assert version == count and len(objects) == len(FILES), (way, version, len(objects))
                requests[count, way] = (counter.lists, counter.calls, counter.entries)
        for count in counts:
            row: dict[str, Any] = {"objects": count * len(FILES) + 1, "bucket_objects": len(keys)}
            for way in WAYS:
                row[f"{way}_ms_p50"] = round(statistics.median(samples[count, way]) * 1e3, 2)
                row[f"{way}_list_requests"], row[f"{way}_requests"], row[f"{way}_entries_listed"] = requests[count, way]
            results["counts"][str(count)] = row
            print(f"{count:5d} versions: " + "  ".join(
                f"{w} {row[f'{w}_ms_p50']:7.2f} ms ({row[f'{w}_requests']} req, {row[f'{w}_entries_listed']} entries)"
                for w in WAYS),
            flush=True)  # fmt: skip
        results["cold"] = _cold(endpoint, counts[0], args.runs)
        print(f"cold, {counts[0]} version(s), fresh client: " + "  ".join(
            f"{k} {v:.2f} ms" for k, v in results["cold"].items() if k.endswith("_ms_p50")), flush=True)  # fmt: skip
        if args.rtt_ms > 0:
            results["rtt"] = _with_rtt(endpoint, counts, args.runs, args.rtt_ms)
    save("latest_versions", results)


def _with_rtt(endpoint: str, counts: list[int], runs: int, rtt_ms: float) -> dict[str, Any]:
    """Hinted vs directories when every request waits ``rtt_ms`` before it is sent (warm client)."""
    from modelfn.store.s3 import S3Store

    client = s3_client(endpoint)
    client.meta.events.register("before-send.s3", lambda **_: time.sleep(rtt_ms / 1e3))
    store = S3Store("bench", "models", client=client)
    samples: dict[tuple[int, str], list[float]] = {(c, w): [] for c in counts for w in ("hinted", "directories")}
    for round_ in range(runs):
        order = list(samples)
        for count, way in order if round_ % 2 == 0 else reversed(order):
            samples[count, way].append(_timed_resolution(store, f"m{count}", way))
    out: dict[str, Any] = {"rtt_ms": rtt_ms}
    for count in counts:
        out[str(count)] = {f"{w}_ms_p50": round(statistics.median(samples[count, w]) * 1e3, 2) for w in WAYS[:2]}
        print(f"rtt {rtt_ms:.0f} ms, {count:5d} versions: " + "  ".join(
            f"{k} {v:7.2f} ms" for k, v in out[str(count)].items()), flush=True)  # fmt: skip
    return out


def _timed_resolution(store: Any, name: str, way: str) -> float:
    """Seconds to resolve ``latest`` of ``name`` one way (``hinted`` or ``directories``), after a collection."""
    from modelfn.repository.versions import listed_latest, resolve_listing

    gc.collect()
    t0 = time.perf_counter()
    if way == "hinted":
        resolve_listing(store, name, "latest")
    else:
        listed_latest(store, name)
    return time.perf_counter() - t0


def _cold(endpoint: str, count: int, runs: int) -> dict[str, Any]:
    """First resolution on a fresh client (connections opened inside the timing), hinted vs directories."""
    from modelfn.store.s3 import S3Store

    samples: dict[str, list[float]] = {"hinted": [], "directories": []}
    for round_ in range(runs):
        for way in ("hinted", "directories") if round_ % 2 == 0 else ("directories", "hinted"):
            store = S3Store("bench", "models", client=s3_client(endpoint))
            samples[way].append(_timed_resolution(store, f"m{count}", way))
    return {"count": count} | {f"{w}_ms_p50": round(statistics.median(s) * 1e3, 2) for w, s in samples.items()}


if __name__ == "__main__":
    main()
