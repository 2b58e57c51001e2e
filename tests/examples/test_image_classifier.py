"""examples/image-classifier end to end: train, package with its image pipeline and labels, sign, push to S3,
then send real PNG and JPEG files through every front door, a Lambda event and the storage trigger."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum

from modelfn.batch.trigger import build_storage_handler
from modelfn.serving.asgi import create_app
from modelfn.serving.state import ModelState
from tests.batch.s3_events import body, keys, put, s3_event
from tests.fixtures.bundles import Published, publish, serve
from tests.fixtures.keys import SigningKey
from tests.handlers.events import LambdaContext, http_event

pytestmark = [pytest.mark.slow, pytest.mark.framework]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "image-classifier"
LABELS = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def example_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the example script writes: weights, labels, samples, test pictures and the packaged bundle."""
    out = tmp_path_factory.mktemp("image-example")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "train_and_package.py"), str(out)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "preprocessing parity vs shapes:reference_preprocess on 60 images" in result.stdout
    return out


@pytest.fixture
def published(example_out: Path, tmp_path: Path, s3_bucket: str, signing_key: SigningKey) -> Published:
    import shutil

    bundle = Path(shutil.copytree(example_out / "bundle", tmp_path / "bundle"))
    return publish(bundle, f"s3://{s3_bucket}/models", signing_key)


def _pictures(example_out: Path) -> list[tuple[str, Path]]:
    """(true label, file) for every test picture, PNG and JPEG."""
    found = sorted((example_out / "test").iterdir())
    assert {p.suffix for p in found} == {".png", ".jpg"}
    return [(p.name.split("-")[0], p) for p in found]


def test_the_bundle_declares_its_pipeline_and_labels(example_out: Path) -> None:
    manifest = json.loads((example_out / "bundle" / "manifest.json").read_text())
    assert manifest["labels"] == LABELS
    assert manifest["processing"]["image"]["size"] == [32, 32] and manifest["processing"]["image"]["resize"] == 36
    assert manifest["processing"]["output"]["activation"] == "softmax"
    assert manifest["parity"]["preprocessing_max_abs_diff"] <= 1e-4
    assert manifest["parity"]["preprocessing_top1_agreement"] == 1.0


def test_every_http_front_door_answers_the_right_label(example_out: Path, published: Published) -> None:
    client = serve(published.settings)
    try:
        for label, path in _pictures(example_out):
            data = path.read_bytes()
            mime = "image/png" if path.suffix == ".png" else "image/jpeg"
            # raw body at /predict
            raw = client.post("/predict", content=data, headers={"content-type": mime})
            assert raw.status_code == 200, raw.text
            assert raw.json()["labels"] == [label]
            # Keras REST API: multipart `image`
            keras = client.post("/predict", files={"image": (path.name, data, mime)})
            assert keras.json()["success"] is True and keras.json()["predictions"][0]["label"] == label
            # TorchServe / MMS: raw body, {label: probability}
            torchserve = client.post("/predictions/shapes", content=data)
            assert torchserve.status_code == 200, torchserve.text
            assert max(torchserve.json().items(), key=lambda kv: kv[1])[0] == label
            # TF Serving / KServe v1: {"b64": ...}
            tfs = client.post(
                "/v1/models/shapes:predict", json={"instances": [{"b64": base64.b64encode(data).decode()}]}
            )
            assert tfs.status_code == 200, tfs.text
            scores = tfs.json()["predictions"][0]
            assert LABELS[max(range(len(LABELS)), key=lambda i: scores[i])] == label
            # Open Inference Protocol V2: a BYTES tensor of base64 pictures
            tensor = {"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(data).decode()]}
            v2 = client.post("/v2/models/shapes/infer", json={"inputs": [tensor]})
            assert v2.status_code == 200, v2.text
            logits = v2.json()["outputs"][0]["data"]
            assert LABELS[max(range(len(LABELS)), key=lambda i: logits[i])] == label
    finally:
        client.close()


def test_a_lambda_http_event_with_a_base64_jpeg(example_out: Path, published: Published) -> None:
    handler = Mangum(create_app(ModelState.load(published.settings)), lifespan="off")
    label, path = next((lbl, p) for lbl, p in _pictures(example_out) if p.suffix == ".jpg")
    event = http_event(
        "http_api_v2", "POST", "/predict", path.read_bytes(), as_base64=True, headers={"content-type": "image/jpeg"}
    )
    answer = handler(event, LambdaContext())
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["labels"] == [label]


def test_a_jpg_landing_in_the_input_prefix_gets_one_prediction_file(
    example_out: Path, published: Published, s3_bucket: str
) -> None:
    # GIVEN the storage trigger on in/ writing to out/, and every test picture uploaded under in/
    settings = published.settings.replace(input_url=f"s3://{s3_bucket}/in/", output_url=f"s3://{s3_bucket}/out/")
    pictures = _pictures(example_out)
    objects = [put(s3_bucket, f"in/{path.name}", path.read_bytes()) for _, path in pictures]
    # WHEN S3 announces them
    build_storage_handler(settings)(s3_event(*objects), LambdaContext())
    # THEN each picture has one prediction file with its label
    results: dict[str, Any] = {}
    for key in keys(s3_bucket, "out/"):
        if key.endswith(".json") and not key.endswith((".meta.json", ".error.json")):
            results[key.split("/")[2]] = json.loads(body(s3_bucket, key))
    assert sorted(results) == sorted(path.name for _, path in pictures)
    for label, path in pictures:
        assert results[path.name]["label"] == label
        assert [p["label"] for p in results[path.name]["predictions"]][0] == label
