"""Serve a bundle whose artifact is Python code (hand-written pre/post-processing), from verified bytes only.

Custom code is the one opt-in exception to "a bundle is data": the module runs with the process's
rights. So the loader builds a ``PythonModel`` only after every file matched its signed digest,
and only when ``allow_custom_code`` is on. The module is compiled from those exact bytes and
executed into a fresh module object: nothing is imported by name, ``sys.path`` is untouched and
nothing is written to disk. Its data files reach it as ``BundleFiles``, an in-memory, read-only
view of the same verified bytes that loads ``.npz``/``.npy`` without pickle and ``.safetensors``.

The module contract (``model.py``)::

    def load(files: BundleFiles) -> State: ...            # once, at cold start
    def predict(state: State, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
    def warm_up(state: State) -> None: ...                # optional; default: predict on zeros

Inputs are checked against the signed schema exactly as for ONNX models; outputs must be the
declared ones, with compatible dtypes and shapes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import linecache
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelfn.bundle.layout import MANIFEST_FILE
from modelfn.errors import ModelfnError, ModelNotReady, UnprocessableInput, UnsafeBundleError
from modelfn.runtime.base import check_output_names, validate_feeds

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest, TensorSpec

MODULE_PREFIX = "_modelfn_custom_"
"""``sys.modules`` name prefix of executed bundle modules (registered so dataclasses and typing work)."""
INPUT_ERRORS = (ValueError, IndexError, ArithmeticError)
"""What custom ``predict`` raises for values it cannot handle: a 422 for the caller, not a 500."""

_counter = itertools.count(1)


class BundleFiles(Mapping[str, bytes]):
    """The bundle's verified data files by name, read-only and in memory (no path to re-open)."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = types.MappingProxyType(dict(files))

    def __getitem__(self, name: str) -> bytes:
        try:
            return self._files[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a file of this bundle; files: {sorted(self._files)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def read_bytes(self, name: str) -> bytes:
        """The file's verified bytes."""
        return self[name]

    def read_text(self, name: str, encoding: str = "utf-8") -> str:
        """The file decoded as text."""
        return self[name].decode(encoding)

    def open(self, name: str) -> io.BytesIO:
        """A fresh binary stream over the file (for readers that want a file object)."""
        return io.BytesIO(self[name])

    def load_json(self, name: str) -> Any:
        """The file parsed as JSON."""
        import json

        return json.loads(self[name])

    def load_npy(self, name: str) -> npt.NDArray[Any]:
        """One ``.npy`` array; object (pickled) arrays are refused."""
        import numpy as np

        array: npt.NDArray[Any] = np.load(self.open(name), allow_pickle=False)
        return array

    def load_npz(self, name: str) -> dict[str, npt.NDArray[Any]]:
        """Every array of an ``.npz`` archive by name; object (pickled) arrays are refused."""
        import numpy as np

        with np.load(self.open(name), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}

    def load_safetensors(self, name: str) -> dict[str, npt.NDArray[Any]]:
        """Every tensor of a ``.safetensors`` file as numpy arrays (needs the ``safetensors`` package)."""
        import importlib

        try:
            reader: Any = importlib.import_module("safetensors.numpy")
        except ImportError as exc:
            raise ImportError(
                f"{name}: reading .safetensors needs the 'safetensors' package in the serving environment;"
                " install it there, or store the weights as .npz"
            ) from exc
        tensors: dict[str, npt.NDArray[Any]] = reader.load(self[name])
        return tensors


@dataclasses.dataclass(frozen=True)
class CustomCode:
    """An executed bundle module, its ``load`` result and its entry points."""

    module: types.ModuleType
    state: Any
    predict: Callable[[Any, dict[str, Any]], Any]
    warm_up: Callable[[Any], Any] | None


def exec_module(source: bytes, *, filename: str) -> types.ModuleType:
    """Compile and execute ``source`` into a new module object; no import system, no path, no bytecode file."""
    digest = hashlib.sha256(source).hexdigest()[:12]
    name = f"{MODULE_PREFIX}{digest}_{next(_counter)}"
    code = compile(source, filename, "exec", dont_inherit=True)
    text = source.decode("utf-8", errors="replace")
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)  # readable tracebacks
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses and typing look classes' modules up by name
    try:
        exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_code(source: bytes, files: Mapping[str, bytes], *, filename: str) -> CustomCode:
    """Execute the module, check its entry points and call ``load(BundleFiles(files))``."""
    module = exec_module(source, filename=filename)
    load, predict = getattr(module, "load", None), getattr(module, "predict", None)
    warm_up = getattr(module, "warm_up", None)
    for entry, value in (("load", load), ("predict", predict)):
        if not callable(value):
            raise AttributeError(f"{filename} must define {entry}(); see modelfn.runtime.python_model for the contract")
    if warm_up is not None and not callable(warm_up):
        raise AttributeError(f"{filename}: warm_up must be a function when defined")
    assert load is not None and predict is not None
    return CustomCode(module=module, state=load(BundleFiles(files)), predict=predict, warm_up=warm_up)


class PythonModel:
    """A custom-code bundle made ready: module executed from verified bytes, ``load`` done, schema enforced."""

    def __init__(self, files: Mapping[str, bytes], manifest: Manifest) -> None:
        if manifest.runtime != "python" or not manifest.artifact.endswith(".py"):
            raise UnsafeBundleError(
                f"manifest runtime {manifest.runtime!r} with artifact {manifest.artifact!r} is not a custom-code"
                " bundle (runtime 'python', a .py artifact)"
            )
        if manifest.artifact not in files:
            raise UnsafeBundleError(f"custom code {manifest.artifact!r} is not a verified file of the bundle")
        self.manifest = manifest
        self.output_names = [spec.name for spec in manifest.outputs]
        self._input_specs = {spec.name: spec for spec in manifest.inputs}
        self._output_specs = {spec.name: spec for spec in manifest.outputs}
        data = {name: blob for name, blob in files.items() if name not in (manifest.artifact, MANIFEST_FILE)}
        filename = f"<bundle {manifest.name} v{manifest.version}>/{manifest.artifact}"
        try:
            self._code = load_code(files[manifest.artifact], data, filename=filename)
        except Exception as exc:  # the module, or its load(), may raise anything
            raise ModelNotReady(f"custom code {manifest.artifact} failed to load: {type(exc).__name__}: {exc}") from exc

    def predict(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        """Validate, call the module's ``predict``, check and return the requested outputs."""
        wanted = check_output_names(outputs, self.output_names)
        inputs = validate_feeds(feeds, self._input_specs)
        try:
            result = self._code.predict(self._code.state, inputs)
        except ModelfnError:
            raise
        except INPUT_ERRORS as exc:
            raise UnprocessableInput(f"the model rejected this input ({type(exc).__name__} in custom code)") from exc
        if not isinstance(result, Mapping):
            raise ModelfnError(f"custom predict() returned {type(result).__name__}, expected a dict of arrays")
        missing = [name for name in wanted if name not in result]
        if missing:
            raise ModelfnError(f"custom predict() did not return output {missing[0]!r}", field=missing[0])
        return {name: conform_output(result[name], self._output_specs[name]) for name in wanted}

    def warm_up(self) -> None:
        """The module's own ``warm_up(state)`` when it has one, else one run on zeros shaped from the schema."""
        import numpy as np

        try:
            if self._code.warm_up is not None:
                self._code.warm_up(self._code.state)
                return
            shapes = {s.name: [d if d > 0 else 1 for d in s.shape] for s in self.manifest.inputs}
            self.predict(
                {
                    s.name: np.full(shapes[s.name], "", dtype=object)
                    if s.dtype == "string"
                    else np.zeros(shapes[s.name], dtype=s.dtype)
                    for s in self.manifest.inputs
                }
            )
        except Exception as exc:  # custom code: anything
            raise ModelNotReady(f"custom code warm-up failed: {type(exc).__name__}: {exc}") from exc


def conform_output(value: Any, spec: TensorSpec) -> npt.NDArray[Any]:
    """One returned output as an array of the declared dtype (safe casts only) and a compatible shape."""
    import numpy as np

    if spec.dtype == "string":
        array = np.asarray(value, dtype=object)
        if array.size and not all(isinstance(v, str) for v in array.reshape(-1).tolist()):
            raise ModelfnError(f"custom output {spec.name!r} must hold strings", field=spec.name)
    else:
        array = np.asarray(value)
        target = np.dtype(spec.dtype)
        if array.dtype != target:
            safe = np.can_cast(array.dtype, target, casting="same_kind") or (
                array.dtype.kind in "iub" and target.kind == "f"
            )
            if not safe or array.dtype.kind == "O":
                raise ModelfnError(
                    f"custom output {spec.name!r} has dtype {array.dtype}, the manifest declares {spec.dtype}",
                    field=spec.name,
                )
            array = array.astype(target)
    if not spec.is_compatible(array.shape):
        raise ModelfnError(
            f"custom output {spec.name!r} has shape {list(array.shape)}, the manifest declares {spec.shape}",
            field=spec.name,
        )
    return array
