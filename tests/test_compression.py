"""Int8 dynamic quantization shrinks a model, records how far it moved, and refuses one that changes answers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelfn.bundle.manifest import Manifest
from modelfn.compression import quantize_int8
from modelfn.errors import PackagingError, ParityError
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey

pytestmark = [pytest.mark.framework, pytest.mark.slow]


def _matmul_model(weights: npt.NDArray[np.float32], *, output: str = "scores") -> bytes:
    """``output = x @ weights`` with a dynamic batch, built with onnx.helper."""
    from onnx import TensorProto, helper, numpy_helper

    rows, cols = weights.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], [output])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", rows])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", cols])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    data: bytes = model.SerializeToString()
    return data


@pytest.fixture(scope="module")
def digits_mlp() -> tuple[Any, npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(MLPClassifier 64-48-10 trained on 1,400 digits, training rows, 397 held-out rows), all float32 in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    model = MLPClassifier(hidden_layer_sizes=(48,), max_iter=600, random_state=0).fit(x[:1400], y[:1400])
    return model, x[:1400], x[1400:]


def test_quantized_mlp_shrinks_keeps_its_answers_and_serves(
    digits_mlp: tuple[Any, Any, npt.NDArray[np.float32]], tmp_path: Path, signing_key: SigningKey
) -> None:
    from modelfn.adapters.scikit_learn import SklearnAdapter
    from modelfn.packaging import package

    # GIVEN a trained MLP classifier packaged as a float32 bundle, and 397 held-out rows
    model, _, held_out = digits_mlp
    out = tmp_path / "digits"
    manifest = package(model, held_out, out, name="digits")
    fp32 = (out / "model.onnx").read_bytes()
    native = SklearnAdapter().native_predict(model, held_out)
    # WHEN it is quantized to int8 weights (7-bit range: this CI CPU may lack VNNI)
    result = quantize_int8(
        fp32,
        sample_feeds={"input": held_out},
        native_outputs=native,
        labels=manifest.labels,
        reduce_range=True,
    )
    report = result.report
    # THEN it is much smaller, both weight matrices are 8-bit, and classes agree on >= 99% of rows
    assert report.size_before == len(fp32) and report.size_after == len(result.onnx_bytes)
    assert report.size_after < 0.5 * report.size_before
    assert report.quantized_weights == 2 and report.samples == len(held_out)
    assert report.label_agreement_native is not None and report.label_agreement_native >= 0.99
    assert report.label_agreement_onnx is not None and report.label_agreement_onnx >= 0.99
    # AND the probabilities moved, by an amount the report states against both references
    assert report.max_abs_diff_native is not None and 0.0 < report.max_abs_diff_native < 0.2
    assert 0.0 < report.max_abs_diff_onnx < 0.2
    # AND the int8 graph declares only the op domains it uses (standard ops, plus ML ops from skl2onnx)
    from modelfn.runtime.onnx_guard import inspect_onnx

    assert set(inspect_onnx(result.onnx_bytes).opsets) <= {"ai.onnx", "ai.onnx.ml"}
    # AND a bundle carrying the int8 model and the report signs, pushes, loads and serves over HTTP
    (out / "model.onnx").write_bytes(result.onnx_bytes)
    (out / "manifest.json").write_bytes(manifest.replace(compression=report).to_json())
    assert Manifest.from_json((out / "manifest.json").read_bytes()).compression == report
    client = serve(publish(out, str(tmp_path / "store"), signing_key).settings)
    try:
        response = client.post("/predict", json={"instances": held_out.tolist()})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    served = response.json()["predictions"]
    # AND the served answers match the native model within the recorded figures
    agreement = float(np.mean(np.asarray(served["label"]) == model.predict(held_out)))
    assert agreement == pytest.approx(report.label_agreement_native)
    diff = np.abs(np.asarray(served["probabilities"]) - model.predict_proba(held_out)).max()
    assert diff <= report.max_abs_diff_native + 1e-6


def test_tiny_margin_classifier_is_refused() -> None:
    # GIVEN a two-class linear scorer whose columns differ by far less than one int8 step
    rng = np.random.default_rng(7)
    base = rng.uniform(-1, 1, size=(8, 1)).astype(np.float32)
    weights = np.hstack([base, base + rng.choice([-1e-4, 1e-4], size=(8, 1)).astype(np.float32)])
    x = rng.standard_normal((200, 8)).astype(np.float32)
    data = _matmul_model(weights)
    # WHEN it is quantized as a classifier with the default min_agreement
    with pytest.raises(ParityError) as info:
        quantize_int8(data, sample_feeds={"x": x}, classifier=True)
    # THEN the refusal names the agreement, the floor, the output and the first row that flipped
    message = info.value.message
    assert "min_agreement 0.99" in message and "output 'scores'" in message and "float ONNX model" in message
    assert info.value.field == "min_agreement"
    # AND with the floor lowered it is accepted, recording the agreement that was lost
    report = quantize_int8(data, sample_feeds={"x": x}, classifier=True, min_agreement="0").report
    assert report.label_agreement_onnx is not None and report.label_agreement_onnx < 0.99
    assert report.label_agreement_native is None and report.max_abs_diff_native is None


def test_regressor_records_deltas_without_agreement() -> None:
    # GIVEN a regression-style model (no labels), quantized with options given as strings (as the CLI passes them)
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((32, 4)).astype(np.float32)
    x = rng.standard_normal((50, 32)).astype(np.float32)
    native = {"scores": x.astype(np.float64) @ weights.astype(np.float64)}
    # WHEN quantized with uint8 per-channel weights, said not to be a classifier
    report = quantize_int8(
        _matmul_model(weights), sample_feeds={"x": x}, native_outputs=native, weight_type="QUInt8", per_channel="true",
        classifier=False,
    ).report  # fmt: skip
    # THEN there is no agreement figure, only deltas, and the chosen options are recorded
    assert (report.weight_type, report.per_channel, report.reduce_range) == ("uint8", True, False)
    assert report.label_agreement_onnx is None and report.label_agreement_native is None
    assert report.compared_outputs == []
    assert report.max_abs_diff_native is not None and report.max_abs_diff_native > 0.0


def test_model_without_quantizable_weights_is_refused() -> None:
    from onnx import TensorProto, helper

    # GIVEN a graph with no weight-bearing op
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    # WHEN it is quantized
    # THEN the error says nothing could be quantized and lists the graph's ops
    with pytest.raises(PackagingError, match=r"no weight .* can be quantized .*Relu") as info:
        quantize_int8(data, sample_feeds={"x": np.ones((2, 3), np.float32)})
    assert info.value.field == "quantize"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"weight_type": "int4"}, "weight_type"),
        ({"per_channel": "maybe"}, "per_channel"),
        ({"reduce_range": "2"}, "reduce_range"),
        ({"min_agreement": "most"}, "min_agreement"),
        ({"min_agreement": 1.5}, "min_agreement"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], field: str) -> None:
    # GIVEN a quantizable model
    data = _matmul_model(np.eye(4, dtype=np.float32))
    # WHEN an option has a value outside its domain
    with pytest.raises(PackagingError) as info:
        quantize_int8(data, sample_feeds={"x": np.ones((2, 4), np.float32)}, **options)
    # THEN the error names that option
    assert info.value.field == field and field in info.value.message


def test_quantizing_leaves_the_root_logger_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from onnxruntime.quantization import shape_inference

    # GIVEN a root logger without handlers, as in a plain script, and a model whose quantization pre-processing
    # fails (the quantizer then logs a hint through logging.warning, which would install a stderr handler)
    def failing_pre_process(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Incomplete symbolic shape inference")

    monkeypatch.setattr(shape_inference, "quant_pre_process", failing_pre_process)
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        # WHEN the raw model is quantized
        result = quantize_int8(
            _matmul_model(np.eye(4, dtype=np.float32)), sample_feeds={"x": np.ones((2, 4), np.float32)}
        )
        # THEN it still quantizes, and no handler was installed as a side effect
        assert result.report.quantized_weights == 1
        assert root.handlers == []
    finally:
        root.handlers[:] = saved


def _torch_classifier(steps: int) -> tuple[Any, npt.NDArray[np.float32]]:
    """A 3-class torch MLP (16-32-3, logits out) trained ``steps`` Adam steps on Gaussian blobs; (model, rows)."""
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=2.0, size=(3, 16)).astype(np.float32)
    y = rng.integers(0, 3, size=300)
    x = (centers[y] + rng.normal(size=(300, 16))).astype(np.float32)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimizer.step()
    return model.eval(), x


def test_torch_classifier_without_labels_is_judged_by_argmax(tmp_path: Path) -> None:
    from modelfn.packaging import package

    # GIVEN a torch classifier trained here that returns logits, packaged without naming labels
    model, x = _torch_classifier(steps=60)
    # WHEN packaged with --quantize int8
    manifest = package(model, x, tmp_path / "q", name="blobs", quantize="int8")
    # THEN the logits were compared by arg-max against the native model and the manifest says which output
    report = manifest.compression
    assert report is not None and report.compared_outputs == ["output"]
    assert report.label_agreement_native is not None and report.label_agreement_native >= 0.99
    assert manifest.labels is None


def test_torch_classifier_without_labels_losing_answers_is_refused(tmp_path: Path) -> None:
    import torch

    from modelfn.packaging import package

    # GIVEN a trained torch classifier whose last layer's class columns are then made nearly equal
    model, x = _torch_classifier(steps=40)
    with torch.no_grad():
        last = model[2]
        last.weight[1:] = last.weight[0] + 1e-5 * torch.randn_like(last.weight[1:])
        last.bias[:] = 0.0
    # WHEN packaged with --quantize int8 and no labels
    # THEN the drop in arg-max agreement is refused, naming the output
    with pytest.raises(ParityError, match="predicted class changes") as info:
        package(model, x, tmp_path / "q", name="blobs", quantize="int8")
    assert "'output'" in info.value.message and info.value.field == "min_agreement"
    # AND nothing was written
    assert not (tmp_path / "q" / "model.onnx").exists()
