"""The converter interpreter's side of ``modelfn.converter_process``: load, export, predict, write files.

Runs inside another Python (started by ``convert_in_interpreter`` with this source tree on
``sys.path``), so it imports as little of modelfn as it can: the registry, the chosen adapter and
``modelfn.adapters.base`` — numpy and msgspec, never onnxruntime or the serving stack. Everything
it hands back is plain data: ``model.onnx``, ``native.npz`` and ``result.json`` (or ``error.json``).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

REQUEST_FILE, RESULT_FILE, ERROR_FILE = "request.json", "result.json", "error.json"
SAMPLE_FILE, NATIVE_FILE, USED_SAMPLE_FILE, ONNX_FILE = "sample.npz", "native.npz", "used_sample.npz", "model.onnx"
EXIT_HANDLED = 3
"""Exit status after writing ``error.json``; any other non-zero status means a crash (see stderr)."""


def main(argv: list[str]) -> int:
    """Convert the request in ``argv[0]`` (a work directory); return the process exit status."""
    from modelfn.errors import ModelfnError

    if len(argv) != 1:
        print("usage: _convert_worker WORK_DIR", file=sys.stderr)
        return 2
    work = Path(argv[0])
    try:
        _convert(work)
    except ModelfnError as exc:
        (work / ERROR_FILE).write_text(json.dumps({"message": exc.message, "field": exc.field}))
        print(f"modelfn converter worker: {exc.message}", file=sys.stderr)
        return EXIT_HANDLED
    return 0


def _convert(work: Path) -> None:
    from modelfn.adapters.registry import get_adapter

    request = json.loads((work / REQUEST_FILE).read_text())
    layout = request["sample"]
    sample = _load_arrays(work / SAMPLE_FILE, layout) if layout is not None else None
    adapter = get_adapter(request["adapter"], request["options"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = adapter.load(Path(request["model"]), allow_pickle=bool(request["allow_pickle"]))
        result = adapter.export(model, sample, opset=request["opset"])
        (work / ONNX_FILE).write_bytes(result.onnx_bytes)
        used_layout = None
        if sample is None:
            sample = _synthesize(result.onnx_bytes)
            used_layout = _save_arrays(work / USED_SAMPLE_FILE, sample)
        native = adapter.native_predict(model, sample)
    native_layout = _save_arrays(work / NATIVE_FILE, native)
    relayed = [
        {"category": w.category.__name__, "message": str(w.message)}
        for w in caught
        if (w.category.__module__ or "").startswith("modelfn")
    ]
    out = {
        "adapter": adapter.name,
        "framework": result.framework.to_builtins(),
        "labels": _plain_labels(result.labels),
        "notes": result.notes,
        "native": native_layout,
        "used_sample": used_layout,
        "warnings": relayed,
    }
    (work / RESULT_FILE).write_text(json.dumps(out))


def _synthesize(onnx_bytes: bytes) -> dict[str, Any]:
    """A sample from the exported schema (needs ``onnx`` in this interpreter)."""
    from modelfn.bundle.schema import read_schema
    from modelfn.parity import synthesize_sample

    return synthesize_sample(read_schema(onnx_bytes).inputs)


def _plain_labels(labels: list[Any] | None) -> list[str | int] | None:
    """Labels as JSON strings/ints (numpy scalars included)."""
    if labels is None:
        return None
    return [v.item() if hasattr(v, "item") else v for v in labels]


def _load_arrays(path: Path, layout: dict[str, Any]) -> Any:
    import numpy as np

    with np.load(path, allow_pickle=False) as npz:
        arrays = [npz[f"arr_{i}"] for i in range(int(layout["count"]))]
    names = layout["names"]
    return arrays[0] if names is None else dict(zip(names, arrays, strict=True))


def _save_arrays(path: Path, arrays: dict[str, Any]) -> dict[str, Any]:
    """Save as ``arr_0..`` without pickle: object arrays of strings become fixed-width strings."""
    import numpy as np

    from modelfn.errors import PackagingError

    values = []
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.hasobject:
            if not all(isinstance(v, str) for v in array.flat):
                raise PackagingError(f"output {name!r} holds Python objects other than strings; cannot hand it back")
            array = array.astype(str)
        values.append(array)
    np.savez(path, *values)
    return {"names": list(arrays), "count": len(values)}
