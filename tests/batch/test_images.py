"""Images landing under the input prefix of an image bundle: one JSON prediction per image, on moto_server and
on folders (``modelfn batch``); header CSV mapped by feature name for a records bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfn.batch.job import score_object
from modelfn.batch.trigger import build_storage_handler
from modelfn.errors import UnprocessableInput, UnsupportedMediaType
from modelfn.loader import LoadedBundle, load_bundle
from modelfn.store.local import LocalStore
from tests.batch.s3_events import body, keys, put, s3_event
from tests.fixtures.bundles import Published, publish
from tests.fixtures.keys import SigningKey
from tests.handlers.events import LambdaContext
from tests.packaging.images import SPEC, png_bytes, tiny_cnn, write_images

pytestmark = [pytest.mark.slow, pytest.mark.framework]

LABELS: list[str | int] = ["cat", "dog", "owl"]


@pytest.fixture(scope="module")
def cnn_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CNN packaged once with the image pipeline and labels (unsigned; each test signs its own copy)."""
    from modelfn.packaging import package
    from modelfn.packaging_processing import ProcessingRequest
    from modelfn.packaging_samples import read_sample

    root = tmp_path_factory.mktemp("cnn")
    write_images(root / "samples", 4)
    request = ProcessingRequest(preprocess=SPEC, labels=LABELS, top_k=2)
    package(tiny_cnn(), read_sample(root / "samples"), root / "bundle", name="cnn", processing=request)
    return root / "bundle"


def _copy(bundle: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(bundle, to))


def _expected(blob: bytes, bundle: LoadedBundle) -> np.ndarray[Any, Any]:
    """Softmax of the model's logits on the declared pipeline's tensor, computed here."""
    from modelfn.processing.images import images_to_tensor
    from modelfn.serving.inference import run_model

    processing = bundle.manifest.processing
    assert processing is not None and processing.image is not None
    logits = run_model(bundle.model, {"image": images_to_tensor([blob], processing.image, field="t")})["output"][0]
    exp = np.exp(logits - logits.max())
    return np.asarray(exp / exp.sum())


@pytest.fixture
def cnn_published(cnn_bundle: Path, tmp_path: Path, signing_key: SigningKey, s3_bucket: str) -> Published:
    return publish(_copy(cnn_bundle, tmp_path / "bundle"), f"s3://{s3_bucket}/models", signing_key)


def test_an_image_landing_in_the_input_prefix_gets_one_prediction_file(
    cnn_published: Published, s3_bucket: str
) -> None:
    # GIVEN the image bundle behind the storage trigger, and a PNG and a JPEG uploaded under the input prefix
    import io

    from PIL import Image

    settings = cnn_published.settings.replace(input_url=f"s3://{s3_bucket}/in/", output_url=f"s3://{s3_bucket}/out/")
    png = png_bytes(1)
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(2))).save(jpeg, format="JPEG")
    objects = [put(s3_bucket, "in/a.png", png), put(s3_bucket, "in/photos/b.jpg", jpeg.getvalue())]
    handler = build_storage_handler(settings)
    # WHEN S3 announces both (twice: a duplicate delivery)
    answer = handler(s3_event(*objects), LambdaContext())
    handler(s3_event(*objects), LambdaContext())
    # THEN each image has exactly one JSON result (and its meta record) named after it
    assert len(answer["results"]) == 2
    written = keys(s3_bucket, "out/")
    results = sorted(k for k in written if k.endswith(".json") and not k.endswith((".meta.json", ".error.json")))
    assert len(written) == 4 and [k.split("/cnn-v1-")[0] for k in results] == ["out/in/a.png", "out/in/photos/b.jpg"]
    # AND the result holds the top-2 labels with softmax probabilities of the model's own scores
    loaded = load_bundle(cnn_published.settings)
    result = json.loads(body(s3_bucket, results[0]))
    probabilities = _expected(png, loaded)
    best = int(probabilities.argmax())
    assert result["label"] == LABELS[best]
    assert [p["label"] for p in result["predictions"]][0] == LABELS[best] and len(result["predictions"]) == 2
    assert result["predictions"][0]["probability"] == pytest.approx(float(probabilities[best]), rel=1e-5)
    assert np.asarray(result["outputs"]["output"]).shape == (3,)
    meta = json.loads(body(s3_bucket, results[0] + ".meta.json"))
    assert meta["rows"] == 1 and meta["input"]["format"] == "image"


def test_a_corrupt_image_is_recorded_as_an_error(cnn_published: Published, tmp_path: Path) -> None:
    # GIVEN a .jpg that is not an image, and a real one, in a folder
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "ok.png").write_bytes(png_bytes(3))
    bundle = load_bundle(cnn_published.settings)
    # WHEN each is scored
    good = score_object(bundle, LocalStore(folder), "ok.png", str(tmp_path / "out"))
    with pytest.raises(Exception) as caught:
        score_object(bundle, LocalStore(folder), "broken.jpg", str(tmp_path / "out"))
    # THEN the good one is written, the broken one leaves an error record and no result
    assert good.rows == 1 and (tmp_path / "out" / good.output_key).is_file()
    errors = list((tmp_path / "out" / "broken.jpg").glob("*.error.json"))
    assert len(errors) == 1 and json.loads(errors[0].read_text())["error"]
    assert not [p for p in (tmp_path / "out" / "broken.jpg").glob("*") if not p.name.endswith(".error.json")]
    assert getattr(caught.value, "status_code", 500) < 500


def test_an_image_for_a_bundle_without_image_preprocessing_is_refused(tiny: LoadedBundle, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(4))
    with pytest.raises(UnsupportedMediaType, match="declares no image preprocessing"):
        score_object(tiny, LocalStore(folder), "a.png", str(tmp_path / "out"))
    assert len(list((tmp_path / "out").rglob("*.error.json"))) == 1


def test_modelfn_batch_on_a_folder_of_images(cnn_bundle: Path, tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN the image bundle in a local store and a folder of images (and a note that is not data)
    from typer.testing import CliRunner

    from modelfn.cli import app

    published = publish(_copy(cnn_bundle, tmp_path / "bundle"), str(tmp_path / "store"), signing_key)
    paths = write_images(tmp_path / "photos", 5, seed=7)
    (tmp_path / "photos" / "notes.txt").write_text("skip me")
    # WHEN `modelfn batch` scores the folder
    result = CliRunner().invoke(
        app,
        ["batch", str(tmp_path / "photos"), str(tmp_path / "out"), "--store", published.settings.store_url,
         "--model", "cnn", "--trust", str(signing_key.public_path)],
    )  # fmt: skip
    # THEN every image has one prediction with a declared label
    assert result.exit_code == 0, result.output
    found = sorted(p for p in (tmp_path / "out").rglob("*.json") if not p.name.endswith((".meta.json", ".error.json")))
    assert [p.parent.name for p in found] == [p.name for p in paths]
    assert all(json.loads(p.read_text())["label"] in LABELS for p in found)


def test_header_csv_and_json_lines_for_a_records_bundle_are_mapped_by_feature_name(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    # GIVEN an iris classifier whose bundle declares its feature names, and a CSV with the columns shuffled
    # and an id column
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelfn.packaging import package

    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    frame = load_iris(as_frame=True).data.set_axis(features, axis=1)
    model = LogisticRegression(max_iter=500).fit(frame, load_iris().target)
    package(model, frame.iloc[::10], tmp_path / "b", name="iris")
    bundle = load_bundle(publish(tmp_path / "b", str(tmp_path / "store"), signing_key).settings)
    rows = frame.iloc[::9]
    shuffled = pd.concat([pd.Series([f"r{i}" for i in range(len(rows))], index=rows.index, name="id"),
                          rows[features[::-1]]], axis=1)  # fmt: skip
    folder = tmp_path / "in"
    folder.mkdir()
    shuffled.to_csv(folder / "rows.csv", index=False)
    shuffled.drop(columns="petal_width").to_csv(folder / "missing.csv", index=False)
    # WHEN scored
    outcome = score_object(bundle, LocalStore(folder), "rows.csv", str(tmp_path / "out"))
    # THEN the id passes through, and the labels are scikit-learn's on the rows in the model's column order
    lines = (tmp_path / "out" / outcome.output_key).read_text().splitlines()
    header = lines[0].split(",")
    assert header[:5] == ["id", *features[::-1]] and header[5] == "label"
    assert [line.split(",")[0] for line in lines[1:]] == [f"r{i}" for i in range(len(rows))]
    assert [int(line.split(",")[5]) for line in lines[1:]] == model.predict(rows).tolist()
    # AND a CSV without one of the features is refused naming it
    with pytest.raises(UnprocessableInput, match="missing column 'petal_width'") as caught:
        score_object(bundle, LocalStore(folder), "missing.csv", str(tmp_path / "out"))
    assert caught.value.field == "petal_width"
    # AND JSON Lines objects of named features (with an id) are mapped the same way
    lines = [json.dumps({"id": f"r{i}", **row}) for i, row in enumerate(rows[features[::-1]].to_dict("records"))]
    (folder / "rows.jsonl").write_text("\n".join(lines) + "\n")
    scored = score_object(bundle, LocalStore(folder), "rows.jsonl", str(tmp_path / "out"))
    answers = [json.loads(line) for line in (tmp_path / "out" / scored.output_key).read_text().splitlines()]
    assert [a["id"] for a in answers] == [f"r{i}" for i in range(len(rows))]
    assert [a["label"] for a in answers] == model.predict(rows).tolist()
