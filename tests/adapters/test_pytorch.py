"""PyTorch modules become signed, served ONNX bundles that answer like torch; weights files load safely."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from modelfn.adapters.base import PickleLoadWarning
from modelfn.bundle.manifest import Manifest
from modelfn.errors import PackagingError
from modelfn.packaging import package
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey
from tests.serving.asgi_client import SyncASGIClient

pytestmark = [pytest.mark.framework, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pytorch" / "train_and_package.py"
DYNAMO, LEGACY = "torch.onnx.export(dynamo=True)", "torch.onnx.export(dynamo=False)"
Array = npt.NDArray[Any]


class MLP(torch.nn.Module):
    """Four features -> three scores, with dropout so eval mode matters."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(hidden, 3)
        )

    def forward(self, x: Any) -> Any:
        return self.net(x)


class TwoInputs(torch.nn.Module):
    """Features and a context vector in, a dict of two tensors out."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 3), torch.nn.Linear(2, 3)

    def forward(self, features: Any, context: Any) -> Any:
        return {"score": self.a(features) * torch.sigmoid(self.b(context)), "base": self.a(features)}


class SmallCNN(torch.nn.Module):
    """1x8x8 images -> three class probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4 * 4 * 4, 3)

    def forward(self, image: Any) -> Any:
        h = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(image))), 2)
        return torch.softmax(self.head(h.flatten(1)), dim=-1)


class DataDependent(torch.nn.Module):
    """Python control flow on a tensor value: torch.export refuses it, the tracer records the taken branch."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x: Any) -> Any:
        y = self.lin(x)
        if y.abs().sum() >= 0:  # always true: the traced branch is the right one
            return y * 2
        return y


def _seeded(module: Any) -> Any:
    torch.manual_seed(0)
    return module


def _features(rows: int, seed: int = 0) -> Array:
    return np.random.default_rng(seed).standard_normal((rows, 4)).astype(np.float32)


def _native(model: Any, *args: Array) -> Any:
    with torch.no_grad():
        return model(*(torch.from_numpy(a) for a in args))


def _publish_and_serve(bundle: Path, tmp_path: Path, key: SigningKey) -> SyncASGIClient:
    return serve(publish(bundle, str(tmp_path / "store"), key).settings)


def _infer(client: SyncASGIClient, name: str, feeds: dict[str, Array]) -> dict[str, Array]:
    """POST /v2/models/{name}/infer with JSON tensors; the outputs as arrays by name."""
    inputs = [
        {"name": k, "shape": list(v.shape), "datatype": "FP32", "data": v.ravel().tolist()} for k, v in feeds.items()
    ]
    response = client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    return {o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(o["shape"]) for o in response.json()["outputs"]}


def _check_parity_recorded(
    out: Path, manifest: Manifest, *, samples: int, outputs: set[str], top1: float | None = None
) -> None:
    on_disk = Manifest.from_json((out / "manifest.json").read_bytes()).parity
    assert on_disk is not None and on_disk == manifest.parity
    # label agreement is the top-1 agreement when the model was packaged as a classifier (with labels)
    assert on_disk.samples == samples and on_disk.label_agreement == top1
    assert set(on_disk.outputs) == outputs and 0.0 <= on_disk.max_abs_diff <= 1e-5


def test_mlp_end_to_end_served_at_batch_1_and_5(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a small MLP left in training mode (dropout active) and a 3-row sample
    model = _seeded(MLP()).train()
    out = tmp_path / "mlp"
    # WHEN it is packaged (framework detected from the object)
    manifest = package(model, _features(3), out, name="mlp")
    # THEN the graph has the forward argument name, `output`, and a dynamic batch dim
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [("x", "float32", [-1, 4])]
    assert [(t.name, t.dtype, t.shape) for t in manifest.outputs] == [("output", "float32", [-1, 3])]
    assert manifest.framework.name == "torch" and manifest.framework.converter == DYNAMO
    assert manifest.framework.version == torch.__version__ and "dynamic batch" in (manifest.preprocessing or "")
    # AND the parity report is in the manifest, and the caller's module is back in training mode
    _check_parity_recorded(out, manifest, samples=3, outputs={"output"})
    assert model.training
    # WHEN the bundle is signed, pushed and served, and asked for 1 and then 5 rows
    client = _publish_and_serve(out, tmp_path, signing_key)
    try:
        parity = manifest.parity
        assert parity is not None
        model.eval()
        for rows in (1, 5):
            x = _features(rows, seed=rows)
            body = client.post("/predict", json={"instances": x.tolist()})
            assert body.status_code == 200, body.text
            served = np.asarray(body.json()["predictions"], dtype=np.float32)
            v2 = _infer(client, "mlp", {"x": x})["output"]
            # THEN both protocols answer like torch (eval mode) within the recorded tolerance
            want = _native(model, x).numpy()
            assert served.shape == (rows, 3)
            np.testing.assert_allclose(served, want, atol=parity.atol, rtol=parity.rtol)
            np.testing.assert_allclose(v2, want, atol=parity.atol, rtol=parity.rtol)
    finally:
        client.close()


def test_two_inputs_by_name_and_dict_outputs(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a two-input model returning a dict, and a sample keyed by forward argument name (any order)
    model = _seeded(TwoInputs()).eval()
    rng = np.random.default_rng(1)
    sample = {"context": rng.standard_normal((4, 2)).astype(np.float32), "features": _features(4)}
    out = tmp_path / "two"
    # WHEN packaged
    manifest = package(model, sample, out, name="two")
    # THEN inputs follow forward's order, outputs keep the dict keys, all with the dynamic batch dim
    assert [(t.name, t.shape) for t in manifest.inputs] == [("features", [-1, 4]), ("context", [-1, 2])]
    assert [(t.name, t.shape) for t in manifest.outputs] == [("score", [-1, 3]), ("base", [-1, 3])]
    _check_parity_recorded(out, manifest, samples=4, outputs={"score", "base"})
    # WHEN served and called with 2 rows through V2 and /predict
    client = _publish_and_serve(out, tmp_path, signing_key)
    try:
        feeds = {"features": _features(2, seed=7), "context": rng.standard_normal((2, 2)).astype(np.float32)}
        v2 = _infer(client, "two", feeds)
        simple = client.post("/predict", json={"inputs": {k: v.tolist() for k, v in feeds.items()}}).json()
    finally:
        client.close()
    # THEN every output matches torch
    want = _native(model, feeds["features"], feeds["context"])
    for name in ("score", "base"):
        np.testing.assert_allclose(v2[name], want[name].numpy(), atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(np.asarray(simple["predictions"][name]), want[name].numpy(), atol=1e-5, rtol=1e-4)


def test_tuple_sample_and_name_options(tmp_path: Path) -> None:
    from modelfn.adapters.pytorch import PyTorchAdapter
    from modelfn.bundle.schema import read_schema
    from modelfn.parity import compare, run_onnx

    # GIVEN a two-input model, a positional (tuple) sample and names given as CLI-style strings
    model = _seeded(TwoInputs()).eval()
    sample = (_features(3), np.ones((3, 2), dtype=np.float32))
    adapter = PyTorchAdapter(input_names="feats, ctx", output_names="s,b", dynamic_batch="false")
    # WHEN exported and compared with the native outputs
    result = adapter.export(model, sample, opset=None)
    schema = read_schema(result.onnx_bytes)
    onnx_out = run_onnx(result.onnx_bytes, {"feats": sample[0], "ctx": sample[1]})
    report = compare(adapter.native_predict(model, sample), onnx_out)
    # THEN the names are the given ones, shapes are static, and outputs agree
    assert [(t.name, t.shape) for t in schema.inputs] == [("feats", [3, 4]), ("ctx", [3, 2])]
    assert [t.name for t in schema.outputs] == ["s", "b"] and report.max_abs_diff <= 1e-5


def test_tuple_sample_through_package(tmp_path: Path) -> None:
    # GIVEN a two-input model and a positional sample
    model = _seeded(TwoInputs()).eval()
    sample = (_features(3), np.ones((3, 2), dtype=np.float32))
    # WHEN packaged through the public API
    manifest = package(model, sample, tmp_path / "b", name="two")
    # THEN the tuple maps to the forward arguments in order and parity holds
    assert [t.name for t in manifest.inputs] == ["features", "context"]
    assert manifest.parity is not None and manifest.parity.samples == 3 and manifest.parity.max_abs_diff <= 1e-5


def test_safetensors_with_class_path_round_trip(tmp_path: Path, signing_key: SigningKey) -> None:
    from safetensors.torch import save_file

    # GIVEN an MLP's weights saved as safetensors (no pickle) and its class path
    model = _seeded(MLP(hidden=6)).eval()
    weights = tmp_path / "mlp.safetensors"
    save_file(model.state_dict(), weights)
    options = {"model_class": f"{__name__}:MLP", "model_kwargs": '{"hidden": 6}'}
    # WHEN the file is packaged without a class path
    # THEN the error names the option to pass
    with pytest.raises(PackagingError, match="model_class='pkg.module:Class'") as info:
        package(weights, _features(2), tmp_path / "none", name="st")
    assert info.value.field == "model_class"
    # WHEN the constructor arguments do not match the weights
    with pytest.raises(PackagingError, match="do not fit"):
        package(weights, _features(2), tmp_path / "bad", name="st", options={"model_class": f"{__name__}:MLP"})
    # WHEN packaged with class path and JSON kwargs (no allow_pickle needed)
    manifest = package(weights, _features(2), tmp_path / "st", name="st", options=options)
    assert manifest.framework.name == "torch"
    # THEN the served bundle answers like the original module
    client = _publish_and_serve(tmp_path / "st", tmp_path, signing_key)
    try:
        x = _features(5, seed=3)
        served = _infer(client, "st", {"x": x})["output"]
    finally:
        client.close()
    np.testing.assert_allclose(served, _native(model, x).numpy(), atol=1e-5, rtol=1e-4)


def test_pt_state_dict_needs_allow_pickle(tmp_path: Path) -> None:
    # GIVEN a state_dict saved with torch.save (pickle) inside a training checkpoint
    model = _seeded(MLP()).eval()
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    options = {"model_class": f"{__name__}:MLP"}
    # WHEN packaged without allow_pickle
    # THEN it is refused and nothing is written
    with pytest.raises(PackagingError, match="allow_pickle=True") as info:
        package(path, _features(2), tmp_path / "b", name="pt", options=options)
    assert info.value.field == "allow_pickle" and not (tmp_path / "b").exists()
    # WHEN packaged with allow_pickle
    with pytest.warns(PickleLoadWarning, match="arbitrary code"):
        manifest = package(path, _features(2), tmp_path / "b", name="pt", options=options, allow_pickle=True)
    # THEN it converts, and the bundle holds no pickle
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["manifest.json", "model.onnx"]


def test_pth_whole_module_loads_with_allow_pickle(tmp_path: Path) -> None:
    # GIVEN a whole module pickled with torch.save (weights_only loading cannot read it)
    model = _seeded(MLP()).eval()
    path = tmp_path / "model.pth"
    torch.save(model, path)
    # WHEN packaged with allow_pickle (no class path needed)
    with pytest.warns(PickleLoadWarning):
        manifest = package(path, _features(3), tmp_path / "b", name="pth", allow_pickle=True)
    # THEN the module itself was exported
    assert manifest.framework.converter == DYNAMO and manifest.inputs[0].name == "x"


def test_small_cnn_with_labels_served(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a small CNN with batch norm (trained a few steps so running stats move) and class labels
    model = _seeded(SmallCNN())
    images = np.random.default_rng(2).standard_normal((6, 1, 8, 8)).astype(np.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.from_numpy(images)).sum().backward()
        optimizer.step()
    model.eval()
    # WHEN packaged with labels as a CLI-style string
    manifest = package(model, images[:2], tmp_path / "cnn", name="cnn", options={"labels": "cat,dog,owl"})
    # THEN the input keeps its image dims with a dynamic batch, and the labels are recorded
    assert [(t.name, t.shape) for t in manifest.inputs] == [("image", [-1, 1, 8, 8])]
    assert manifest.labels == ["cat", "dog", "owl"]
    _check_parity_recorded(tmp_path / "cnn", manifest, samples=2, outputs={"output"}, top1=1.0)
    # WHEN served and asked for labels on 6 images
    client = _publish_and_serve(tmp_path / "cnn", tmp_path, signing_key)
    try:
        body = client.post("/predict", json={"instances": images.tolist(), "return_labels": True}).json()
    finally:
        client.close()
    # THEN probabilities and labels match torch
    want = _native(model, images).numpy()
    np.testing.assert_allclose(np.asarray(body["predictions"]), want, atol=1e-5, rtol=1e-4)
    assert body["labels"] == [["cat", "dog", "owl"][i] for i in want.argmax(axis=1)]


def test_falls_back_to_the_legacy_exporter_and_says_why(tmp_path: Path) -> None:
    # GIVEN a model torch.export cannot capture (data-dependent Python branch)
    model = _seeded(DataDependent()).eval()
    # WHEN packaged with the default exporter
    manifest = package(model, _features(3), tmp_path / "dd", name="dd")
    # THEN the TorchScript exporter produced it, the notes say why, and it still has a dynamic batch
    assert manifest.framework.converter == LEGACY
    notes = manifest.preprocessing or ""
    assert "fell back" in notes and "TorchExportError" in notes and "tracer warnings" in notes
    assert manifest.inputs[0].shape == [-1, 4] and manifest.outputs[0].shape[0] == -1
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    # WHEN the dynamo exporter is required
    # THEN the failure is a PackagingError naming the option
    with pytest.raises(PackagingError, match="dynamo exporter failed") as info:
        package(model, _features(3), tmp_path / "dd2", name="dd", options={"exporter": "dynamo"})
    assert info.value.field == "exporter"


def test_detection_by_object_and_file_layout(tmp_path: Path) -> None:
    from modelfn.adapters.pytorch import PyTorchAdapter
    from modelfn.adapters.registry import detect

    # GIVEN a module object and files with each torch suffix
    files = [tmp_path / n for n in ("w.safetensors", "w.pt", "w.PTH")]
    for f in files:
        f.write_bytes(b"x")
    # WHEN detected
    # THEN the torch adapter is chosen for each, and not for other objects or suffixes
    assert isinstance(detect(MLP()), PyTorchAdapter)
    assert all(isinstance(detect(f), PyTorchAdapter) for f in files)
    assert not PyTorchAdapter.detects(torch.zeros(2)) and not PyTorchAdapter.detects(tmp_path / "w.npz")
    assert not PyTorchAdapter.detects(tmp_path)


def test_detection_and_import_do_not_import_torch(tmp_path: Path) -> None:
    # GIVEN a fresh interpreter
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    code = (
        "import sys; from pathlib import Path\n"
        "from modelfn.adapters.registry import resolve\n"
        "cls = resolve('torch')\n"
        "assert cls.detects(Path(sys.argv[1])) and not cls.detects(object())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'safetensors', 'onnxscript')))\n"
    )
    # WHEN the adapter is resolved and asked to detect
    run = subprocess.run([sys.executable, "-c", code, str(weights)], capture_output=True, text=True, cwd=ROOT)
    # THEN no framework module was imported
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from modelfn.adapters.pytorch import PyTorchAdapter

    # GIVEN torch and safetensors cannot be imported
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    # WHEN the adapter needs them
    # THEN the error names the extra
    with pytest.raises(PackagingError, match=r"pip install 'modelfn\[torch\]'"):
        PyTorchAdapter().export(object(), _features(1), opset=None)
    with pytest.raises(PackagingError, match=r"pip install 'modelfn\[torch\]'"):
        PyTorchAdapter(model_class="m:C").load(weights, allow_pickle=False)


def test_wrong_files_are_refused_clearly(tmp_path: Path) -> None:
    from modelfn.adapters.pytorch import PyTorchAdapter

    # GIVEN files that are not what their suffix says, and an unsupported suffix
    garbage_st, garbage_pt, other = tmp_path / "g.safetensors", tmp_path / "g.pt", tmp_path / "m.npz"
    for f in (garbage_st, garbage_pt, other):
        f.write_bytes(b"not a model")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    adapter = PyTorchAdapter(model_class=f"{__name__}:MLP")
    # WHEN each is loaded
    # THEN each error says what was wrong
    with pytest.raises(PackagingError, match="not a readable safetensors file"):
        adapter.load(garbage_st, allow_pickle=False)
    with pytest.warns(PickleLoadWarning), pytest.raises(PackagingError, match="cannot load g.pt"):
        adapter.load(garbage_pt, allow_pickle=True)
    with pytest.warns(PickleLoadWarning), pytest.raises(PackagingError, match="holds a list"):
        adapter.load(tmp_path / "list.pt", allow_pickle=True)
    with pytest.raises(PackagingError, match="expected .safetensors"):
        adapter.load(other, allow_pickle=False)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"exporter": "onnxscript"}, "exporter"),
        ({"model_class": "not a path"}, "model_class"),
        ({"model_kwargs": "{hidden: 3}"}, "model_kwargs"),
        ({"model_kwargs": "[1, 2]"}, "model_kwargs"),
        ({"input_names": "a,a"}, "input_names"),
        ({"dynamic_batch": "maybe"}, "dynamic_batch"),
        ({"labels": ""}, "labels"),
        ({"model_class": "json:JSONDecoder"}, "model_class"),
        ({"output_names": "a,b"}, "output_names"),
        ({"unknown": "1"}, "option"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, str], field: str, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    # GIVEN weights and one invalid option
    weights = tmp_path / "w.safetensors"
    save_file(_seeded(MLP()).state_dict(), weights)
    full = {"model_class": f"{__name__}:MLP", **options}
    # WHEN packaged
    # THEN the PackagingError points at the option
    with pytest.raises(PackagingError) as info:
        package(weights, _features(2), tmp_path / "b", name="opt", options=full)
    assert info.value.field == field


def test_bad_sample_or_object_is_a_packaging_error(tmp_path: Path) -> None:
    # GIVEN a sample of the wrong width, a sample key forward does not take, and a non-module object
    model = _seeded(MLP()).eval()
    # WHEN each is packaged
    # THEN each is a PackagingError naming the problem
    with pytest.raises(PackagingError, match=r"MLP.forward failed on the sample \['x'\]") as info:
        package(model, np.zeros((2, 5), np.float32), tmp_path / "a", name="mlp")
    assert info.value.field == "sample"
    with pytest.raises(PackagingError, match=r"sample keys \['features'\] are not arguments of MLP.forward"):
        package(model, {"features": _features(2)}, tmp_path / "b", name="mlp")
    with pytest.raises(PackagingError, match="expected a torch.nn.Module, got dict"):
        package({"w": 1}, _features(2), tmp_path / "c", name="mlp", framework="torch")


def test_sample_is_required(tmp_path: Path) -> None:
    # GIVEN no sample
    # WHEN a module is packaged
    # THEN the error says a sample is needed to trace it
    with pytest.raises(PackagingError, match="sample input is required"):
        package(MLP(), None, tmp_path / "b", name="mlp")


def test_example_script_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the example script
    # WHEN it runs in a fresh interpreter
    run = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", str(EXAMPLE), str(tmp_path / "ex")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
    )
    # THEN it packages a bundle and prints the sign/push/serve lines
    assert run.returncode == 0, run.stderr[-2000:]
    manifest = json.loads((tmp_path / "ex" / "bundle" / "manifest.json").read_text())
    assert manifest["framework"]["name"] == "torch" and manifest["parity"]["max_abs_diff"] <= 1e-5
    assert "served prediction: {'predictions'" in run.stdout  # signed, pushed, served
    assert "modelfn sign" in run.stdout and "modelfn serve" in run.stdout
    assert (tmp_path / "ex" / "blobs.safetensors").is_file()
    # AND the weights file it wrote packages through the class path it prints
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    sample = np.load(tmp_path / "ex" / "sample.npy")
    options = {"model_class": "train_and_package:Classifier"}
    again = package(tmp_path / "ex" / "blobs.safetensors", sample, tmp_path / "st", name="blobs", options=options)
    assert again.parity is not None and again.parity.max_abs_diff <= 1e-5


TORCHSERVE_MODEL_FILE = b"""
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    def forward(self, x):
        return self.net(x)
"""


def _trained_mlp() -> Any:
    """MLP trained 20 Adam steps on a 3-class toy problem, in eval mode."""
    model = _seeded(MLP())
    x = torch.from_numpy(_features(64, seed=3))
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def _torchscript_bytes(model: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(model, torch.from_numpy(_features(2, seed=9))), buffer)
    return buffer.getvalue()


def _mar(path: Path, model: dict[str, str], files: dict[str, bytes]) -> Path:
    """A model archive as torch-model-archiver lays it out: MAR-INF/MANIFEST.json beside the files."""
    import zipfile

    manifest = {"createdOn": "29/11/2026 11:00:00", "runtime": "python", "model": model, "archiverVersion": "0.12.0"}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_torchscript_pt_needs_consent_and_packages(tmp_path: Path) -> None:
    # GIVEN a trained MLP traced and saved with torch.jit.save (TorchServe's usual serialized file)
    model = _trained_mlp()
    path = tmp_path / "model.pt"
    path.write_bytes(_torchscript_bytes(model))
    x = _features(5, seed=4)
    # WHEN packaged without allow_pickle
    # THEN it is refused, suggesting torch's safe format rather than scikit-learn's
    with pytest.raises(PackagingError, match="TorchScript archive") as info:
        package(path, x, tmp_path / "a", name="ts")
    assert ".safetensors" in info.value.message and ".skops" not in info.value.message
    assert info.value.field == "allow_pickle"
    # WHEN packaged with allow_pickle
    with pytest.warns(PickleLoadWarning):
        manifest = package(path, x, tmp_path / "b", name="ts", allow_pickle=True)
    # THEN it is loaded with torch.jit.load and converts with parity, answering like the eager model
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    from modelfn.runtime.onnx_session import OnnxModel

    served = OnnxModel((tmp_path / "b" / "model.onnx").read_bytes(), manifest).predict({manifest.inputs[0].name: x})
    np.testing.assert_allclose(served["output"], _native(model, x).numpy(), atol=1e-5)


def test_torchserve_archive_with_torchscript(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a TorchServe .mar holding a TorchScript model, its handler and an index_to_name.json
    model = _trained_mlp()
    labels = {"0": "low", "1": "mid", "2": "high"}
    entry = {"modelName": "mlp", "serializedFile": "model.pt", "handler": "image_classifier", "modelVersion": "1.0"}
    files = {"model.pt": _torchscript_bytes(model), "index_to_name.json": json.dumps(labels).encode()}
    path = _mar(tmp_path / "mlp.mar", entry, files)
    x = _features(4, seed=5)
    # WHEN packaged without consent THEN refused (TorchScript runs its own code)
    with pytest.raises(PackagingError, match="allow_pickle"):
        package(path, x, tmp_path / "a", name="mlp")
    # WHEN packaged with allow_pickle
    with pytest.warns(PickleLoadWarning):
        manifest = package(path, x, tmp_path / "b", name="mlp", allow_pickle=True)
    # THEN the serialized model converts, and the notes say what the bundle leaves behind
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    notes = manifest.preprocessing or ""
    assert "handler 'image_classifier' was not run" in notes and "not carried over: index_to_name.json" in notes
    # AND it serves torch's answers
    client = _publish_and_serve(tmp_path / "b", tmp_path, signing_key)
    try:
        got = _infer(client, "mlp", {manifest.inputs[0].name: x})
    finally:
        client.close()
    np.testing.assert_allclose(got["output"], _native(model, x).numpy(), atol=1e-5)


def test_torchserve_archive_with_eager_weights_and_model_file(tmp_path: Path) -> None:
    # GIVEN a .mar with eager weights (a state dict) and the model file that defines the module
    spec = {"__name__": "torchserve_model"}
    exec(compile(TORCHSERVE_MODEL_FILE, "model.py", "exec"), spec)  # the same class, to train here
    model = spec["Net"]()
    torch.manual_seed(0)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    import io

    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)
    entry = {"modelName": "net", "serializedFile": "model.pth", "modelFile": "model.py", "handler": "handler.py"}
    files = {"model.pth": weights.getvalue(), "model.py": TORCHSERVE_MODEL_FILE, "handler.py": b"raise SystemExit(3)\n"}
    path = _mar(tmp_path / "net.mar", entry, files)
    x = _features(3, seed=6)
    # WHEN packaged without consent THEN refused: importing the archive's model file runs its code
    with pytest.raises(PackagingError, match="allow_pickle"):
        package(path, x, tmp_path / "a", name="net")
    # WHEN packaged with allow_pickle
    with pytest.warns(PickleLoadWarning):
        manifest = package(path, x, tmp_path / "b", name="net", allow_pickle=True)
    # THEN the model file's one module class got the weights (the handler never ran) and parity holds
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    assert "handler 'handler.py' was not run" in (manifest.preprocessing or "")
    # AND with model_class naming an importable class, the weights (weights-only) need no consent
    options = {"model_class": f"{__name__}:ArchiveNet"}
    manifest = package(path, x, tmp_path / "c", name="net", options=options)
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5


class ArchiveNet(torch.nn.Module):
    """The archive's Net, importable from this module (for the model_class option)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    def forward(self, x: Any) -> Any:
        return self.net(x)


def _zip_with(path: Path, name: str, *, mode: int = 0o100644) -> Path:
    import zipfile

    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("MAR-INF/MANIFEST.json", json.dumps({"model": {"modelName": "m", "serializedFile": "m.pt"}}))
        zf.writestr(info, b"x")
    return path


@pytest.mark.parametrize(
    ("member", "mode", "problem"),
    [
        ("../evil.py", 0o100644, "'..' component"),
        ("/etc/evil.py", 0o100644, "absolute"),
        ("dir\\evil.py", 0o100644, "backslashed"),
        ("link.pt", 0o120777, "link or special"),
        ("fifo", 0o010644, "link or special"),
    ],
)
def test_archive_path_tricks_are_refused(tmp_path: Path, member: str, mode: int, problem: str) -> None:
    # GIVEN a .mar with one hostile member
    path = _zip_with(tmp_path / "bad.mar", member, mode=mode)
    # WHEN packaged, even with consent
    # THEN it is refused naming the member, before anything is read or loaded
    with pytest.raises(PackagingError, match=problem) as info:
        package(path, _features(2), tmp_path / "b", name="bad", allow_pickle=True)
    assert repr(member) in info.value.message and not (tmp_path / "b").exists()


def test_archive_manifest_naming_outside_files_or_duplicates_is_refused(tmp_path: Path) -> None:
    import warnings
    import zipfile

    # GIVEN a manifest whose serializedFile leaves the archive, and an archive with a duplicated member
    outside = _mar(tmp_path / "out.mar", {"modelName": "m", "serializedFile": "../../m.pt"}, {"m.pt": b"x"})
    dup = _mar(tmp_path / "dup.mar", {"modelName": "m", "serializedFile": "m.pt"}, {"m.pt": b"x"})
    with warnings.catch_warnings(), zipfile.ZipFile(dup, "a") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        zf.writestr("m.pt", b"y")
    # WHEN packaged THEN both are refused naming the problem
    with pytest.raises(PackagingError, match="leaves the archive"):
        package(outside, _features(2), tmp_path / "a", name="m", allow_pickle=True)
    with pytest.raises(PackagingError, match="duplicate"):
        package(dup, _features(2), tmp_path / "b", name="m", allow_pickle=True)


def test_mxnet_model_server_archive_converts_in_the_mxnet_interpreter(tmp_path: Path) -> None:
    from tests.adapters.test_mxnet_symbol import TRAIN_SCRIPT, _run_mxnet, mxnet_python

    # GIVEN a Gluon model trained by MXNet, archived as MXNet Model Server lays it out (symbol, params, handler)
    python = mxnet_python.__wrapped__()  # type: ignore[attr-defined]
    trained = tmp_path / "trained"
    trained.mkdir()
    _run_mxnet(python, TRAIN_SCRIPT, str(trained))
    gluon = trained / "gluon"
    entry = {"modelName": "tiny", "handler": "mxnet_vision_service:handle", "engine": {"engineName": "MXNet"}}
    files = {
        "tiny-symbol.json": (gluon / "tiny-symbol.json").read_bytes(),
        "tiny-0003.params": (gluon / "tiny-0003.params").read_bytes(),
        "mxnet_vision_service.py": b"raise SystemExit(3)\n",
        "synset.txt": b"north\neast\nsouth\n",
    }
    path = _mar(tmp_path / "tiny.mar", entry, files)
    x = np.load(trained / "x.npy")
    # WHEN packaged through the MXNet interpreter (.params are MXNet's binary format: no consent needed)
    manifest = package(path, x, tmp_path / "b", name="tiny", converter_python=python)
    # THEN MXNet's symbol/params converted with parity to MXNet's own answers, the handler not run
    assert manifest.framework.name == "mxnet"
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    from modelfn.runtime.onnx_session import OnnxModel

    served = OnnxModel((tmp_path / "b" / "model.onnx").read_bytes(), manifest).predict({"data": x})
    np.testing.assert_allclose(next(iter(served.values())), np.load(trained / "expected_gluon.npy"), atol=1e-5)
    notes = manifest.preprocessing or ""
    assert "handler 'mxnet_vision_service:handle' was not run" in notes
    assert "not carried over: mxnet_vision_service.py, synset.txt" in notes
