"""KServe ModelServer with a custom kserve.Model wrapping the RF (kserve-sklearnserver is not on PyPI).

ModelServer binds 0.0.0.0 / [::] (hard-coded), so run.py starts it, and its client, inside a
private network namespace with only loopback up.
"""

import os

import joblib
import kserve
import numpy as np


class RF(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.model = None
        self.load()

    def load(self) -> bool:
        self.model = joblib.load(os.environ["MODEL"])
        self.ready = True
        return True

    def predict(self, payload, headers=None):  # type: ignore[no-untyped-def]
        x = np.asarray(payload["instances"], dtype=np.float64)
        return {"predictions": self.model.predict_proba(x).tolist()}


if __name__ == "__main__":
    port, grpc_port = int(os.environ.get("PORT", "8080")), int(os.environ.get("GRPC_PORT", "8081"))
    kserve.ModelServer(http_port=port, grpc_port=grpc_port, workers=1).start([RF("rf")])
