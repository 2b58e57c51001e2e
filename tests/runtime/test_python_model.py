"""PythonModel: custom code executed from bytes only, fed verified files, held to the signed schema."""

from __future__ import annotations

import datetime as dt
import io
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfn.bundle.manifest import FrameworkInfo, Manifest, TensorSpec
from modelfn.errors import ModelfnError, ModelNotReady, UnprocessableInput, UnsafeBundleError
from modelfn.runtime.base import Model
from modelfn.runtime.python_model import MODULE_PREFIX, BundleFiles, PythonModel, exec_module

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0

LINEAR = textwrap.dedent(
    '''
    """y = x @ w, with the weights from weights.npz; a dataclass state proves the module is importable by name."""
    from __future__ import annotations

    import dataclasses
    import numpy as np

    @dataclasses.dataclass(frozen=True)
    class State:
        w: np.ndarray

    def load(files):
        return State(files.load_npz("weights.npz")["w"])

    def predict(state, inputs):
        x = inputs["x"]
        if np.isnan(x).any():
            raise ValueError("NaN input")
        if (x < -1000).any():
            raise RuntimeError("a bug")
        return {"y": x @ state.w, "label": np.where(x[:, 0] > 0, "pos", "neg"), "extra": 1}
    '''
).encode()


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _manifest(outputs: list[TensorSpec] | None = None) -> Manifest:
    return Manifest(
        name="lin",
        version=3,
        runtime="python",
        artifact="model.py",
        framework=FrameworkInfo(name="custom"),
        inputs=[TensorSpec(name="x", dtype="float32", shape=[-1, 4])],
        outputs=outputs
        or [TensorSpec(name="y", dtype="float32", shape=[-1, 3]), TensorSpec(name="label", dtype="string", shape=[-1])],
        created_at=dt.datetime.now(dt.UTC),
        modelfn_version="test",
    )


def _files(source: bytes = LINEAR) -> dict[str, bytes]:
    return {"model.py": source, "weights.npz": _npz(w=W), "manifest.json": b"{}"}


def test_predicts_from_bytes_and_satisfies_the_model_protocol() -> None:
    # GIVEN a module and its weights as bytes
    model = PythonModel(_files(), _manifest())
    x = np.array([[1, 2, 3, 4], [-1, 0, 0, 0]], np.float32)
    # WHEN it predicts (and warms up)
    model.warm_up()
    out = model.predict({"x": x})
    # THEN outputs are the declared ones, typed as declared; undeclared extras are dropped
    served: Model = model
    assert served.output_names == ["y", "label"] and list(out) == ["y", "label"]
    np.testing.assert_allclose(out["y"], x @ W, rtol=1e-6)
    assert out["label"].dtype == object and out["label"].tolist() == ["pos", "neg"]
    assert list(model.predict({"x": x}, ["label"])) == ["label"]


def test_exec_touches_no_path_and_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an empty working directory and the interpreter's import path
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    # WHEN a module is executed from bytes
    module = exec_module(LINEAR, filename="<bundle lin v3>/model.py")
    # THEN sys.path is unchanged, nothing was written, the module has no file to re-open, and it is
    # registered under a private name (so dataclasses and typing resolve it)
    assert sys.path == path_before
    assert os.listdir(tmp_path) == []
    assert not hasattr(module, "__file__")
    assert module.__name__.startswith(MODULE_PREFIX) and sys.modules[module.__name__] is module


def test_tracebacks_name_the_bundle_file() -> None:
    # GIVEN a module whose body raises
    source = b"x = 1\nraise RuntimeError('boom')\n"
    before = set(sys.modules)
    # WHEN it is executed
    with pytest.raises(RuntimeError) as info:
        exec_module(source, filename="<bundle lin v3>/model.py")
    # THEN the traceback points at the bundle's file and line, and the failed module is not left registered
    frame = info.traceback[-1]
    assert str(frame.path) == "<bundle lin v3>/model.py" and frame.lineno == 1
    assert set(sys.modules) == before


def test_bundle_files_are_read_only_bytes_and_refuse_pickled_arrays() -> None:
    # GIVEN data files: a plain npz, an npz holding an object array, json and an npy
    npy = io.BytesIO()
    np.save(npy, np.arange(3))
    files = BundleFiles(
        {
            "w.npz": _npz(w=W),
            "objects.npz": _npz(o=np.array([{"a": 1}], dtype=object)),
            "meta.json": b'{"k": [1, 2]}',
            "v.npy": npy.getvalue(),
        }
    )
    # WHEN / THEN they read as bytes, streams, arrays and JSON
    np.testing.assert_array_equal(files.load_npz("w.npz")["w"], W)
    np.testing.assert_array_equal(files.load_npy("v.npy"), np.arange(3))
    assert files.load_json("meta.json") == {"k": [1, 2]}
    assert files.open("meta.json").read() == files.read_bytes("meta.json") == files["meta.json"]
    assert sorted(files) == ["meta.json", "objects.npz", "v.npy", "w.npz"] and len(files) == 4
    # AND the mapping cannot be changed, a missing name lists the files, and pickled arrays never load
    with pytest.raises(TypeError):
        files["w.npz"] = b""  # type: ignore[index]
    with pytest.raises(KeyError, match="meta.json"):
        files.read_bytes("absent.npz")
    with pytest.raises(ValueError, match="allow_pickle"):
        files.load_npz("objects.npz")


def test_bundle_files_read_safetensors() -> None:
    import safetensors.numpy as st

    # GIVEN safetensors bytes
    files = BundleFiles({"w.safetensors": st.save({"w": W})})
    # WHEN / THEN they load as numpy arrays
    np.testing.assert_array_equal(files.load_safetensors("w.safetensors")["w"], W)


@pytest.mark.parametrize(
    ("feeds", "field", "message"),
    [
        ({"z": np.zeros((1, 4), np.float32)}, "z", "unknown input"),
        ({}, "x", "missing input"),
        ({"x": np.zeros((1, 5), np.float32)}, "x", r"shape \[1, 5\], expected \['\?', 4\]"),
        ({"x": np.array([["a", "b", "c", "d"]])}, "x", "dtype"),
    ],
)
def test_inputs_are_checked_like_onnx_models(feeds: dict[str, Any], field: str, message: str) -> None:
    # GIVEN a ready custom model
    model = PythonModel(_files(), _manifest())
    # WHEN it gets feeds that do not fit the schema
    with pytest.raises(UnprocessableInput, match=message) as info:
        model.predict(feeds)
    # THEN it is a 422 naming the field, as for ONNX models
    assert info.value.field == field and info.value.status_code == 422


def test_value_errors_are_422_and_bugs_are_not() -> None:
    # GIVEN a module that raises ValueError for NaN and RuntimeError for a bug
    model = PythonModel(_files(), _manifest())
    # WHEN / THEN a value it rejects is the caller's 422; a bug stays an error for the server
    with pytest.raises(UnprocessableInput, match="rejected this input"):
        model.predict({"x": np.full((1, 4), np.nan, np.float32)})
    with pytest.raises(RuntimeError, match="a bug"):
        model.predict({"x": np.full((1, 4), -5000, np.float32)})
    # AND an output that is not one of the model's is refused up front
    with pytest.raises(UnprocessableInput, match="unknown output"):
        model.predict({"x": np.ones((1, 4), np.float32)}, ["nope"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (TensorSpec(name="missing", dtype="float32", shape=[-1]), "did not return output 'missing'"),
        (TensorSpec(name="y", dtype="int64", shape=[-1, 3]), "dtype float32, the manifest declares int64"),
        (TensorSpec(name="y", dtype="float32", shape=[-1, 2]), r"shape \[1, 3\]"),
        (TensorSpec(name="label", dtype="float32", shape=[-1]), "dtype <U3"),
    ],
)
def test_outputs_must_match_the_manifest(spec: TensorSpec, message: str) -> None:
    # GIVEN a manifest whose outputs the module does not honour
    model = PythonModel(_files(), _manifest([spec]))
    # WHEN it predicts
    with pytest.raises(ModelfnError, match=message) as info:
        model.predict({"x": np.ones((1, 4), np.float32)})
    # THEN the server reports its own fault (5xx), not the caller's
    assert info.value.status_code >= 500


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (b"def load(files):\n    return None\n", "must define predict"),
        (b"predict = 1\ndef load(files):\n    return None\n", "must define predict"),
        (b"def predict(s, i):\n    return {}\n", "must define load"),
        (b"def load(files):\n    return files.load_npz('absent.npz')\n\ndef predict(s, i):\n    return {}\n", "absent"),
        (b"import not_a_module_anywhere\n", "ModuleNotFoundError"),
        (b"def broken(:\n", "SyntaxError"),
    ],
)
def test_a_module_that_cannot_load_is_not_ready(source: bytes, message: str) -> None:
    # GIVEN custom code that lacks an entry point, fails in load() or at import
    # WHEN it is built
    with pytest.raises(ModelNotReady, match=message) as info:
        PythonModel(_files(source), _manifest())
    # THEN the model is not ready (503), with the reason in the message
    assert info.value.status_code == 503


def test_warm_up_uses_the_module_hook_and_reports_failures() -> None:
    # GIVEN a module with its own warm_up that records the call, and one whose predict fails on zeros
    hooked = LINEAR + b"\ncalls = []\ndef warm_up(state):\n    calls.append(state)\n"
    fragile = LINEAR.replace(b"if np.isnan(x).any():", b"if not x.any():")
    # WHEN each warms up
    model = PythonModel(_files(hooked), _manifest())
    model.warm_up()
    # THEN the hook ran once with the loaded state, and a failing default warm-up is "not ready"
    assert len(model._code.module.calls) == 1
    with pytest.raises(ModelNotReady, match="warm-up failed"):
        PythonModel(_files(fragile), _manifest()).warm_up()


def test_only_python_manifests_with_their_module_are_accepted() -> None:
    # GIVEN an ONNX manifest, and a python manifest whose module is not among the files
    onnx_manifest = _manifest().replace(runtime="onnx", artifact="model.onnx")
    # WHEN / THEN both are refused before anything runs
    with pytest.raises(UnsafeBundleError, match="not a custom-code bundle"):
        PythonModel(_files(), onnx_manifest)
    with pytest.raises(UnsafeBundleError, match="not a verified file"):
        PythonModel({"weights.npz": b""}, _manifest())
