"""Train a tiny Spark MLlib pipeline, save it, package the saved directory, and print the next CLI steps.

Run: ``python examples/spark/train_and_package.py [OUT_DIR]`` (needs ``pip install 'modelfn[spark]'`` and
Java 17+). The training session is stopped before packaging: modelfn starts its own local session
to read the pipeline and check parity, and the bundle it writes serves without a JVM.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import SparkSession
from sklearn.datasets import load_iris

import modelfn
from modelfn.local import serve_once

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def train(pipeline_dir: Path) -> np.ndarray:
    """Fit VectorAssembler + LogisticRegression on iris in a local session, save it, return a sample."""
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    x, y = load_iris(return_X_y=True)
    frame = spark.createDataFrame([(*map(float, r), float(t)) for r, t in zip(x, y, strict=True)], [*COLUMNS, "label"])
    stages: list[Any] = [VectorAssembler(inputCols=COLUMNS, outputCol="features"), LogisticRegression(maxIter=30)]
    Pipeline(stages=stages).fit(frame).write().overwrite().save(str(pipeline_dir))
    spark.stop()
    return np.asarray(x[::10], dtype=np.float64)


def main(out: Path) -> None:
    files = out.parent / f"{out.name}-files"
    files.mkdir(parents=True, exist_ok=True)
    x = train(files / "pipeline")
    sample = {name: x[:, [i]].astype(np.float32) for i, name in enumerate(COLUMNS)}
    manifest = modelfn.package(files / "pipeline", sample, out, name="iris-spark", version=1)
    arrays: dict[str, Any] = dict(sample)
    np.savez(files / "sample.npz", **arrays)
    parity = manifest.parity
    print(f"packaged {manifest.name} v{manifest.version} -> {out} ({manifest.framework.converter})")
    print(f"inputs: {[(t.name, t.shape) for t in manifest.inputs]}")
    if parity is not None:
        print(f"parity on {parity.samples} rows: max abs diff {parity.max_abs_diff:.3g}")
    # sign a copy with a scratch key, push it to a scratch store, and ask the served model (verified first)
    print(
        "served prediction:",
        serve_once(out, {"inputs": {name: column[:2].tolist() for name, column in sample.items()}}),
    )
    print("next steps:")
    print("  modelfn keygen --out .modelfn/keys")
    print(f"  modelfn sign {out} --key .modelfn/keys/signing.key")
    print(f"  modelfn push {out} --store .modelfn/store")
    print("  modelfn serve --model iris-spark --store .modelfn/store --trust .modelfn/keys/signing.pub")
    print("the same from the command line:")
    print(f"  modelfn package {files / 'pipeline'} -o {out}-cli -n iris-spark --sample {files / 'sample.npz'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/spark-example/bundle"))
