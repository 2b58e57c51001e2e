"""TensorFlow/Keras models (objects, .keras, .h5, SavedModel, frozen .pb) become bundles that serve Keras' own answers.

Every framework test trains a tiny model (fixed seeds, a few epochs), packages it, signs and pushes
it to a local store, serves it through the real ASGI app and compares the HTTP answers with
TensorFlow's at batch 1 and 4, within the tolerance the manifest records.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelfn.adapters.base import PickleLoadWarning
from modelfn.adapters.keras_tf import KerasTFAdapter
from modelfn.adapters.registry import detect
from modelfn.bundle.manifest import Manifest
from modelfn.errors import PackagingError
from modelfn.packaging import package
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey
from tests.serving.asgi_client import SyncASGIClient

REPO = Path(__file__).resolve().parents[2]
Array = npt.NDArray[Any]
LABELS = ["low", "mid", "high"]


@pytest.fixture(scope="module")
def tf_mod() -> Any:
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


@pytest.fixture(scope="module")
def keras_mod(tf_mod: Any) -> Any:
    import keras

    return keras


@pytest.fixture(scope="module")
def blobs() -> tuple[Array, Array]:
    """Four features, three classes by their sum: 96 float32 rows."""
    x = np.random.default_rng(0).uniform(-1, 1, size=(96, 4)).astype(np.float32)
    return x, np.digitize(x.sum(axis=1), [-0.7, 0.7])


@pytest.fixture(scope="module")
def classifier(keras_mod: Any, blobs: tuple[Array, Array]) -> Any:
    """A fitted Keras Sequential softmax classifier."""
    keras = keras_mod
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(*blobs, epochs=8, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def two_inputs(keras_mod: Any) -> Any:
    """A functional model with inputs ``a`` (3) and ``b`` (2) and outputs ``score`` (1) and ``aux`` (2, softmax)."""
    keras = keras_mod
    keras.utils.set_random_seed(1)
    a, b = keras.Input(shape=(3,), name="a"), keras.Input(shape=(2,), name="b")
    hidden = keras.layers.Dense(8, activation="tanh")(keras.layers.Concatenate()([a, b]))
    outputs = [
        keras.layers.Dense(1, name="score")(hidden),
        keras.layers.Dense(2, activation="softmax", name="aux")(hidden),
    ]
    return keras.Model([a, b], outputs)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def client_for(store: str, signing_key: SigningKey) -> Iterator[Any]:
    """Sign + push a bundle directory and return an HTTP client for the served model."""
    clients: list[SyncASGIClient] = []

    def _client(bundle: Path) -> SyncASGIClient:
        clients.append(serve(publish(bundle, store, signing_key).settings))
        return clients[-1]

    yield _client
    for client in clients:
        client.close()


def _predict(client: SyncASGIClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _infer(client: SyncASGIClient, name: str, feeds: dict[str, Array]) -> dict[str, Array]:
    """POST /v2/models/{name}/infer and return the outputs as arrays by name."""
    inputs = [
        {"name": k, "shape": list(v.shape), "datatype": "FP32", "data": v.ravel().tolist()} for k, v in feeds.items()
    ]
    response = client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]}


def _close(manifest: Manifest, served: Any, native: Any) -> None:
    """Served equals native within the tolerance the manifest records."""
    assert manifest.parity is not None
    np.testing.assert_allclose(
        np.asarray(served), np.asarray(native), atol=manifest.parity.atol, rtol=manifest.parity.rtol
    )


@pytest.mark.parametrize("rows", [1, 4])
@pytest.mark.framework
@pytest.mark.slow
def test_sequential_classifier_served_like_keras(
    classifier: Any, blobs: tuple[Array, Array], client_for: Any, tmp_path: Path, rows: int
) -> None:
    # GIVEN a fitted Keras Sequential softmax classifier and a sample of 8 rows
    x = blobs[0]
    out = tmp_path / "bundle"
    # WHEN it is packaged with class labels
    manifest = package(classifier, x[:8], out, name="blobs", options={"labels": ",".join(LABELS)})
    # THEN the graph keeps a dynamic batch, float32 in and out, and names its tensors plainly
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [("input", "float32", [-1, 4])]
    assert [(t.name, t.dtype, t.shape) for t in manifest.outputs] == [("output", "float32", [-1, 3])]
    assert manifest.framework.name == "tensorflow" and manifest.framework.converter == "tf2onnx"
    assert manifest.labels == LABELS and manifest.opset["ai.onnx"] == 17
    # AND the parity report on disk shows ONNX within float32 rounding of Keras
    parity = Manifest.from_json((out / "manifest.json").read_bytes()).parity
    assert parity is not None and parity == manifest.parity
    assert parity.samples == 8 and parity.max_abs_diff <= 1e-5 and set(parity.outputs) == {"output"}
    # WHEN the signed bundle is served and asked over /predict and V2
    client = client_for(out)
    batch = x[10 : 10 + rows]
    native = np.asarray(classifier(batch, training=False))
    answer = _predict(client, {"instances": batch.tolist(), "return_labels": True})
    v2 = _infer(client, "blobs", {"input": batch})
    # THEN both answer like Keras, and the labels are Keras' arg-max classes
    _close(manifest, answer["predictions"], native)
    _close(manifest, v2["output"], native)
    assert answer["labels"] == [LABELS[i] for i in native.argmax(axis=1)]


@pytest.mark.framework
@pytest.mark.slow
def test_functional_two_inputs_two_outputs(two_inputs: Any, client_for: Any, tmp_path: Path) -> None:
    # GIVEN a functional model with named inputs a, b and named outputs score, aux
    rng = np.random.default_rng(2)
    sample = {"a": rng.standard_normal((6, 3)).astype(np.float32), "b": rng.standard_normal((6, 2)).astype(np.float32)}
    # WHEN packaged with a dict sample
    manifest = package(two_inputs, sample, tmp_path / "b", name="two")
    # THEN the names and order are the model's own, every batch dim dynamic
    assert [(t.name, t.shape) for t in manifest.inputs] == [("a", [-1, 3]), ("b", [-1, 2])]
    assert [(t.name, t.shape) for t in manifest.outputs] == [("score", [-1, 1]), ("aux", [-1, 2])]
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    assert set(manifest.parity.outputs) == {"score", "aux"} and manifest.labels is None
    client = client_for(tmp_path / "b")
    for rows in (1, 4):
        feeds = {
            "a": rng.standard_normal((rows, 3)).astype(np.float32),
            "b": rng.standard_normal((rows, 2)).astype(np.float32),
        }
        score, aux = (np.asarray(t) for t in two_inputs([feeds["a"], feeds["b"]], training=False))
        # WHEN asked over V2 and over /predict with named inputs
        v2 = _infer(client, "two", feeds)
        answer = _predict(client, {"inputs": {k: v.tolist() for k, v in feeds.items()}})
        # THEN every output matches Keras
        _close(manifest, v2["score"], score)
        _close(manifest, v2["aux"], aux)
        _close(manifest, answer["predictions"]["score"], score)
        _close(manifest, answer["predictions"]["aux"], aux)


@pytest.mark.framework
@pytest.mark.slow
def test_keras_file(classifier: Any, blobs: tuple[Array, Array], client_for: Any, tmp_path: Path) -> None:
    # GIVEN the classifier saved as a .keras file
    path = tmp_path / "blobs.keras"
    classifier.save(path)
    # WHEN the file is packaged (adapter detected from the suffix)
    manifest = package(path, {"features": blobs[0][:8]}, tmp_path / "b", name="blobs-file")
    # THEN a single-key dict sample names the input, and the served model answers like the object
    assert [t.name for t in manifest.inputs] == ["features"]
    client = client_for(tmp_path / "b")
    batch = blobs[0][20:24]
    _close(manifest, _predict(client, {"instances": batch.tolist()})["predictions"], classifier(batch, training=False))


@pytest.mark.framework
@pytest.mark.slow
def test_saved_model_directory(
    tf_mod: Any, classifier: Any, blobs: tuple[Array, Array], client_for: Any, tmp_path: Path
) -> None:
    tf = tf_mod
    # GIVEN the classifier exported as a SavedModel directory (TF Serving's format)
    directory = tmp_path / "saved"
    classifier.export(directory, verbose=False)
    signature = tf.saved_model.load(str(directory)).signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]
    # WHEN the directory is packaged
    manifest = package(directory, blobs[0][:8], tmp_path / "b", name="blobs-saved")
    # THEN the bundle keeps the signature's names and a dynamic batch
    assert [(t.name, t.shape) for t in manifest.inputs] == [(input_name, [-1, 4])]
    assert [(t.name, t.shape) for t in manifest.outputs] == [("output_0", [-1, 3])]
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    # AND it serves the signature's answers at batch 1 and 4
    client = client_for(tmp_path / "b")
    for rows in (1, 4):
        batch = blobs[0][30 : 30 + rows]
        native = signature(**{input_name: tf.constant(batch)})["output_0"].numpy()
        _close(manifest, _infer(client, "blobs-saved", {input_name: batch})["output_0"], native)


@pytest.mark.framework
@pytest.mark.slow
def test_subclassed_model_takes_its_signature_from_the_sample(keras_mod: Any, tmp_path: Path) -> None:
    keras = keras_mod
    base: Any = keras.Model

    class Doubler(base):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x: Any) -> Any:
            return self.dense(x) * 2.0

    # GIVEN a subclassed Keras model that was never built, and a float64 sample of width 5
    keras.utils.set_random_seed(3)
    model = Doubler()
    x = np.random.default_rng(3).standard_normal((3, 5))
    # WHEN packaged
    manifest = package(model, x, tmp_path / "b", name="sub")
    # THEN the input comes from the sample (Keras' float32, dynamic batch) and parity holds
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [("input", "float32", [-1, 5])]
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    # AND without a sample it says one is needed
    with pytest.raises(PackagingError, match="declares no inputs"):
        package(Doubler(), None, tmp_path / "c", name="sub")


def _freeze(tf: Any, model: Any, path: Path) -> None:
    """Write ``model`` as a frozen GraphDef whose input is ``x:0`` and output ``Identity:0``."""
    freezing = importlib.import_module("tensorflow.python.framework.convert_to_constants")

    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec([None, 4], tf.float32, name="x"))
    path.write_bytes(freezing.convert_variables_to_constants_v2(concrete).graph.as_graph_def().SerializeToString())


@pytest.mark.framework
@pytest.mark.slow
def test_frozen_graph_with_tensor_names(
    tf_mod: Any, classifier: Any, blobs: tuple[Array, Array], client_for: Any, tmp_path: Path
) -> None:
    # GIVEN a frozen GraphDef .pb and the names of its input and output tensors
    path = tmp_path / "frozen.pb"
    _freeze(tf_mod, classifier, path)
    # WHEN it is packaged with those names (as the CLI passes them: strings)
    manifest = package(
        path, blobs[0][:8], tmp_path / "b", name="frozen", options={"inputs": "x:0", "outputs": "Identity:0"}
    )
    # THEN the ONNX names drop ':0', the batch stays dynamic, and the graph serves Keras' answers
    assert [(t.name, t.shape) for t in manifest.inputs] == [("x", [-1, 4])]
    assert [(t.name, t.shape) for t in manifest.outputs] == [("Identity", [-1, 3])]
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    client = client_for(tmp_path / "b")
    for rows in (1, 4):
        batch = blobs[0][40 : 40 + rows]
        _close(
            manifest, _predict(client, {"instances": batch.tolist()})["predictions"], classifier(batch, training=False)
        )


@pytest.mark.framework
@pytest.mark.slow
def test_frozen_graph_needs_valid_tensor_names(tf_mod: Any, classifier: Any, tmp_path: Path) -> None:
    path = tmp_path / "frozen.pb"
    _freeze(tf_mod, classifier, path)
    sample = np.zeros((2, 4), np.float32)
    # GIVEN a frozen graph WHEN packaged without tensor names
    # THEN the error asks for them and lists the graph's placeholders
    with pytest.raises(PackagingError, match=r"needs the inputs and outputs option\(s\).*x:0 \(float32\)") as info:
        package(path, sample, tmp_path / "b", name="frozen")
    assert info.value.field == "inputs"
    # WHEN a name is not in the graph THEN it is named, with the placeholders again
    with pytest.raises(PackagingError, match=r"outputs \['nope:0'\] are not tensors of frozen.pb.*x:0") as info:
        package(path, sample, tmp_path / "b", name="frozen", options={"inputs": "x", "outputs": "nope"})
    assert info.value.field == "outputs"
    assert not (tmp_path / "b").exists()


def test_detects_by_file_layout_without_importing_tensorflow(tmp_path: Path) -> None:
    # GIVEN the file layouts of each TF format, and some that are not TF
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    (tmp_path / "m.keras").write_bytes(b"")
    (tmp_path / "m.h5").write_bytes(b"")
    (tmp_path / "g.pb").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "m.txt").write_bytes(b"")
    code = (
        "import sys; from pathlib import Path; from modelfn.adapters.keras_tf import KerasTFAdapter as A;"
        f"root = Path({str(tmp_path)!r});"
        "names = ('saved', 'saved/saved_model.pb', 'm.keras', 'm.h5', 'g.pb', 'empty', 'm.txt');"
        "print([A.detects(root / n) for n in names]);"
        "print(sorted(m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules))"
    )
    # WHEN detection runs in a fresh interpreter
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    # THEN the TF layouts are recognized, the others are not, and no framework was imported
    assert result.stdout.split("\n")[:2] == ["[True, True, True, True, True, False, False]", "[]"]


@pytest.mark.framework
@pytest.mark.slow
def test_detects_objects(classifier: Any, two_inputs: Any, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    # GIVEN Keras models (Sequential, functional) and a SavedModel directory
    directory = tmp_path / "saved"
    classifier.export(directory, verbose=False)
    # WHEN detected THEN the tensorflow adapter is chosen, with options passed through
    assert detect(classifier).name == "tensorflow"
    assert detect(two_inputs).name == "tensorflow"
    assert detect(directory).name == "tensorflow"
    adapter = detect(classifier, options={"labels": "0,1,2"})
    assert isinstance(adapter, KerasTFAdapter) and adapter.labels == [0, 1, 2]
    # AND a Keras layer or a non-Keras model is not claimed
    assert not KerasTFAdapter.detects(classifier.layers[0])
    assert not KerasTFAdapter.detects(LogisticRegression())


@pytest.mark.framework
@pytest.mark.slow
def test_lambda_layer_needs_allow_pickle(keras_mod: Any, tmp_path: Path) -> None:
    keras = keras_mod
    # GIVEN a .keras file holding a Lambda layer (Python bytecode)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(2)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    x = np.ones((2, 4), np.float32)
    # WHEN packaged without allow_pickle THEN it is refused, naming the flag
    with pytest.raises(PackagingError, match="Lambda layer.*allow_pickle=True") as info:
        package(path, x, tmp_path / "b", name="lam")
    assert info.value.field == "allow_pickle"
    # WHEN packaged with it THEN it warns and packages; the bundle holds only ONNX
    with pytest.warns(PickleLoadWarning, match="safe mode off"):
        manifest = package(path, x, tmp_path / "b", name="lam", allow_pickle=True)
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["manifest.json", "model.onnx"]


@pytest.mark.framework
@pytest.mark.slow
def test_unreadable_files_are_clear_errors(keras_mod: Any, tmp_path: Path) -> None:
    # GIVEN files with TF suffixes that hold something else
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    (tmp_path / "bad.pb").write_bytes(b"\xff\xff\xff not a protobuf")
    x = np.zeros((2, 4), np.float32)
    # WHEN packaged THEN each error names the file and what was expected
    with pytest.raises(PackagingError, match="bad.keras") as info:
        package(tmp_path / "bad.keras", x, tmp_path / "b1", name="bad")
    assert info.value.field == "model"
    with pytest.raises(PackagingError, match="bad.pb is not a binary GraphDef"):
        package(tmp_path / "bad.pb", x, tmp_path / "b2", name="bad", options={"inputs": "x", "outputs": "y"})


@pytest.mark.framework
@pytest.mark.slow
def test_option_errors(classifier: Any, tmp_path: Path) -> None:
    x = np.zeros((2, 4), np.float32)
    # GIVEN labels that do not fit the 3-column output THEN the labels option is named
    with pytest.raises(PackagingError, match=r"2 labels given.*\[3\]") as info:
        package(classifier, x, tmp_path / "b", name="m", options={"labels": "a,b"})
    assert info.value.field == "labels"
    # GIVEN tensor names for a Keras model THEN they are refused (only frozen graphs take them)
    with pytest.raises(PackagingError, match="frozen GraphDef"):
        package(classifier, x, tmp_path / "b", name="m", options={"inputs": "x:0"})
    # GIVEN a SavedModel signature that does not exist THEN the error lists those that do
    classifier.export(tmp_path / "saved", verbose=False)
    with pytest.raises(PackagingError, match=r"no signature 'predict'.*serving_default") as info:
        package(tmp_path / "saved", x, tmp_path / "b", name="m", options={"signature": "predict"})
    assert info.value.field == "signature"
    # GIVEN malformed option values THEN each is refused at construction
    with pytest.raises(PackagingError, match="repeats a label"):
        KerasTFAdapter(labels="a,a")
    with pytest.raises(PackagingError, match="names a tensor twice"):
        KerasTFAdapter(inputs="x,x:0")
    with pytest.raises(PackagingError, match="does not accept options"):
        package(classifier, x, tmp_path / "b", name="m", options={"nonsense": "1"})


def test_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN an environment without tf2onnx
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    # WHEN a frozen graph is packaged
    (tmp_path / "g.pb").write_bytes(b"")
    with pytest.raises(PackagingError, match=r"pip install 'modelfn\[tensorflow\]'"):
        package(tmp_path / "g.pb", np.zeros((1, 4)), tmp_path / "b", name="g", options={"inputs": "x", "outputs": "y"})


@pytest.mark.framework
@pytest.mark.slow
def test_example_script_packages(keras_mod: Any, tmp_path: Path) -> None:
    # GIVEN the TensorFlow example WHEN it runs as a script
    out = tmp_path / "bundle"
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "tensorflow" / "train_and_package.py"), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
    )
    # THEN it writes a bundle and prints the next CLI steps
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    assert "served prediction: {'predictions'" in result.stdout  # signed, pushed, served
    assert "modelfn sign" in result.stdout and "modelfn serve" in result.stdout
    assert Manifest.from_json((out / "manifest.json").read_bytes()).labels == ["low", "mid", "high"]


def _preprocessing_model(keras: Any, layer: str) -> tuple[Any, Array]:
    """A tiny functional model whose first layer is the named Keras preprocessing layer, and a sample for it."""
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = (rng.uniform(-1, 1, size=(32, 4)) * 5 + 3).astype(np.float32)
    inputs = keras.Input(shape=(4,), name="features")
    if layer == "Normalization":
        norm = keras.layers.Normalization()
        norm.adapt(x)
        hidden = norm(inputs)
    elif layer == "Rescaling":
        hidden = keras.layers.Rescaling(1 / 255.0, offset=-0.5)(inputs)
        x = x * 40
    elif layer == "Discretization":
        bins = keras.layers.Discretization(num_bins=4)
        bins.adapt(x)
        x[:3, :3] = np.asarray(bins.bin_boundaries, np.float32)  # values on a boundary go to the upper bin
        hidden = keras.ops.cast(bins(inputs), "float32")
    else:
        inputs = keras.Input(shape=(3,), dtype="int32", name="codes")
        hidden = keras.layers.CategoryEncoding(num_tokens=5, output_mode="multi_hot")(inputs)
        x = rng.integers(0, 5, size=(32, 3)).astype(np.int32)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden)), x


@pytest.mark.parametrize("layer", ["Normalization", "Rescaling", "Discretization", "CategoryEncoding"])
@pytest.mark.framework
@pytest.mark.slow
def test_preprocessing_layers_in_keras_files_and_saved_models(
    keras_mod: Any, client_for: Any, tmp_path: Path, layer: str
) -> None:
    # GIVEN a model starting with an (adapted) preprocessing layer, as a .keras file and as a SavedModel
    model, x = _preprocessing_model(keras_mod, layer)
    model.save(tmp_path / "pre.keras")
    model.export(tmp_path / "saved", verbose=False)
    native = np.asarray(model(x[:4], training=False))
    for source, out in ((tmp_path / "pre.keras", tmp_path / "k"), (tmp_path / "saved", tmp_path / "s")):
        # WHEN each is packaged with a one-input sample
        manifest = package(source, x[:8], out, name="pre")
        # THEN the layer's state is part of the graph: one input, and ONNX answers like Keras
        assert len(manifest.inputs) == 1 and manifest.inputs[0].shape == [-1, x.shape[1]], manifest.inputs
        assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    # AND the signed .keras bundle serves Keras' answers
    client = client_for(tmp_path / "k")
    _close(manifest, _predict(client, {"instances": x[:4].tolist()})["predictions"], native)


@pytest.mark.framework
@pytest.mark.slow
def test_legacy_h5_file(keras_mod: Any, client_for: Any, tmp_path: Path) -> None:
    # GIVEN a model with an adapted Normalization layer saved in the legacy HDF5 format
    model, x = _preprocessing_model(keras_mod, "Normalization")
    path = tmp_path / "legacy.h5"
    model.save(path)
    # WHEN the file is packaged (adapter detected from the suffix)
    assert detect(path).name == "tensorflow"
    manifest = package(path, x[:8], tmp_path / "b", name="legacy")
    # THEN it converts with one input and serves Keras' answers
    assert [t.shape for t in manifest.inputs] == [[-1, 4]]
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    client = client_for(tmp_path / "b")
    _close(manifest, _predict(client, {"instances": x[:3].tolist()})["predictions"], model(x[:3], training=False))
    # AND a weights-only .h5 (no architecture) is refused, saying what to save instead
    model.save_weights(tmp_path / "only.weights.h5")
    with pytest.raises(PackagingError, match=r"only.weights.h5 holds only weights.*model.save") as info:
        package(tmp_path / "only.weights.h5", x[:8], tmp_path / "c", name="w")
    assert info.value.field == "model"
