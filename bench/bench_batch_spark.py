"""`modelfn batch`: rows/s of the Spark engine on local[2] beside the local engine, same data, same bundle.

A small tabular model (an MLP 16-64-3 with softmax, built with onnx.helper, random weights) is
packaged, signed and pushed to a local store. The data set is Parquet: ``--files`` files of
``--rows-per-file`` rows of 16 float32 feature columns. Measured, each in this one process:

* local engine: ``run_local`` over the folder (bundle verify + load, read, score, write each file);
* Spark, cold: ``run_spark`` starting its own local[2] session (JVM start included) and stopping it;
* Spark, warm: ``run_spark`` on an already started local[2] session (what a job on a running
  cluster pays), after one run that brought the executors' Python workers up.

Both engines' outputs are compared row for row (ordered by the feature columns) before any figure
is reported. Prints a table; writes ``bench/results/bench_batch_spark.json``.

Run: ``python bench/bench_batch_spark.py [--files 8] [--rows-per-file 50000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "bench_batch_spark.json"
FEATURES = [f"f{i}" for i in range(16)]


def mlp_onnx() -> bytes:
    """ONNX bytes of softmax(relu(x @ W1 + b1) @ W2 + b2), x float32 [N, 16] -> probabilities [N, 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {
        "W1": rng.normal(size=(16, 64)).astype(np.float32) / 4, "b1": np.zeros(64, np.float32),
        "W2": rng.normal(size=(64, 3)).astype(np.float32) / 8, "b2": np.zeros(3, np.float32),
    }  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "W2"], ["o0"]),
        helper.make_node("Add", ["o0", "b2"], ["o1"]), helper.make_node("Softmax", ["o1"], ["probabilities"], axis=1),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def publish(work: Path) -> Any:
    """Package, sign and push the MLP; the settings that load it (one intra-op thread, like a worker)."""
    from modelfn.config import Settings
    from modelfn.packaging import package
    from modelfn.repository.transfer import push_bundle
    from modelfn.signing.keys import write_keypair
    from modelfn.signing.sign import KeyFileSigner, sign_bundle
    from modelfn.store.registry import store_for

    (work / "mlp.onnx").write_bytes(mlp_onnx())
    write_keypair(work / "bench.key", work / "bench.pub")
    package(work / "mlp.onnx", None, work / "bundle", name="mlp", version=1)
    sign_bundle(work / "bundle", KeyFileSigner(work / "bench.key"), name="mlp", version=1)
    push_bundle(work / "bundle", store_for(str(work / "store")), name="mlp", version=1, progress=False)
    return Settings(store_url=str(work / "store"), model_name="mlp", trusted_keys=(str(work / "bench.pub"),), threads=1)


def write_data(folder: Path, files: int, rows_per_file: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(files):
        x = rng.normal(size=(rows_per_file, len(FEATURES))).astype(np.float32)
        pq.write_table(pa.table({name: x[:, j] for j, name in enumerate(FEATURES)}), folder / f"part-{i:03d}.parquet")


def ordered(folder: Path) -> Any:
    """Every Parquet row under ``folder``, ordered by the features (both engines' outputs compare this way)."""
    import pandas as pd
    import pyarrow.parquet as pq

    parts = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    frame = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    return frame.sort_values(FEATURES, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rows-per-file", type=int, default=50_000)
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    args = parser.parse_args()

    from modelfn.batch.runner import run_local
    from modelfn.batch.spark_engine import run_spark, spark_session

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        work = Path(tmp)
        settings = publish(work)
        write_data(work / "data", args.files, args.rows_per_file)
        total = args.files * args.rows_per_file
        figures: dict[str, dict[str, float]] = {}

        local = run_local(settings, str(work / "data"), str(work / "local"), chunk_rows=args.chunk_rows)
        assert local.ok and local.rows == total, local.line()
        figures["local engine"] = {"seconds": local.seconds, "rows_per_s": local.rows_per_s}

        cold = run_spark(settings, str(work / "data"), str(work / "spark-cold"), master="local[2]",
                         chunk_rows=args.chunk_rows)  # fmt: skip
        assert cold.rows == total, cold.line()
        figures["spark local[2], cold (JVM start included)"] = {"seconds": cold.seconds, "rows_per_s": cold.rows_per_s}

        session = spark_session("local[2]", config={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"})
        try:
            run_spark(settings, str(work / "data"), str(work / "spark-warmup"), chunk_rows=args.chunk_rows,
                      session=session)  # fmt: skip
            t0 = time.perf_counter()
            warm = run_spark(settings, str(work / "data"), str(work / "spark-warm"), chunk_rows=args.chunk_rows,
                             session=session)  # fmt: skip
            warm_s = time.perf_counter() - t0
        finally:
            session.stop()
        assert warm.rows == total, warm.line()
        figures["spark local[2], warm session"] = {"seconds": warm_s, "rows_per_s": total / warm_s}

        import pandas as pd

        by_local = ordered(work / "local")
        for name in ("spark-cold", "spark-warm"):
            pd.testing.assert_frame_equal(ordered(work / name), by_local, check_dtype=False, rtol=1e-6, atol=1e-6)

    print(f"{total:,} rows, {len(FEATURES)} float32 features, MLP 16-64-3; {os.cpu_count()} CPUs")
    print(f"{'engine':46} {'seconds':>8} {'rows/s':>10}")
    for name, figure in figures.items():
        print(f"{name:46} {figure['seconds']:8.2f} {figure['rows_per_s']:10,.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "rows": total, "files": args.files, "chunk_rows": args.chunk_rows, "model": "mlp 16-64-3 (onnx)",
        "cpus": os.cpu_count(), "python": platform.python_version(), "figures": figures,
        "outputs_equal_row_for_row": True,
    }  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", RESULTS)


if __name__ == "__main__":
    main()
