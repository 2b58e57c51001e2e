"""How each server under test is started and asked for one prediction: command, URL, body, answer check.

modelfn serves the benchmark ONNX files after ``modelfn package`` + sign + push to a local store (its
cold start includes verifying the bundle); the peers serve the same models the way their users run
them: FastAPI + uvicorn (uvloop, httptools) + onnxruntime, MLServer (the RF through mlserver-sklearn
from joblib, the MLP through a custom runtime on onnxruntime, as MLServer documents for other
frameworks), BentoML (the RF from joblib, the MLP on onnxruntime). Each peer runs from its own
virtual environment (bench/peers/envs.py); servers bind 127.0.0.1 on free ports.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import MODELS, RESULTS, publish_onnx
from _moto import free_port

from peers.envs import ensure_env, versions

SYSTEMS = ("modelfn", "fastapi", "mlserver", "bento")
PIP_LOG = RESULTS / "logs" / "peers-pip.log"


@dataclass
class Server:
    """One server process to measure: started with ``cmd`` in ``cwd``, asked with POST ``body`` to ``url``."""

    name: str
    cmd: list[str]
    cwd: Path
    url: str
    body: bytes
    check: Callable[[Any], bool]
    versions: dict[str, str] = field(default_factory=dict)


def sample(model: str) -> Any:
    """The batch-1 input: the first digits row for the RF (label 0), a fixed random row for the MLP."""
    import numpy as np

    if model == "rf":
        return np.load(MODELS / "digits_X.npy")[:1]
    return np.random.default_rng(0).standard_normal((1, 784), dtype=np.float32)


def _first_is_zero_or_ten_scores(model: str, row: Any) -> bool:
    return bool(row == 0) if model == "rf" else len(row) == 10


def modelfn(model: str, work: Path, _published: dict[str, dict[str, str]] = {}) -> Server:  # noqa: B006
    """``modelfn serve`` on a signed bundle of the benchmark model (published once per run)."""
    if model not in _published:
        _published[model] = publish_onnx(model, str(work / "store"), work / "keys")
    env, port = _published[model], free_port()
    cli = str(Path(sys.executable).parent / "modelfn")
    cmd = [cli, "serve", "--store", env["MODELFN_STORE_URL"], "--model", model, "--trust",
           env["MODELFN_TRUSTED_KEYS"], "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip

    def check(r: Any) -> bool:
        return bool(r["predictions"]["label"][0] == 0) if model == "rf" else len(r["predictions"][0]) == 10

    return Server(f"modelfn-{model}", cmd, work, f"http://127.0.0.1:{port}/predict",
                  json.dumps({"instances": sample(model).tolist()}).encode(), check,
                  versions(sys.executable, ["modelfn", "onnxruntime", "uvicorn"]))  # fmt: skip


FASTAPI_APP = """
import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, Request, Response

sess = ort.InferenceSession({path!r}, providers=["CPUExecutionProvider"])
app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> Response:
    body = orjson.loads(await request.body())
    out = sess.run(None, {{"input": np.asarray(body["inputs"], dtype=np.float32)}})[0]
    return Response(orjson.dumps({{"outputs": out}}, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
"""


def fastapi(model: str, work: Path) -> Server:
    """A minimal FastAPI app on uvicorn (uvloop + httptools) around one onnxruntime session."""
    python = ensure_env("fastapi", PIP_LOG)
    folder = work / f"fastapi-{model}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(FASTAPI_APP.format(path=str(MODELS / f"{model}.onnx")))
    port = free_port()
    cmd = [str(python.parent / "uvicorn"), "app:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return Server(f"fastapi-{model}", cmd, folder, f"http://127.0.0.1:{port}/predict",
                  json.dumps({"inputs": sample(model).tolist()}).encode(),
                  lambda r: _first_is_zero_or_ten_scores(model, r["outputs"][0]),
                  versions(python, ["fastapi", "uvicorn", "uvloop", "httptools", "onnxruntime"]))  # fmt: skip


MLSERVER_ONNX_RUNTIME = """
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        self.sess = ort.InferenceSession(self.settings.parameters.uri, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        out = self.sess.run(None, {"input": x})[0]
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("output", out)])
"""


def mlserver(model: str, work: Path) -> Server:
    """MLServer with one model: mlserver-sklearn for the RF, a custom onnxruntime runtime for the MLP."""
    python = ensure_env("mlserver", PIP_LOG)
    folder = work / f"mlserver-{model}"
    (folder / model).mkdir(parents=True, exist_ok=True)
    http, grpc, metrics = free_port(), free_port(), free_port()
    settings = {"http_port": http, "grpc_port": grpc, "metrics_port": metrics, "host": "127.0.0.1"}
    (folder / "settings.json").write_text(json.dumps(settings))
    if model == "rf":
        runtime, uri = "mlserver_sklearn.SKLearnModel", MODELS / "rf.joblib"
    else:
        (folder / model / "onnx_runtime.py").write_text(MLSERVER_ONNX_RUNTIME)
        runtime, uri = "onnx_runtime.OnnxModel", MODELS / f"{model}.onnx"
    model_settings = {"name": model, "implementation": runtime, "parameters": {"uri": str(uri)}}
    (folder / model / "model-settings.json").write_text(json.dumps(model_settings))
    x = sample(model)
    body = {"inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    return Server(f"mlserver-{model}", [str(python.parent / "mlserver"), "start", str(folder)], folder,
                  f"http://127.0.0.1:{http}/v2/models/{model}/infer", json.dumps(body).encode(),
                  lambda r: r["outputs"][0]["data"][0] == 0 if model == "rf" else len(r["outputs"][0]["data"]) == 10,
                  versions(python, ["mlserver", "mlserver-sklearn", "scikit-learn", "onnxruntime"]))  # fmt: skip


BENTO_SERVICE = """
import bentoml
import numpy as np


@bentoml.service(workers=1)
class RF:
    def __init__(self) -> None:
        import joblib

        self.model = joblib.load({rf!r})

    @bentoml.api
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.predict(inputs)


@bentoml.service(workers=1)
class MLP:
    def __init__(self) -> None:
        import onnxruntime as ort

        self.sess = ort.InferenceSession({mlp!r}, providers=["CPUExecutionProvider"])

    @bentoml.api
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {{"input": inputs.astype(np.float32)}})[0]
"""


def bento(model: str, work: Path) -> Server:
    """BentoML 1.4 ``bentoml serve`` with one worker: the RF from joblib, the MLP on onnxruntime."""
    python = ensure_env("bento", PIP_LOG)
    folder = work / "bento"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "service.py").write_text(BENTO_SERVICE.format(rf=str(MODELS / "rf.joblib"), mlp=str(MODELS / "mlp.onnx")))
    port = free_port()
    cmd = [str(python.parent / "bentoml"), "serve", "service:RF" if model == "rf" else "service:MLP",
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return Server(f"bento-{model}", cmd, folder, f"http://127.0.0.1:{port}/predict",
                  json.dumps({"inputs": sample(model).tolist()}).encode(),
                  lambda r: _first_is_zero_or_ten_scores(model, r[0]),
                  versions(python, ["bentoml", "scikit-learn", "onnxruntime", "uvicorn"]))  # fmt: skip


BUILDERS: dict[str, Callable[[str, Path], Server]] = {
    "modelfn": modelfn,
    "fastapi": fastapi,
    "mlserver": mlserver,
    "bento": bento,
}
