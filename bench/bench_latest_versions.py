"""How resolving ``latest`` scales with a model's history: 1, 100 and 1,000 stored versions on moto S3.

For each count, a model gets that many versions of three small objects each (manifest.json,
model.onnx, model.sig) and ``resolve_listing(store, name, "latest")`` is timed (median of --runs,
warm client) two ways: the directory listing the loader uses (``S3Store.list_dirs``: common
prefixes only, then the candidates' files) and the full listing of ``<name>/`` that stores without
directory listing still use. ListObjectsV2 requests are counted per resolution.

Usage: python bench/bench_latest_versions.py [--runs 15] [--counts 1,100,1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save
from _moto import moto_server, s3_client

FILES = ("manifest.json", "model.onnx", "model.sig")


class _ObjectsOnly:
    """The same S3 store seen through the plain Store protocol (no ``list_dirs``): the full-listing path."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.url = inner.url  # type: ignore[attr-defined]

    def list(self, prefix: str) -> object:
        return self.inner.list(prefix)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--counts", default="1,100,1000")
    args = parser.parse_args()
    results: dict[str, object] = {"runs": args.runs, "counts": {}}
    with moto_server() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        from modelfn.repository.versions import resolve_listing
        from modelfn.store.s3 import S3Store

        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket="bench")
        store = S3Store("bench", "models", client=s3)
        lists = [0]
        s3.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: lists.__setitem__(0, lists[0] + 1))
        for count in map(int, args.counts.split(",")):
            name = f"m{count}"
            keys = [f"models/{name}/{v}/{f}" for v in range(1, count + 1) for f in FILES]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda k: s3.put_object(Bucket="bench", Key=k, Body=b"x" * 64), keys))
            row: dict[str, object] = {"objects": len(keys)}
            for label, target in (("directories", store), ("full_listing", _ObjectsOnly(store))):
                samples = []
                for _ in range(args.runs):
                    lists[0] = 0
                    t0 = time.perf_counter()
                    version, objects = resolve_listing(target, name, "latest")  # type: ignore[arg-type]
                    samples.append(time.perf_counter() - t0)
                    assert version == count and len(objects) == len(FILES), (version, len(objects))
                row[f"{label}_ms_p50"] = round(statistics.median(samples) * 1e3, 2)
                row[f"{label}_list_requests"] = lists[0]
            results["counts"][str(count)] = row  # type: ignore[index]
            print(f"{count:5d} versions ({len(keys):5d} objects): directories {row['directories_ms_p50']:7.2f} ms"
                  f" ({row['directories_list_requests']} LIST)   full listing {row['full_listing_ms_p50']:8.2f} ms"
                  f" ({row['full_listing_list_requests']} LIST)", flush=True)  # fmt: skip
    save("latest_versions", results)


if __name__ == "__main__":
    main()
