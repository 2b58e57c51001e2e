"""The packaging pipeline: adapter choice, output-directory rules, parity gate and the manifest it writes."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import modelfn
from modelfn.adapters.base import ExportResult, SampleInput
from modelfn.adapters.onnx_file import OnnxFileAdapter
from modelfn.bundle.manifest import Manifest
from modelfn.errors import ConfigError, PackagingError, ParityError
from modelfn.packaging import package
from tests.fixtures.models import tiny_onnx_expected

pytestmark = pytest.mark.framework


class PerturbedOnnxAdapter(OnnxFileAdapter):
    """The real ONNX adapter, but its reference answer is off by 0.5 at row 1, column 2."""

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, npt.NDArray[Any]]:
        out = super().native_predict(model, sample)
        out["y"] = out["y"].copy()
        out["y"][1, 2] += 0.5
        return out


class PickleExportAdapter(OnnxFileAdapter):
    """An adapter that (wrongly) hands back a pickle stream as its artifact."""

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        real = super().export(model, sample, opset=opset)
        return ExportResult(onnx_bytes=pickle.dumps({"weights": [1, 2]}), framework=real.framework)


def test_package_writes_the_manifest_it_returns(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN a model file
    before = dt.datetime.now(dt.UTC)
    # WHEN packaged through the top-level entry point
    manifest = modelfn.package(tiny_onnx_path, None, tmp_path / "out", name="tiny", version=7)
    # THEN manifest.json on disk is the returned manifest, stamped with UTC time and modelfn's version
    on_disk = (tmp_path / "out" / "manifest.json").read_bytes()
    assert on_disk == manifest.to_json() and Manifest.from_json(on_disk) == manifest
    assert manifest.created_at.tzinfo is not None and manifest.created_at >= before
    assert (manifest.modelfn_version, manifest.version) == (modelfn.__version__, 7)


def test_explicit_framework_overrides_detection(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN an ONNX model saved under a suffix no adapter claims
    odd = tmp_path / "model.bin"
    odd.write_bytes(tiny_onnx_path.read_bytes())
    # WHEN packaged without a framework, detection fails and lists the frameworks
    with pytest.raises(PackagingError, match="supported frameworks: onnx, .*sklearn"):
        package(odd, None, tmp_path / "a", name="tiny")
    # WHEN packaged with framework="onnx"
    manifest = package(odd, None, tmp_path / "b", name="tiny", framework="onnx")
    # THEN the named adapter is used
    assert manifest.framework.name == "onnx" and (tmp_path / "b" / "model.onnx").is_file()


def test_explicit_framework_that_cannot_load_the_file(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN an .onnx file forced through the sklearn adapter
    # WHEN packaged
    # THEN the sklearn adapter says which files it loads
    with pytest.raises(PackagingError, match=r"sklearn: cannot load tiny\.onnx; expected \.skops"):
        package(tiny_onnx_path, None, tmp_path / "b", name="tiny", framework="sklearn")


def test_parity_failure_shows_the_worst_element_and_writes_nothing(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN an adapter whose native answer differs from onnxruntime's by 0.5 at [1, 2]
    x = np.ones((3, 4), dtype=np.float32)
    # WHEN packaged with it (named by dotted path)
    with pytest.raises(ParityError) as info:
        package(tiny_onnx_path, x, tmp_path / "b", name="tiny", framework="tests.test_packaging:PerturbedOnnxAdapter")
    # THEN the message names output, index, native and onnx values; no bundle directory appears
    expected_y = float(tiny_onnx_expected(x)[1, 2])
    message = info.value.message
    assert "output 'y' at index [1, 2]" in message
    native_value = float(message.split("native ")[1].split(",")[0])
    onnx_value = float(message.split("onnx ")[1].split(" ")[0])
    assert onnx_value == pytest.approx(expected_y, abs=1e-5)
    assert native_value == pytest.approx(expected_y + 0.5, abs=1e-5)
    assert not (tmp_path / "b").exists()


def test_loose_tolerance_lets_the_same_difference_pass(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN the same 0.5 perturbation and atol=1
    # WHEN packaged
    manifest = package(
        tiny_onnx_path,
        np.ones((3, 4), dtype=np.float32),
        tmp_path / "b",
        name="tiny",
        framework="tests.test_packaging:PerturbedOnnxAdapter",
        atol=1.0,
    )
    # THEN the difference is recorded in the manifest's parity report
    assert manifest.parity is not None
    assert manifest.parity.max_abs_diff == pytest.approx(0.5, abs=1e-5) and manifest.parity.atol == 1.0


def test_pickle_artifact_is_never_written(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN an adapter that exports a pickle stream
    # WHEN packaged
    with pytest.raises(PackagingError, match="unsafe artifact.*pickle"):
        package(tiny_onnx_path, None, tmp_path / "b", name="tiny", framework="tests.test_packaging:PickleExportAdapter")
    # THEN nothing is written
    assert not (tmp_path / "b").exists()


def test_output_directory_rules(tiny_onnx_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # GIVEN a previous package run in out/
    package(tiny_onnx_path, None, out, name="tiny", version=1)
    # WHEN packaging again into it
    manifest = package(tiny_onnx_path, None, out, name="tiny", version=2)
    # THEN the previous files are replaced
    assert Manifest.from_json((out / "manifest.json").read_bytes()).version == manifest.version == 2
    # GIVEN any other file there (a signature, a note)
    for stray in ("model.sig", "notes.txt"):
        (out / stray).write_text("x")
        # WHEN packaging into it
        with pytest.raises(PackagingError, match=f"not empty \\({stray}\\)") as info:
            package(tiny_onnx_path, None, out, name="tiny", version=3)
        # THEN it is refused and the existing bundle is untouched
        assert info.value.field == "out_dir"
        assert Manifest.from_json((out / "manifest.json").read_bytes()).version == 2
        (out / stray).unlink()
    # AND a regular file as out_dir is refused
    with pytest.raises(PackagingError, match="is not a directory"):
        package(tiny_onnx_path, None, tiny_onnx_path, name="tiny")


def test_name_and_version_are_validated_before_any_work(tiny_onnx_path: Path, tmp_path: Path) -> None:
    # GIVEN an invalid model name, then version 0
    # WHEN packaged
    # THEN each is refused naming the field, and nothing is written
    with pytest.raises(ConfigError) as info:
        package(tiny_onnx_path, None, tmp_path / "b", name="../Tiny")
    assert info.value.field == "name"
    with pytest.raises(PackagingError, match="version must be >= 1"):
        package(tiny_onnx_path, None, tmp_path / "b", name="tiny", version=0)
    assert not (tmp_path / "b").exists()
