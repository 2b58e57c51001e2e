"""Train a tiny classifier, package, sign and publish it, then call the Flask app through the Lambda WSGI handler.

Run: ``python examples/flask-rest-api/train_and_package.py [OUT_DIR]`` (needs
``pip install 'modelfn[sklearn,wsgi]'``). The request goes through exactly what Lambda runs:
``modelfn.handlers.wsgi.handler`` (serverless-wsgi) with an API Gateway HTTP API event, the app
importing and verifying the model from the store in the handler's init.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import modelfn
from modelfn.invoke import LocalLambdaContext, http_api_event
from modelfn.local import publish_locally

HERE = Path(__file__).resolve().parent


def main(out: Path) -> None:
    iris = load_iris()
    names = np.asarray(iris.target_names)[iris.target]  # string labels: the app answers "setosa", not 0
    model = LogisticRegression(max_iter=500).fit(iris.data, names)
    sample = iris.data[::10].astype(np.float32)
    manifest = modelfn.package(model, sample, out / "bundle", name="iris-flask", version=1)
    print(f"packaged {manifest.name} v{manifest.version} -> {out / 'bundle'} (labels {manifest.labels})")

    # sign with a local key and push to a local store (an s3:// store works the same way)
    settings = publish_locally(out / "bundle", store=out / "store", key_dir=out / "keys")
    os.environ.update(
        MODELFN_WSGI_APP="app:app",
        MODELFN_STORE_URL=settings.store_url,
        MODELFN_MODEL_NAME=manifest.name,
        MODELFN_TRUSTED_KEYS=settings.trusted_keys[0],
    )
    sys.path.insert(0, str(HERE))  # on Lambda, app.py sits at the root of the deployment package
    from modelfn.handlers.wsgi import handler  # init: imports app.py, which verifies and loads the model

    body = json.dumps({"rows": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]}).encode()
    response = handler(http_api_event(body), LocalLambdaContext())
    print(f"POST /predict -> {response['statusCode']}: {response['body'].strip()}")
    print("next steps:")
    print(
        f"  serve it locally: MODELFN_STORE_URL={settings.store_url} MODELFN_MODEL_NAME={manifest.name}"
        f" MODELFN_TRUSTED_KEYS={settings.trusted_keys[0]} flask --app {HERE / 'app.py'} run"
    )
    print(
        f"  ask it:           curl -s localhost:5000/predict -H 'content-type: application/json' -d '{body.decode()}'"
    )
    print("  on AWS Lambda:    handler modelfn.handlers.wsgi.handler, MODELFN_WSGI_APP=app:app (see README.md)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/flask-rest-api-example"))
