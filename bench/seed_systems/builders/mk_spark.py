"""Naive Spark serving's model: PipelineModel(VectorAssembler + LogisticRegression), 8 features, local[1]."""

import sys

import numpy as np
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import SparkSession

out = sys.argv[1]
spark = (
    SparkSession.builder.master("local[1]").appName("mk").config("spark.ui.enabled", "false")
    .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1").getOrCreate()
)  # fmt: skip
spark.sparkContext.setLogLevel("ERROR")
rs = np.random.RandomState(0)
X = rs.rand(1000, 8)
y = ((X - 0.5) @ rs.randn(8) > 0).astype(float)  # balanced labels: a one-class LR does not convert
cols = [f"f{i}" for i in range(8)]
df = spark.createDataFrame([(*map(float, r), float(t)) for r, t in zip(X, y, strict=True)], [*cols, "label"])
stages = [VectorAssembler(inputCols=cols, outputCol="features"), LogisticRegression(maxIter=20)]
Pipeline(stages=stages).fit(df).write().overwrite().save(f"{out}/pipeline")
sample = np.random.RandomState(1).rand(8, 8)
np.savez(f"{out}/sample.npz", **{c: sample[:, i : i + 1] for i, c in enumerate(cols)})
spark.stop()
