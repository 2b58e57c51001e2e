"""A scikit-learn Flask app: RF loaded at import, POST /predict -> predict_proba, Flask dev server."""

import os

import joblib
import numpy as np
from flask import Flask, jsonify, request

model = joblib.load(os.environ["MODEL"])
app = Flask(__name__)


@app.route("/predict", methods=["POST"])
def predict():  # type: ignore[no-untyped-def]
    x = np.asarray(request.get_json(force=True)["data"], dtype=np.float64).reshape(1, -1)
    return jsonify({"predictions": model.predict_proba(x).tolist()})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")), threaded=False)
