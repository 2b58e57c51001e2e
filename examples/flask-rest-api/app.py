"""A "Keras REST API"-style Flask app: ``POST /predict`` with an ``image`` file, or JSON rows for tabular models.

The shape of the well-known Keras REST API example, with one change: the model comes from
``modelfn.load`` (fetched from a store and signature-verified before it is loaded) instead of
``keras.models.load_model``. Run it with ``flask --app app run``, or deploy it unchanged to AWS
Lambda with ``modelfn.handlers.wsgi.handler`` and ``MODELFN_WSGI_APP=app:app``.

Responses: ``{"success": true, "predictions": [{"label": ..., "probability": ...}, ...]}`` with the
top labels for an image, or the most likely label of each row for JSON ``{"rows": [...]}``.
"""

from __future__ import annotations

import io
import os

import flask
import numpy as np

import modelfn

try:  # images are optional: tabular models need no Pillow
    from PIL import Image
except ImportError:
    Image = None

STORE_URL = os.environ.get("MODELFN_STORE_URL", ".modelfn/store")
MODEL_NAME = os.environ.get("MODELFN_MODEL_NAME", "iris-flask")
TRUSTED_KEY = os.environ.get("MODELFN_TRUSTED_KEYS", ".modelfn/keys/signing.pub")
TOP_K = 3

app = flask.Flask(__name__)
model = None


def load_model():
    """Load the model once per process (this line used to be ``keras.models.load_model(...)``)."""
    global model
    model = modelfn.load(STORE_URL, MODEL_NAME, trust=TRUSTED_KEY)


def prepare_image(image, target):
    """RGB, resized to the model's input size, scaled to [0, 1], with a batch axis."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    image = image.resize(target)
    return np.expand_dims(np.asarray(image, dtype=np.float32) / 255.0, axis=0)


def class_scores(outputs):
    """The per-class score output: ``probabilities`` when the model has it, else its first float output."""
    if "probabilities" in outputs:
        return outputs["probabilities"]
    return next(v for v in outputs.values() if v.dtype.kind == "f")


def label_of(index):
    return model.labels[index] if model.labels else index


@app.route("/predict", methods=["POST"])
def predict():
    data = {"success": False}
    payload = flask.request.get_json(silent=True) if flask.request.is_json else None
    if flask.request.files.get("image"):
        if Image is None:
            data["error"] = "image input needs Pillow (pip install pillow)"
            return flask.jsonify(data), 415
        shape = model.manifest.inputs[0].shape  # [batch, height, width, channels]
        image = Image.open(io.BytesIO(flask.request.files["image"].read()))
        scores = class_scores(model.predict(prepare_image(image, target=(shape[2], shape[1]))))[0]
        best = np.argsort(scores)[::-1][:TOP_K]
        data["predictions"] = [{"label": label_of(int(i)), "probability": float(scores[i])} for i in best]
        data["success"] = True
    elif isinstance(payload, dict) and "rows" in payload:
        scores = class_scores(model.predict(payload["rows"]))
        best = scores.argmax(axis=-1)
        data["predictions"] = [
            {"label": label_of(int(i)), "probability": float(row[i])} for row, i in zip(scores, best, strict=True)
        ]
        data["success"] = True
    else:
        data["error"] = 'send an "image" file (multipart/form-data) or JSON {"rows": [...]}'
        return flask.jsonify(data), 400
    return flask.jsonify(data)


# The WSGI handler imports this module once per Lambda execution environment: load the model here,
# so it is verified before the first request and a bundle that fails verification is never served.
load_model()

if __name__ == "__main__":
    app.run()
