"""Converting in another interpreter: the generic path, its isolation, and its errors.

The "other" interpreter here is this venv's own Python run as a subprocess (the MXNet test in
tests/adapters/test_mxnet_symbol.py uses a genuinely separate environment); what matters for
these tests is the process boundary: what crosses it, where the model is loaded, and how
failures come back.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelfn.adapters.base import PickleLoadWarning
from modelfn.bundle.manifest import Manifest
from modelfn.converter_process import convert_in_interpreter
from modelfn.errors import PackagingError
from modelfn.packaging import package
from tests.fixtures.bundles import publish, serve
from tests.fixtures.keys import SigningKey

OTHER_PYTHON = Path(sys.executable)
Fitted = tuple[Any, npt.NDArray[np.float32]]


class _LoadRecorder:
    """Unpickles to the real model via ``eval``, writing the loading process's pid on the way (builtins only)."""

    def __init__(self, marker: Path, real: Path) -> None:
        self.marker, self.real = marker, real

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        code = (
            f"(__import__('pathlib').Path({str(self.marker)!r}).write_text(str(__import__('os').getpid())),"
            f" __import__('joblib').load({str(self.real)!r}))[1]"
        )
        return eval, (code,)


PROBE_MODULE = """
from __future__ import annotations

import json, os, sys

from modelfn.adapters.scikit_learn import SklearnAdapter
from modelfn.errors import PackagingError


class ProbeAdapter(SklearnAdapter):
    def load(self, path, *, allow_pickle):
        facts = {
            "pid": os.getpid(),
            "source_root": sorted(os.listdir(sys.path[0])),
            "pythonpath": os.environ.get("PYTHONPATH"),
            "heavy": sorted(m for m in ("onnxruntime", "fastapi", "starlette", "modelfn.serving") if m in sys.modules),
        }
        raise PackagingError(json.dumps(facts), field="probe")


class NoisyExportAdapter(SklearnAdapter):
    def export(self, model, sample, *, opset):
        raise RuntimeError("converter exploded on purpose")
"""
"""Adapters that report on the worker from inside; a module of their own so the worker imports only them."""


@pytest.fixture
def probe_adapters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``modelfn_probe`` importable here (sys.path) and in the worker (its working directory)."""
    directory = tmp_path / "probe"
    directory.mkdir()
    (directory / "modelfn_probe.py").write_text(PROBE_MODULE)
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.chdir(directory)
    return "modelfn_probe"


def _fake_interpreter(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


@pytest.mark.framework
@pytest.mark.slow
def test_pickle_is_loaded_only_in_the_converter_process(
    sklearn_classifier: Fitted, tmp_path: Path, signing_key: SigningKey
) -> None:
    import joblib

    # GIVEN a pickle whose unpickling writes the loading process's pid to a marker file
    model, x = sklearn_classifier
    real, marker, path = tmp_path / "real.joblib", tmp_path / "loaded-by.pid", tmp_path / "iris.pkl"
    joblib.dump(model, real)
    path.write_bytes(pickle.dumps(_LoadRecorder(marker, real)))
    # WHEN it is packaged through a converter interpreter, with consent
    with pytest.warns(PickleLoadWarning, match="arbitrary code"):
        manifest = package(
            path, x, tmp_path / "b", name="iris", allow_pickle=True, converter_python=OTHER_PYTHON, framework="sklearn"
        )
    # THEN the payload ran in another process, never in this one
    assert marker.is_file() and int(marker.read_text()) != os.getpid()
    # AND the parity report, computed here from the worker's native outputs, is in the manifest
    assert Manifest.from_json((tmp_path / "b" / "manifest.json").read_bytes()) == manifest
    parity = manifest.parity
    assert parity is not None and parity.samples == len(x) and parity.label_agreement == 1.0
    assert parity.max_abs_diff <= 1e-4 and set(parity.outputs) == {"probabilities"}
    assert manifest.framework.name == "sklearn" and manifest.labels == [0, 1, 2]
    # AND the signed, pushed bundle serves sklearn's answers over HTTP
    client = serve(publish(tmp_path / "b", str(tmp_path / "store"), signing_key).settings)
    try:
        response = client.post("/predict", json={"instances": x.tolist(), "return_labels": True})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"]["label"] == model.predict(x).tolist()
    np.testing.assert_allclose(
        body["predictions"]["probabilities"], model.predict_proba(x), atol=parity.atol, rtol=parity.rtol
    )
    assert body["labels"] == model.predict(x).tolist()


@pytest.mark.framework
@pytest.mark.slow
def test_detected_adapter_and_string_labels_cross_the_boundary(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.base import clone
    from sklearn.datasets import load_iris

    # GIVEN a .skops classifier trained on string class names (object arrays natively)
    template, x = sklearn_classifier
    data = load_iris()
    model = clone(template).fit(data.data, data.target_names[data.target])
    path = tmp_path / "names.skops"
    sio.dump(model, path)
    # WHEN packaged through a converter interpreter, with the framework detected here
    manifest = package(path, x, tmp_path / "b", name="names", converter_python=OTHER_PYTHON)
    # THEN labels come back as strings and agree on every row
    assert manifest.framework.name == "sklearn"
    assert manifest.labels == ["setosa", "versicolor", "virginica"]
    assert manifest.parity is not None and manifest.parity.label_agreement == 1.0


@pytest.mark.framework
def test_sample_is_synthesized_by_the_worker_when_none_is_given(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN an ONNX model and no sample
    # WHEN packaged through a converter interpreter
    manifest = package(tiny_onnx_path, None, tmp_path / "b", name="tiny", converter_python=OTHER_PYTHON)
    # THEN the worker's synthesized sample (2 rows) was used for parity
    assert manifest.parity is not None and manifest.parity.samples == 2 and manifest.parity.max_abs_diff == 0.0


@pytest.mark.framework
def test_worker_is_isolated_and_lean(
    sklearn_classifier: Fitted, tmp_path: Path, probe_adapters: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import joblib

    # GIVEN a PYTHONPATH in this process's environment and a probing adapter
    model, x = sklearn_classifier
    joblib.dump(model, tmp_path / "m.joblib")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    # WHEN the probe runs in the converter interpreter
    with pytest.raises(PackagingError) as info:
        package(
            tmp_path / "m.joblib", x, tmp_path / "b", name="m", converter_python=OTHER_PYTHON,
            framework=f"{probe_adapters}:ProbeAdapter",
        )  # fmt: skip
    # THEN its error comes back with its field, from another process that sees only the modelfn package,
    # no PYTHONPATH, and none of the serving stack
    assert info.value.field == "probe"
    facts = json.loads(info.value.message)
    assert facts["pid"] != os.getpid()
    assert facts["source_root"] == ["modelfn"]
    assert facts["pythonpath"] is None
    assert facts["heavy"] == []
    assert not (tmp_path / "b").exists()


@pytest.mark.framework
def test_modelfn_errors_in_the_worker_keep_message_and_field(sklearn_classifier: Fitted, tmp_path: Path) -> None:
    import joblib

    # GIVEN a pickle and no consent
    model, x = sklearn_classifier
    joblib.dump(model, tmp_path / "m.joblib")
    # WHEN packaged through a converter interpreter
    with pytest.raises(PackagingError, match="allow_pickle=True") as info:
        package(tmp_path / "m.joblib", x, tmp_path / "b", name="m", converter_python=OTHER_PYTHON)
    # THEN the worker's refusal is the error here, field included, and nothing is written
    assert info.value.field == "allow_pickle"
    assert not (tmp_path / "b").exists()


@pytest.mark.framework
def test_a_crash_in_the_worker_shows_its_stderr(
    sklearn_classifier: Fitted, tmp_path: Path, probe_adapters: str
) -> None:
    import joblib

    # GIVEN an adapter whose export raises a non-modelfn exception
    model, x = sklearn_classifier
    joblib.dump(model, tmp_path / "m.joblib")
    # WHEN packaged through a converter interpreter
    with pytest.raises(PackagingError) as info:
        package(
            tmp_path / "m.joblib", x, tmp_path / "b", name="m", allow_pickle=True, converter_python=OTHER_PYTHON,
            framework=f"{probe_adapters}:NoisyExportAdapter",
        )  # fmt: skip
    # THEN the error names the exit status and carries the worker's traceback tail
    assert "exit status 1" in info.value.message
    assert "RuntimeError: converter exploded on purpose" in info.value.message


def test_non_zero_exit_without_a_result(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN an "interpreter" that prints to stderr and exits 7
    python = _fake_interpreter(tmp_path, "echo 'no mxnet here' >&2; exit 7")
    # WHEN used for a conversion
    # THEN the exit status and the stderr tail are in the error
    with pytest.raises(PackagingError, match=r"failed \(exit status 7\):\nno mxnet here"):
        convert_in_interpreter(python, "onnx", tiny_onnx_path, None)


def test_timeout_is_a_packaging_error(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN an "interpreter" that never finishes in time
    python = _fake_interpreter(tmp_path, "exec sleep 30")
    # WHEN the conversion is given one second
    with pytest.raises(PackagingError, match="did not finish within 1 s") as info:
        package(tiny_onnx_path, None, tmp_path / "b", name="t", converter_python=python, converter_timeout=1)
    # THEN the error names the timeout setting
    assert info.value.field == "converter_timeout"


def test_exit_zero_without_result_is_refused(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN an "interpreter" that succeeds but writes nothing
    python = _fake_interpreter(tmp_path, "exit 0")
    # WHEN used for a conversion
    # THEN nothing is trusted
    with pytest.raises(PackagingError, match="left no result.json"):
        convert_in_interpreter(python, "onnx", tiny_onnx_path, None)


@pytest.mark.parametrize(
    ("python", "kwargs", "field", "match"),
    [
        ("/nonexistent/bin/python", {}, "python", "not an executable file"),
        (None, {"options": {"weights": object()}}, "option", "option 'weights' .* cannot be passed"),
        (None, {"sample": np.array([["a", 1]], dtype=object)}, "sample", "dtype object"),
        (None, {"timeout": 0}, "converter_timeout", "must be > 0"),
    ],
)
def test_bad_arguments_are_refused_before_starting(
    tiny_onnx_path: Path, python: str | None, kwargs: dict[str, Any], field: str, match: str
) -> None:
    # GIVEN an argument that cannot work
    sample = kwargs.pop("sample", None)
    # WHEN a conversion is requested
    with pytest.raises(PackagingError, match=match) as info:
        convert_in_interpreter(python or OTHER_PYTHON, "onnx", tiny_onnx_path, sample, **kwargs)
    # THEN it is refused with the field named
    assert info.value.field == field


def test_objects_cannot_cross_to_a_converter(tmp_path: Path) -> None:
    import onnx

    from tests.fixtures.models import make_tiny_onnx

    # GIVEN an in-memory model object
    model = onnx.load_model_from_string(make_tiny_onnx())
    # WHEN packaged with a converter interpreter
    # THEN the error asks for a file
    with pytest.raises(PackagingError, match="converts model files") as info:
        package(model, None, tmp_path / "b", name="t", converter_python=OTHER_PYTHON)
    assert info.value.field == "model"
