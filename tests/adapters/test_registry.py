"""The registry resolves adapters lazily, detects by object type and file suffix, and fails helpfully."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from modelfn.adapters.onnx_file import OnnxFileAdapter
from modelfn.adapters.registry import ADAPTERS, detect, get_adapter, resolve
from modelfn.errors import PackagingError


class AlwaysAdapter(OnnxFileAdapter):
    """A user adapter that claims every input (to show custom adapters are tried first)."""

    name: ClassVar[str] = "always"

    @classmethod
    def detects(cls, model: Any) -> bool:
        return True


class NotAnAdapter:
    """Has a name but none of the protocol's methods."""

    name = "broken"


def test_get_adapter_by_registry_name() -> None:
    # GIVEN the built-in registry names
    # WHEN each is resolved
    adapters = {name: get_adapter(name) for name in ADAPTERS}
    # THEN each instance reports the name it was registered under
    assert {name: a.name for name, a in adapters.items()} == {name: name for name in ADAPTERS}
    assert {"onnx", "sklearn", "torch", "tensorflow", "xgboost", "lightgbm", "spark", "mxnet", "custom"} <= set(
        ADAPTERS
    )
    assert type(adapters["sklearn"]).__name__ == "SklearnAdapter"


def test_get_adapter_accepts_a_dotted_path() -> None:
    # GIVEN an adapter class outside the registry, named as pkg.mod:Class
    # WHEN it is requested
    adapter = get_adapter("tests.adapters.test_registry:AlwaysAdapter")
    # THEN that exact class is instantiated
    assert type(adapter) is AlwaysAdapter


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("tensorflowz", "supported: onnx, xgboost, lightgbm, sklearn"),
        ("tests.adapters.no_such_module:X", "cannot import adapter module"),
        ("tests.adapters.test_registry:Missing", "has no class 'Missing'"),
        ("tests.adapters.test_registry:NotAnAdapter", "lacks 'detects'"),
    ],
)
def test_bad_adapter_references_are_refused(ref: str, expected: str) -> None:
    # GIVEN an unknown name, an unimportable module, a missing class or a class that is not an adapter
    # WHEN it is resolved
    with pytest.raises(PackagingError) as info:
        resolve(ref)
    # THEN the error says which and why
    assert expected in info.value.message
    assert info.value.field == "framework"


@pytest.mark.framework
@pytest.mark.slow
def test_detect_by_object_type(sklearn_classifier: tuple[Any, Any], tiny_onnx_path: Path) -> None:
    import onnx

    # GIVEN a fitted scikit-learn pipeline and an in-memory ONNX model
    model, _ = sklearn_classifier
    proto = onnx.load_model(str(tiny_onnx_path))
    # WHEN the registry is asked which adapter fits
    # THEN each goes to its framework
    assert detect(model).name == "sklearn"
    assert detect(proto).name == "onnx"


@pytest.mark.parametrize(("suffix", "expected"), [(".onnx", "onnx"), (".skops", "sklearn"), (".joblib", "sklearn")])
def test_detect_by_file_suffix(tmp_path: Path, suffix: str, expected: str) -> None:
    # GIVEN an existing file with a framework's suffix (contents are not read to decide)
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x00")
    # WHEN the registry detects by path (str or Path)
    # THEN the suffix decides
    assert detect(path).name == expected
    assert detect(str(path)).name == expected


def test_unknown_object_lists_supported_frameworks() -> None:
    # GIVEN an object no adapter knows
    # WHEN detection runs
    with pytest.raises(PackagingError) as info:
        detect({"weights": [1, 2, 3]})
    # THEN the message names the type and lists every supported framework and the override
    assert "builtins.dict" in info.value.message
    assert f"supported frameworks: {', '.join(ADAPTERS)}." in info.value.message
    assert "framework=" in info.value.message


def test_unknown_file_suffix_and_missing_file(tmp_path: Path) -> None:
    # GIVEN a file with an unknown suffix, and a path that does not exist
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"\x00")
    # WHEN detection runs
    # THEN the first names the file and the supported frameworks, the second says it is missing
    with pytest.raises(
        PackagingError, match=r"file 'model.bin'; supported frameworks: onnx, xgboost, lightgbm, sklearn, spark, torch"
    ):
        detect(odd)
    with pytest.raises(PackagingError, match="does not exist"):
        detect(tmp_path / "absent.onnx")


def test_custom_adapters_are_tried_first(tiny_onnx_path: Path) -> None:
    # GIVEN a .onnx file the built-in onnx adapter would take, and a custom adapter (class or dotted path)
    # WHEN detection runs with the custom adapter supplied
    # THEN the custom one wins
    assert type(detect(tiny_onnx_path, custom=[AlwaysAdapter])) is AlwaysAdapter
    assert type(detect(tiny_onnx_path, custom=["tests.adapters.test_registry:AlwaysAdapter"])) is AlwaysAdapter
    assert type(detect(tiny_onnx_path)) is OnnxFileAdapter


def test_resolving_one_adapter_imports_no_other_framework() -> None:
    # GIVEN a fresh interpreter
    code = (
        "import sys; from modelfn.adapters.registry import get_adapter, detect; get_adapter('onnx');"
        " get_adapter('sklearn'); print(sorted(m for m in ('sklearn', 'skl2onnx', 'onnx', 'skops', 'torch')"
        " if m in sys.modules))"
    )
    # WHEN both adapters are resolved (not used)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # THEN no framework or converter was imported
    assert out.strip() == "[]"
