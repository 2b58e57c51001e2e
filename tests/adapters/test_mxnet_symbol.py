"""MXNet symbol models package through a separate MXNet interpreter, sign, serve and answer like MXNet.

MXNet 1.9.1 cannot be installed next to modelfn (numpy<1.24, onnx<1.16), so models are trained and
predicted inside the interpreter named by ``MODELFN_TEST_MXNET_PYTHON`` (built by
``scripts/mxnet-env.sh``; ``scripts/test.sh`` sets it), else ``.venv-mxnet/bin/python`` when that
exists. Without either the MXNet tests skip, and a skip fails the run under ``CI`` (conftest.py);
the checks that need no MXNet (detection, options, errors) always run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelfn
from modelfn.adapters.mxnet_symbol import MxnetSymbolAdapter, onnx_output_names
from modelfn.adapters.registry import detect
from modelfn.errors import PackagingError
from modelfn.packaging import package
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey

SOURCE_ROOT = Path(modelfn.__file__).resolve().parent.parent
EXAMPLE = SOURCE_ROOT / "examples" / "mxnet" / "train_and_package.py"
LABELS = ["north", "east", "south"]

TRAIN_SCRIPT = """
import os, sys
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn

out = sys.argv[1]
mx.random.seed(0)
rng = np.random.RandomState(0)
centers = rng.randn(3, 4) * 3
y = np.repeat(np.arange(3), 30)
X = (centers[y] + rng.randn(90, 4)).astype("float32")
x = X[::9].copy()
np.save(os.path.join(out, "x.npy"), x)

# Gluon: an untrained snapshot at epoch 0, the trained one at epoch 3 (the newest must be picked)
os.makedirs(os.path.join(out, "gluon"))
net = nn.HybridSequential()
net.add(nn.Dense(8, activation="relu"), nn.Dense(3))
net.initialize(mx.init.Xavier())
net.hybridize()
net(mx.nd.array(x))
net.export(os.path.join(out, "gluon", "tiny"), epoch=0)
trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.05})
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
for _ in range(30):
    with autograd.record():
        loss = loss_fn(net(mx.nd.array(X)), mx.nd.array(y))
    loss.backward()
    trainer.step(len(X))
net.export(os.path.join(out, "gluon", "tiny"), epoch=3)
np.save(os.path.join(out, "expected_gluon.npy"), net(mx.nd.array(x)).asnumpy())

# Symbol API: FullyConnected + SoftmaxOutput (a training label input), weights under a custom name
os.makedirs(os.path.join(out, "softmax"))
sym = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc"), name="softmax")
mod = mx.mod.Module(sym, data_names=["data"], label_names=["softmax_label"], context=mx.cpu())
mod.fit(mx.io.NDArrayIter(X, y, batch_size=len(x)), num_epoch=10, optimizer="sgd",
        optimizer_params={"learning_rate": 0.1}, initializer=mx.init.Xavier())
prefix = os.path.join(out, "softmax", "compass")
mod.save_checkpoint(prefix, 0)
os.rename(prefix + "-0000.params", os.path.join(out, "softmax", "weights.params"))
np.save(os.path.join(out, "expected_softmax.npy"), mod.predict(mx.io.NDArrayIter(x, batch_size=len(x))).asnumpy())
"""

BLOCK_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import mxnet as mx
from mxnet.gluon import nn
from modelfn.adapters.mxnet_symbol import MxnetSymbolAdapter
from modelfn.errors import PackagingError

out = sys.argv[2]
mx.random.seed(1)
x = np.random.RandomState(1).randn(4, 5).astype("float32")
net = nn.HybridSequential()
net.add(nn.Dense(6, activation="tanh"), nn.Dense(2))
net.initialize(mx.init.Xavier())
net.hybridize()
net(mx.nd.array(x))
adapter = MxnetSymbolAdapter()
assert adapter.detects(net)
result = adapter.export(net, x, opset=12)
open(out + "/block.onnx", "wb").write(result.onnx_bytes)
np.savez(out + "/block.npz", x=x, **adapter.native_predict(net, x))
plain = nn.Dense(2)
plain.initialize()
try:
    adapter.export(plain, x, opset=None)
except PackagingError as exc:
    open(out + "/refused.txt", "w").write(exc.message)
"""


@pytest.fixture(scope="module")
def mxnet_python() -> Path:
    """The MXNet interpreter (``MODELFN_TEST_MXNET_PYTHON``, else the one scripts/test.sh builds), or skip."""
    default = SOURCE_ROOT / ".venv-mxnet" / "bin" / "python"
    value = os.environ.get("MODELFN_TEST_MXNET_PYTHON") or (str(default) if default.is_file() else "")
    if not value:
        pytest.skip("MODELFN_TEST_MXNET_PYTHON is not set (create one with scripts/mxnet-env.sh DIR)")
    path = Path(value)
    assert path.is_file(), f"MODELFN_TEST_MXNET_PYTHON={value} does not exist"
    return path


@pytest.fixture(scope="module")
def mxnet_models(mxnet_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny models trained by MXNet itself, a sample ``x.npy`` and MXNet's predictions on it."""
    out = tmp_path_factory.mktemp("mxnet-models")
    _run_mxnet(mxnet_python, TRAIN_SCRIPT, str(out))
    return out


def _run_mxnet(python: Path, script: str, *args: str) -> None:
    proc = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.framework
@pytest.mark.slow
def test_gluon_export_packages_signs_serves_and_matches_mxnet(
    mxnet_python: Path, mxnet_models: Path, tmp_path: Path, signing_key: SigningKey
) -> None:
    # GIVEN a Gluon model exported by MXNet (epochs 0 and 3 beside it) and MXNet's own predictions
    x = np.load(mxnet_models / "x.npy")
    expected = np.load(mxnet_models / "expected_gluon.npy")
    # WHEN the symbol file is packaged through the MXNet interpreter (framework detected from the layout)
    out = tmp_path / "bundle"
    manifest = package(mxnet_models / "gluon" / "tiny-symbol.json", x, out, name="tiny", converter_python=mxnet_python)
    # THEN the manifest records MXNet, opset 13, a dynamic batch and a tight parity report
    assert (manifest.framework.name, manifest.framework.version, manifest.framework.converter) == (
        "mxnet",
        "1.9.1",
        "mxnet.onnx",
    )
    assert manifest.opset == {"ai.onnx": 13}
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [("data", "float32", [-1, 4])]
    assert [(t.dtype, t.shape) for t in manifest.outputs] == [("float32", [-1, 3])]
    parity = manifest.parity
    assert parity is not None and parity.samples == len(x) and parity.label_agreement is None
    assert parity.max_abs_diff <= 1e-5 and set(parity.outputs) == {manifest.outputs[0].name}
    # AND the signed bundle, served over HTTP, answers like MXNet (trained epoch 3, not epoch 0)
    client = serve(publish(out, str(tmp_path / "store"), signing_key).settings)
    try:
        predicted = client.post("/predict", json={"instances": x.tolist()})
        infer = client.post(
            "/v2/models/tiny/infer",
            json={"inputs": [{"name": "data", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]},
        )
    finally:
        client.close()
    assert predicted.status_code == 200, predicted.text
    np.testing.assert_allclose(predicted.json()["predictions"], expected, atol=parity.atol, rtol=parity.rtol)
    assert infer.status_code == 200, infer.text
    (output,) = infer.json()["outputs"]
    assert output["shape"] == list(expected.shape)
    np.testing.assert_allclose(
        np.reshape(output["data"], output["shape"]), expected, atol=parity.atol, rtol=parity.rtol
    )


@pytest.mark.framework
@pytest.mark.slow
def test_softmax_output_symbol_with_string_options_and_labels(
    mxnet_python: Path, mxnet_models: Path, tmp_path: Path, signing_key: SigningKey
) -> None:
    # GIVEN a Module-trained SoftmaxOutput symbol whose weights have a custom file name
    x = np.load(mxnet_models / "x.npy")
    expected = np.load(mxnet_models / "expected_softmax.npy")
    options = {"params": str(mxnet_models / "softmax" / "weights.params"), "labels": ",".join(LABELS)}
    # WHEN packaged with CLI-style string options
    out = tmp_path / "bundle"
    manifest = package(
        mxnet_models / "softmax" / "compass-symbol.json", x, out, name="compass", framework="mxnet",
        converter_python=mxnet_python, options=options,
    )  # fmt: skip
    # THEN the label input is dropped, the softmax is the output, and the labels are recorded
    assert [t.name for t in manifest.inputs] == ["data"]
    assert [(t.name, t.shape) for t in manifest.outputs] == [("softmax", [-1, 3])]
    assert manifest.labels == LABELS and "softmax_label" in (manifest.preprocessing or "")
    assert manifest.parity is not None and manifest.parity.max_abs_diff <= 1e-5
    # AND the served model returns MXNet's probabilities and the label of each row's arg-max
    client = serve(publish(out, str(tmp_path / "store"), signing_key).settings)
    try:
        response = client.post("/predict", json={"inputs": x.tolist(), "return_labels": True})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    body = response.json()
    np.testing.assert_allclose(body["predictions"], expected, atol=manifest.parity.atol, rtol=manifest.parity.rtol)
    assert body["labels"] == [LABELS[i] for i in expected.argmax(axis=1)]


@pytest.mark.framework
@pytest.mark.slow
def test_worker_errors_come_back_from_the_mxnet_interpreter(
    mxnet_python: Path, mxnet_models: Path, tmp_path: Path
) -> None:
    x = np.load(mxnet_models / "x.npy")
    symbol = mxnet_models / "softmax" / "compass-symbol.json"
    params = {"params": str(mxnet_models / "softmax" / "weights.params")}
    # GIVEN an opset mx2onnx cannot produce
    # WHEN packaged through the MXNet interpreter
    # THEN the adapter's refusal comes back with its field
    with pytest.raises(PackagingError, match="opset 17 is not supported") as info:
        package(symbol, x, tmp_path / "a", name="c", converter_python=mxnet_python, options=params, opset=17)
    assert info.value.field == "opset"
    # GIVEN too many labels for the three columns
    with pytest.raises(PackagingError, match="4 labels for an output with 3 columns"):
        package(
            symbol, x, tmp_path / "b", name="c", converter_python=mxnet_python, options={**params, "labels": "a,b,c,d"}
        )
    # GIVEN a symbol without params beside it and no params option
    with pytest.raises(PackagingError, match="no compass-NNNN.params beside compass-symbol.json") as info:
        package(symbol, x, tmp_path / "c", name="c", converter_python=mxnet_python)
    assert info.value.field == "params"
    # GIVEN a sample of the wrong width
    with pytest.raises(PackagingError, match="mx2onnx cannot convert|cannot run on the sample"):
        package(symbol, x[:, :3], tmp_path / "d", name="c", converter_python=mxnet_python, options=params)
    assert not any((tmp_path / d).exists() for d in "abcd")


@pytest.mark.framework
@pytest.mark.slow
def test_hybrid_block_object_inside_the_mxnet_interpreter(mxnet_python: Path, tmp_path: Path) -> None:
    from modelfn.bundle.schema import read_schema
    from modelfn.parity import check_parity

    # GIVEN a hybridized Gluon block handed to the adapter as an object, in MXNet's interpreter
    _run_mxnet(mxnet_python, BLOCK_SCRIPT, str(SOURCE_ROOT), str(tmp_path))
    onnx_bytes = (tmp_path / "block.onnx").read_bytes()
    saved = dict(np.load(tmp_path / "block.npz"))
    x = saved.pop("x")
    # WHEN its ONNX export runs here on the same rows
    report = check_parity(onnx_bytes, saved, {"data": x})
    # THEN onnxruntime agrees with MXNet, the requested opset 12 is used, and a plain block is refused
    assert report.max_abs_diff <= 1e-5
    assert read_schema(onnx_bytes).opset == {"ai.onnx": 12}
    assert "hybridize()" in (tmp_path / "refused.txt").read_text()


@pytest.mark.framework
@pytest.mark.slow
def test_example_trains_packages_and_prints_the_cli(mxnet_python: Path, tmp_path: Path) -> None:
    # GIVEN the example script and the MXNet interpreter
    # WHEN it runs
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--python", str(mxnet_python), "--out", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # THEN it packages a bundle and prints the commands to sign, push and serve it
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "work" / "bundle" / "model.onnx").is_file()
    assert "served prediction: {'predictions'" in proc.stdout  # signed, pushed, served
    assert "modelfn sign" in proc.stdout and "modelfn push" in proc.stdout and "modelfn serve" in proc.stdout


def test_detection_by_file_layout_and_object(tmp_path: Path) -> None:
    # GIVEN an MXNet symbol file, a plain JSON file and a non-MXNet object
    symbol = tmp_path / "net-symbol.json"
    symbol.write_text("{}")
    plain = tmp_path / "config.json"
    plain.write_text("{}")
    # WHEN detection runs
    # THEN only the PREFIX-symbol.json layout is MXNet's, without importing MXNet
    assert isinstance(detect(symbol), MxnetSymbolAdapter)
    assert not MxnetSymbolAdapter.detects(plain)
    assert not MxnetSymbolAdapter.detects({"not": "a block"})
    assert "mxnet" not in sys.modules


def test_without_mxnet_here_the_error_explains_the_converter_interpreter(tmp_path: Path) -> None:
    assert not _importable("mxnet"), "MXNet cannot share modelfn's environment (numpy<1.24, onnx<1.16)"
    # GIVEN a symbol file with its params, packaged in modelfn's own environment
    symbol = tmp_path / "net-symbol.json"
    symbol.write_text("{}")
    (tmp_path / "net-0000.params").write_bytes(b"\x12\x01")
    # WHEN packaged without a converter interpreter
    with pytest.raises(PackagingError, match=r"scripts/mxnet-env\.sh DIR.*--python DIR/bin/python") as info:
        package(symbol, np.zeros((2, 4), np.float32), tmp_path / "b", name="net")
    # THEN the error says how MXNet models are packaged
    assert info.value.field == "python"


def test_wrong_file_and_missing_params_are_refused(tmp_path: Path) -> None:
    # GIVEN an adapter and files it cannot use
    adapter = MxnetSymbolAdapter()
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x07")
    symbol = tmp_path / "net-symbol.json"
    symbol.write_text("{}")
    (tmp_path / "other-0001.params").write_bytes(b"")
    # WHEN they are loaded
    # THEN the messages say what is expected
    with pytest.raises(PackagingError, match="expected the symbol file PREFIX-symbol.json"):
        adapter.load(onnx_file, allow_pickle=False)
    with pytest.raises(PackagingError, match="no net-NNNN.params beside net-symbol.json") as info:
        adapter.load(symbol, allow_pickle=False)
    assert info.value.field == "params"
    with pytest.raises(PackagingError, match="does not exist") as info:
        MxnetSymbolAdapter(params=str(tmp_path / "absent.params")).load(symbol, allow_pickle=False)
    assert info.value.field == "params"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"params": 3}, "params"),
        ({"input_names": ","}, "input_names"),
        ({"labels": [1.5]}, "labels"),
        ({"epoch": "1"}, "option"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], field: str, tmp_path: Path) -> None:
    # GIVEN options of the wrong kind
    symbol = tmp_path / "net-symbol.json"
    symbol.write_text("{}")
    # WHEN the adapter is built from them
    with pytest.raises(PackagingError) as info:
        detect(symbol, options=options)
    # THEN the error names the option
    assert info.value.field == field


def test_string_options_are_parsed() -> None:
    # GIVEN CLI-style strings
    adapter = MxnetSymbolAdapter(params="~/w.params", input_names="data, mask", labels="a,b")
    # THEN they become a path and lists
    assert adapter.params == Path("~/w.params").expanduser()
    assert adapter.input_names == ["data", "mask"] and adapter.labels == ["a", "b"]


def test_output_names_follow_mx2onnx() -> None:
    # GIVEN MXNet symbol output names
    names = ["fc1_output", "softmax_output", "lstm0_state_output", "lstm0_statecell_output", "split0_output1", "raw"]
    # THEN they map to the ONNX graph's output names
    assert onnx_output_names(names) == ["fc1", "softmax", "lstm01", "lstm02", "split01", "raw"]


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.framework
@pytest.mark.slow
def test_cli_with_params_and_python_flags(mxnet_python: Path, mxnet_models: Path, tmp_path: Path) -> None:
    # GIVEN the symbol and an explicit params file (epoch 0, not the newest)
    from typer.testing import CliRunner

    from modelfn.cli import app

    gluon = mxnet_models / "gluon"
    params = sorted(gluon.glob("tiny-*.params"))[0]
    np.save(tmp_path / "x.npy", np.load(mxnet_models / "x.npy"))
    # WHEN packaged with the command the README documents
    result = CliRunner().invoke(app, [
        "package", str(gluon / "tiny-symbol.json"), "--params", str(params), "--framework", "mxnet",
        "--python", str(mxnet_python), "--sample", str(tmp_path / "x.npy"), "--out", str(tmp_path / "b"), "-n", "tiny",
    ])  # fmt: skip
    # THEN it packages through the MXNet interpreter with a parity report
    assert result.exit_code == 0, result.output
    assert "packaged tiny v1 (mxnet)" in result.output and "parity on" in result.output
