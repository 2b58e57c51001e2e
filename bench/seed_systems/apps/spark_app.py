"""Naive Spark MLlib serving: SparkSession local[1] + PipelineModel, a one-row DataFrame per request."""

import os

from flask import Flask, jsonify, request
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

spark = (
    SparkSession.builder.master("local[1]").appName("serve").config("spark.ui.enabled", "false")
    .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1").getOrCreate()
)  # fmt: skip
spark.sparkContext.setLogLevel("ERROR")
model = PipelineModel.load(os.environ["MODEL"])
cols = [f"f{i}" for i in range(8)]
app = Flask(__name__)


@app.route("/predict", methods=["POST"])
def predict():  # type: ignore[no-untyped-def]
    row = tuple(float(v) for v in request.get_json(force=True)["data"])
    r = model.transform(spark.createDataFrame([row], cols)).select("probability").collect()[0][0]
    return jsonify({"predictions": [r.toArray().tolist()]})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")), threaded=False)
