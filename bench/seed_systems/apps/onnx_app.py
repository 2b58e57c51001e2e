"""FastAPI + uvicorn + onnxruntime reference server: async endpoint, session created at import.

Started with ``--loop uvloop --http httptools``: the yardstick for modelfn's warm path on the RF.
"""

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Request

sess = ort.InferenceSession(os.environ["MODEL"], ort.SessionOptions(), providers=["CPUExecutionProvider"])
inputs = sess.get_inputs()
OUT = os.environ.get("OUT_INDEX")  # which output to return (e.g. probabilities)
out_names = [o.name for o in sess.get_outputs()]
out_sel = [out_names[int(OUT)]] if OUT else None
app = FastAPI()


@app.post("/predict")
async def predict(req: Request):  # type: ignore[no-untyped-def]
    body = await req.json()
    x = np.asarray(body["data"], dtype=np.float32).reshape(1, -1)
    if len(inputs) == 1:
        feeds = {inputs[0].name: x}
    else:  # one [N,1] input per column (onnxmltools sparkml VectorAssembler)
        feeds = {i.name: x[:, k : k + 1] for k, i in enumerate(inputs)}
    out = sess.run(out_sel, feeds)
    return {"predictions": out[0].tolist()}
