"""The classic "Keras REST API": model loaded at import, POST /predict, Flask dev server (threaded=False).

``KERAS_CALL=1`` calls ``model(x, training=False)`` instead of ``model.predict`` (Keras 3's predict
loop costs ~47 ms a call; the direct call is the fair comparison).
"""

import os

import keras
import numpy as np
from flask import Flask, jsonify, request

model = keras.models.load_model(os.environ["MODEL"])
USE_CALL = os.environ.get("KERAS_CALL") == "1"
app = Flask(__name__)


@app.route("/predict", methods=["POST"])
def predict():  # type: ignore[no-untyped-def]
    x = np.asarray(request.get_json(force=True)["data"], dtype=np.float32).reshape(1, -1)
    y = model(x, training=False).numpy() if USE_CALL else model.predict(x, verbose=0)
    return jsonify({"predictions": y.tolist()})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")), threaded=False)
