"""What int8 dynamic quantization buys and costs: size, single-thread latency, and answers that move.

Two models trained here in seconds on the scikit-learn digits set: an MLP 784-512-512-10 (digits
upscaled to 28x28, trained with PyTorch; random weights when torch is missing) and a logistic
regression on the 64 raw pixels (converted with its linear op spelled as MatMul, which is what
onnxruntime can quantize; the LinearClassifier op the sklearn adapter emits has no int8 kernel).
Each is quantized with ``modelfn.compression.quantize_int8`` in several weight settings and timed
with onnxruntime on one thread, batch 1 and 32 (p50). Prints a table and writes
``bench/results/bench_quantize.json``.

Run: ``python bench/bench_quantize.py`` (about a minute on a laptop core).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
RESULTS = Path(__file__).parent / "results" / "bench_quantize.json"
SETTINGS: list[dict[str, Any]] = [
    {"weight_type": "int8"},
    {"weight_type": "int8", "reduce_range": True},
    {"weight_type": "uint8"},
    {"weight_type": "int8", "per_channel": True, "reduce_range": True},
]
RUNS = {1: 300, 32: 100}
"""Timed runs per batch size (after 20 warm-up runs)."""


def digits() -> tuple[Array, Array, Array, Array]:
    """(train x, train y, held-out x, held-out y): 8x8 digits scaled to [0, 1], float32."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def to_28x28(x: Array) -> Array:
    """8x8 -> 24x24 by pixel repetition, padded to 28x28 and flattened: an MNIST-shaped input."""
    images = np.kron(x.reshape(-1, 8, 8), np.ones((3, 3), np.float32))
    return np.pad(images, ((0, 0), (2, 2), (2, 2))).reshape(len(x), 784).astype(np.float32)


def mlp_onnx(layers: list[tuple[Array, Array]]) -> bytes:
    """MatMul + Add (+ Relu) per layer, then Softmax -> ``probabilities``; dynamic batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, current = [], [], "x"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"B{i}")]
        nodes += [helper.make_node("MatMul", [current, f"W{i}"], [f"m{i}"])]
        nodes += [helper.make_node("Add", [f"m{i}", f"B{i}"], [f"a{i}"])]
        current = f"a{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", layers[0][0].shape[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", layers[-1][0].shape[1]])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def train_mlp(x: Array, y: Array) -> tuple[list[tuple[Array, Array]], str]:
    """Weights of a 784-512-512-10 MLP trained for a few epochs (or random weights without torch)."""
    dims = [784, 512, 512, 10]
    try:
        import torch
    except ImportError:
        rng = np.random.default_rng(0)
        layers = [
            ((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), np.zeros(b, np.float32))
            for a, b in zip(dims, dims[1:], strict=False)
        ]
        return layers, "random weights (torch not installed)"
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for _ in range(8):
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), 64):
            idx = order[start : start + 64]
            optimizer.zero_grad()
            torch.autograd.backward(torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]))
            optimizer.step()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]
    return layers, f"trained with torch {torch.__version__}, 8 epochs"


def native_mlp(layers: list[tuple[Array, Array]], x: Array) -> Array:
    """The float64 reference forward pass (what the framework would compute)."""
    h = x.astype(np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ w.astype(np.float64) + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def logistic_regression(x: Array, y: Array) -> tuple[bytes, Any]:
    """LR on 64 pixels converted by skl2onnx with MatMul instead of the LinearClassifier op."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=3000).fit(x, y)
    onx = to_onnx(
        model,
        x[:1],
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={id(model): {"zipmap": False}},
        black_op={"LinearClassifier"},
    )
    data: bytes = onx.SerializeToString()
    return data, model


def p50_ms(data: bytes, feeds: dict[str, Array]) -> float:
    """Median wall time of one ``session.run`` on one intra-op thread, in milliseconds."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    batch = len(next(iter(feeds.values())))
    for _ in range(20):
        session.run(None, feeds)
    times = []
    for _ in range(RUNS[batch]):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def measure(name: str, data: bytes, input_name: str, x: Array, native: dict[str, Any], labels: list[int]) -> list[Any]:
    """One row for the float model and one per quantization setting."""
    from modelfn.compression import quantize_int8

    feeds = {b: {input_name: x[:b]} for b in RUNS}
    base = {b: p50_ms(data, f) for b, f in feeds.items()}
    rows: list[dict[str, Any]] = [
        {"model": name, "setting": "float32", "size": len(data), "p50_ms_b1": base[1], "p50_ms_b32": base[32]}
    ]
    for setting in SETTINGS:
        result = quantize_int8(
            data, sample_feeds={input_name: x}, native_outputs=native, labels=labels, min_agreement=0.0, **setting
        )
        report = result.report
        rows.append(
            {
                "model": name,
                "setting": "+".join(f"{k}={v}" if k != "weight_type" else str(v) for k, v in setting.items()),
                "size": report.size_after,
                "p50_ms_b1": p50_ms(result.onnx_bytes, feeds[1]),
                "p50_ms_b32": p50_ms(result.onnx_bytes, feeds[32]),
                "report": report.to_builtins(),
            }
        )
    return rows


def main() -> None:
    """Train, quantize, time; print the table and write the JSON."""
    import onnxruntime as ort

    started = time.perf_counter()
    x_train, y_train, x_test, _ = digits()
    layers, how = train_mlp(to_28x28(x_train), y_train)
    mlp_x = to_28x28(x_test)
    mlp_native = {"probabilities": native_mlp(layers, mlp_x)}
    rows = measure("mlp-784-512-512-10", mlp_onnx(layers), "x", mlp_x, mlp_native, list(range(10)))
    lr_data, lr = logistic_regression(x_train, y_train)
    lr_native = {"label": lr.predict(x_test), "probabilities": lr.predict_proba(x_test)}
    rows += measure("sklearn-logreg-digits", lr_data, "X", x_test, lr_native, [int(c) for c in lr.classes_])
    print(f"{'model':<24}{'setting':<42}{'size':>10}{'ratio':>7}{'p50 b1 ms':>11}{'p50 b32 ms':>12}"
          f"{'maxabs native':>15}{'agree native':>14}{'agree fp32':>12}")  # fmt: skip
    sizes: dict[str, int] = {}
    for row in rows:
        sizes.setdefault(row["model"], row["size"])
        report = row.get("report", {})
        print(
            f"{row['model']:<24}{row['setting']:<42}{row['size']:>10}{row['size'] / sizes[row['model']]:>7.2f}"
            f"{row['p50_ms_b1']:>11.3f}{row['p50_ms_b32']:>12.3f}"
            f"{_fmt(report.get('max_abs_diff_native')):>15}{_fmt(report.get('label_agreement_native')):>14}"
            f"{_fmt(report.get('label_agreement_onnx')):>12}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "onnxruntime": ort.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
        "cpus": os.cpu_count(),
        "threads": 1,
        "samples": len(x_test),
        "mlp": how,
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\n{how}; {len(x_test)} held-out rows; wrote {RESULTS} in {meta['seconds']} s")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
