"""The reference server for throughput: FastAPI + uvicorn + onnxruntime, the way a user would write it.

Serves ``POST /predict`` with ``{"instances": rows}`` (the same body ``modelfn serve`` takes) for
the ONNX file named by ``BENCH_ONNX``; ``{"predictions": ...}`` back. Run by bench_batching.py as
``uvicorn fastapi_ort_app:app --app-dir bench``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, Request, Response

session = ort.InferenceSession(os.environ["BENCH_ONNX"], providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> Response:
    rows: Any = orjson.loads(await request.body())["instances"]
    out = session.run(None, {input_name: np.asarray(rows, dtype=np.float32)})[0]
    return Response(
        orjson.dumps({"predictions": out}, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )
