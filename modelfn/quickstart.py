"""``modelfn quickstart``: the whole path on embedded defaults, no cloud account.

Train a small scikit-learn classifier, package it to ONNX with a parity check, sign it with a
local key, push it to the local store, serve it on 127.0.0.1 and make the first prediction.
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from modelfn.errors import ModelfnError

MODEL_NAME = "iris"


def run_quickstart(*, home: Path, port: int, once: bool) -> None:
    """Run every step, printing what happened; serve until Ctrl-C unless ``once``."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    store_dir, key_dir = home / "store", home / "keys"
    model, sample = _train()
    console.print(f"[bold]1/5 trained[/] LogisticRegression on iris ({sample.shape[1]} features, 3 classes)")

    from modelfn.packaging import package
    from modelfn.repository.versions import next_version
    from modelfn.store.registry import store_for

    store = store_for(str(store_dir))
    version = next_version(store, MODEL_NAME)
    with tempfile.TemporaryDirectory(prefix="modelfn-bundle-") as tmp:
        bundle = Path(tmp) / "bundle"
        manifest = package(model, sample, bundle, name=MODEL_NAME, version=version)
        parity = manifest.parity
        diff = f"max abs diff {parity.max_abs_diff:.2g}" if parity else "no parity report"
        console.print(f"[bold]2/5 packaged[/] {MODEL_NAME} v{version} to ONNX ({diff} vs scikit-learn)")

        from modelfn.local import publish_locally

        published = publish_locally(bundle, store=store_dir, key_dir=key_dir)
        console.print(f"[bold]3/5 signed[/] with {key_dir / 'signing.key'} (trust {published.trusted_keys[0]})")
        console.print(f"[bold]4/5 pushed[/] to {store_dir}/{MODEL_NAME}/{version}/")

    settings = published.replace(port=port or _free_port())
    server, thread = _start_server(settings)
    try:
        base = f"http://{settings.host}:{settings.port}"
        rows = [[round(float(v), 3) for v in row] for row in sample[:2]]
        body = json.dumps({"instances": rows})
        answer = _post(f"{base}/predict", body)
        console.print(f"[bold]5/5 serving[/] {base}  (verified {MODEL_NAME} v{version}, OpenAPI at {base}/docs)")
        console.print(f"first prediction: {answer}")
        console.print("\ntry it:")
        console.print(f"  curl -s {base}/predict -H 'content-type: application/json' -d '{body}'")
        if not once:
            console.print("\nserving until Ctrl-C …")
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(10)


def _train() -> tuple[Any, Any]:
    try:
        import numpy as np
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise ModelfnError("quickstart needs scikit-learn: pip install 'modelfn[sklearn]'") from exc
    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)
    return LogisticRegression(max_iter=500).fit(features, labels), features[::10]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(settings: Any) -> tuple[Any, threading.Thread]:
    import uvicorn

    from modelfn.serving.asgi import create_app
    from modelfn.serving.state import ModelState

    state = ModelState.load(settings)
    config = uvicorn.Config(create_app(state), host=settings.host, port=settings.port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ModelfnError(
                f"the server did not start on {settings.host}:{settings.port} (port in use? try --port 0)"
            )
        time.sleep(0.05)
    return server, thread


def _post(url: str, body: str) -> str:
    request = urllib.request.Request(url, data=body.encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())
