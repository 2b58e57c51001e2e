"""Custom code: a directory holding ``model.py`` and its data files becomes a bundle for the Python runtime.

For pre/post-processing no converter expresses. The module (contract: ``modelfn.runtime.python_model``)
goes into the bundle unchanged with its data files, all signed. Data files are checked first so
nothing unsafe gets signed: ``.npz``/``.npy`` without object arrays, ``.safetensors``, ``.json``,
``.txt``, ``.csv``, self-contained ``.onnx``; pickle never, ``allow_pickle`` or not. The schema comes
from ``schema.json`` (or the ``schema`` option), else from the sample and what ``predict`` returns.
Parity compares the build-time run with the served path (a fresh ``PythonModel`` over the bundle's
bytes, schema casts included): nondeterminism or a lossy schema fails packaging, not production.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelfn._version import __version__
from modelfn.adapters.base import ExportResult, SampleInput
from modelfn.bundle.layout import MANIFEST_FILE, PICKLE_EXTENSIONS, PYTHON_ARTIFACT, SIGNATURE_FILE
from modelfn.bundle.manifest import FrameworkInfo, Manifest, TensorSpec
from modelfn.errors import ModelfnError, PackagingError, UnsafeBundleError
from modelfn.packaging import _check_out_dir, _write_atomic
from modelfn.parity import compare, synthesize_sample, to_feeds
from modelfn.runtime.onnx_guard import PICKLE_MAGIC, inspect_onnx, refuse_external_data
from modelfn.runtime.python_model import BundleFiles, PythonModel, load_code

if TYPE_CHECKING:
    import numpy as np

SCHEMA_FILE = "schema.json"
"""Optional schema in the source directory: ``{"inputs": [...], "outputs": [...], "labels": [...]}``."""
DATA_SUFFIXES = (".npz", ".npy", ".safetensors", ".json", ".txt", ".csv", ".onnx")
SKIPPED_NAMES = ("__pycache__",)
"""Left out of the bundle (with dotfiles): interpreter caches, never data."""
DEFAULT_INPUT_NAME = "input"
MAX_NOTES = 500


@dataclasses.dataclass(frozen=True)
class CustomSource:
    """A custom-code directory read into memory: the module's bytes, its data files and the optional schema."""

    root: Path
    code: bytes
    data: dict[str, bytes]
    schema: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class _Schema:
    inputs: list[TensorSpec] | None
    outputs: list[TensorSpec] | None
    labels: list[str | int] | None


class CustomCodeAdapter:
    """A directory with ``model.py`` (+ data files), served by the Python runtime when the server allows it."""

    name: ClassVar[str] = "custom"

    def __init__(
        self,
        schema: str | Path | Mapping[str, Any] | None = None,
        labels: str | Sequence[str | int] | None = None,
        input_name: str = DEFAULT_INPUT_NAME,
    ) -> None:
        if not isinstance(input_name, str) or not input_name:
            raise PackagingError("custom: option 'input_name' must be a non-empty string", field="input_name")
        self.schema_option = schema
        self.labels = _labels_option(labels)
        self.input_name = input_name

    @classmethod
    def detects(cls, model: Any) -> bool:
        """A directory holding ``model.py`` (or an already read ``CustomSource``)."""
        if isinstance(model, Path):
            return model.is_dir() and (model / PYTHON_ARTIFACT).is_file()
        return isinstance(model, CustomSource)

    def load(self, path: Path, *, allow_pickle: bool) -> CustomSource:
        """Read and check every file of the directory; pickle is refused whatever ``allow_pickle`` says."""
        if not self.detects(path):
            raise PackagingError(f"custom: {path} must be a directory holding {PYTHON_ARTIFACT}", field="model")
        code, data, schema = b"", dict[str, bytes](), None
        for entry in sorted(path.iterdir()):
            if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                continue
            if entry.is_symlink() or not entry.is_file():
                kind = "a symbolic link" if entry.is_symlink() else "not a regular file"
                raise PackagingError(f"custom: {entry.name} is {kind}; a bundle is a flat set of files", field="model")
            blob = entry.read_bytes()
            if entry.name == PYTHON_ARTIFACT:
                code = blob
            elif entry.name == SCHEMA_FILE:
                schema = _json_object(blob, entry.name)
            else:
                check_data_file(entry.name, blob)
                data[entry.name] = blob
        return CustomSource(root=path, code=code, data=data, schema=schema)

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """Custom code is not converted: ``write_bundle`` (called by ``modelfn.package``) copies it."""
        raise PackagingError("custom: custom code is Python, not ONNX; use modelfn.package(..., framework='custom')")

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, np.ndarray[Any, Any]]:
        """The module's own answer on ``sample``: executed from the source bytes, ``load`` then ``predict``."""
        import numpy as np

        source = _source(model)
        inputs = _as_inputs(sample, self.input_name)
        try:
            code = load_code(source.code, source.data, filename=str(source.root / PYTHON_ARTIFACT))
            result = code.predict(code.state, {k: np.array(v) for k, v in inputs.items()})  # copies: may mutate
        except Exception as exc:  # custom code raises anything
            raise PackagingError(
                f"custom: {PYTHON_ARTIFACT} failed on the sample: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(result, Mapping) or not result:
            raise PackagingError(f"custom: predict() must return a non-empty dict of arrays, got {type(result)}")
        return {str(k): np.asarray(v) for k, v in result.items()}

    def write_bundle(
        self,
        model: Any,
        sample: SampleInput | None,
        out_dir: Path,
        *,
        name: str,
        version: int,
        atol: float,
        rtol: float,
    ) -> Manifest:
        """Check, run, compare, then write ``model.py`` + data files + ``manifest.json`` into ``out_dir``."""
        source = _source(model)
        schema = self._schema(source)
        if sample is None:
            if schema.inputs is None:
                raise PackagingError(
                    f"custom: a sample input is required (or a {SCHEMA_FILE} with inputs to synthesize one)",
                    field="sample",
                )
            sample = synthesize_sample(schema.inputs)
        native = self.native_predict(source, sample)
        inputs = schema.inputs or _infer_specs(_as_inputs(sample, self.input_name))
        outputs = schema.outputs or _infer_specs(native, rows=_rows(sample))
        missing = [spec.name for spec in outputs if spec.name not in native]
        if missing:
            raise PackagingError(f"custom: predict() did not return declared output {missing[0]!r}", field=missing[0])
        manifest = Manifest(
            name=name,
            version=version,
            runtime="python",
            artifact=PYTHON_ARTIFACT,
            framework=FrameworkInfo(name=self.name, version=platform.python_version()),
            inputs=inputs,
            outputs=outputs,
            labels=self.labels or schema.labels,
            preprocessing=_notes(source.code),
            created_at=dt.datetime.now(dt.UTC),
            modelfn_version=__version__,
        )
        files = {**source.data, PYTHON_ARTIFACT: source.code}
        feeds = to_feeds(sample, inputs)
        try:
            served = PythonModel(files, manifest)
            served.warm_up()
            answer = served.predict(feeds)
        except ModelfnError as exc:
            raise PackagingError(f"custom: the served path fails on the sample: {exc.message}") from exc
        declared = {spec.name: native[spec.name] for spec in outputs}
        parity = compare(declared, answer, atol=atol, rtol=rtol, samples=_rows(feeds))
        manifest = manifest.replace(parity=parity)
        _check_out_dir(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for file_name, blob in sorted(files.items()):
            _write_atomic(out_dir / file_name, blob)
        _write_atomic(out_dir / MANIFEST_FILE, manifest.to_json())
        return manifest

    def _schema(self, source: CustomSource) -> _Schema:
        """The ``schema`` option (a JSON file path or a mapping) wins over ``schema.json`` in the directory."""
        raw: Mapping[str, Any] | None = source.schema
        where = SCHEMA_FILE
        if isinstance(self.schema_option, str | Path):
            path = Path(self.schema_option)
            try:
                raw = _json_object(path.read_bytes(), str(path))
            except OSError as exc:
                raise PackagingError(f"custom: cannot read schema file {path}: {exc.strerror}", field="schema") from exc
            where = str(path)
        elif isinstance(self.schema_option, Mapping):
            raw, where = self.schema_option, "the schema option"
        elif self.schema_option is not None:
            raise PackagingError("custom: option 'schema' must be a JSON file path or a mapping", field="schema")
        return _parse_schema(raw, where) if raw is not None else _Schema(None, None, None)


def check_data_file(name: str, blob: bytes) -> None:
    """Refuse anything that could unpickle, execute or escape the bundle; parse what can be parsed."""
    suffix = Path(name).suffix.lower()
    if name in (MANIFEST_FILE, SIGNATURE_FILE):
        raise PackagingError(f"custom: {name} is a reserved bundle file name; rename it", field=name)
    renamed_pickle = blob.startswith(PICKLE_MAGIC) and suffix != ".safetensors"  # its header length may match
    if suffix in PICKLE_EXTENSIONS or renamed_pickle:
        raise PackagingError(f"custom: {name} is pickle, never bundled (even with allow_pickle); use .npz", field=name)
    if suffix == ".py":
        raise PackagingError(f"custom: {name}: a bundle holds one module, {PYTHON_ARTIFACT}; merge it in", field=name)
    if suffix not in DATA_SUFFIXES:
        raise PackagingError(f"custom: {name}: data files must be one of {', '.join(DATA_SUFFIXES)}", field=name)
    files = BundleFiles({name: blob})
    try:
        if suffix == ".npz":
            files.load_npz(name)
        elif suffix == ".npy":
            files.load_npy(name)
        elif suffix == ".safetensors":
            _check_safetensors(blob)
        elif suffix == ".json":
            files.load_json(name)
        elif suffix == ".onnx":
            refuse_external_data(inspect_onnx(blob, artifact=name), artifact=name)
        else:
            files.read_text(name)
    except UnsafeBundleError as exc:
        raise PackagingError(f"custom: {exc.message}", field=name) from exc
    except (ValueError, OSError, EOFError) as exc:  # numpy/json/zipfile/unicode errors are ValueError/OSError
        raise PackagingError(f"custom: {name} is not a valid {suffix} file (or holds pickled objects): {exc}") from exc


def _check_safetensors(blob: bytes) -> None:
    """The format's 8-byte little-endian header length, then a JSON header that fits the file."""
    size = int.from_bytes(blob[:8], "little") if len(blob) >= 8 else -1
    if size < 2 or 8 + size > len(blob):
        raise ValueError("header length does not fit the file")
    if not isinstance(json.loads(blob[8 : 8 + size]), dict):
        raise ValueError("header is not a JSON object")


def _source(model: Any) -> CustomSource:
    if not isinstance(model, CustomSource):
        raise PackagingError(f"custom: expected a directory with {PYTHON_ARTIFACT}, got {type(model).__name__}")
    return model


def _json_object(blob: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(blob)
    except ValueError as exc:
        raise PackagingError(f"custom: {where} is not valid JSON: {exc}", field="schema") from exc
    if not isinstance(value, dict):
        raise PackagingError(f"custom: {where} must hold a JSON object", field="schema")
    return value


def _parse_schema(raw: Mapping[str, Any], where: str) -> _Schema:
    unknown = sorted(set(raw) - {"inputs", "outputs", "labels"})
    if unknown:
        raise PackagingError(f"custom: {where}: unknown key {unknown[0]!r}; expected inputs, outputs, labels")
    specs: dict[str, list[TensorSpec] | None] = {}
    for key in ("inputs", "outputs"):
        try:
            specs[key] = [TensorSpec.from_builtins(item) for item in raw[key]] if key in raw else None
        except (ValueError, TypeError) as exc:
            raise PackagingError(f"custom: {where}: invalid {key}: {exc}", field="schema") from exc
        if specs[key] == []:
            raise PackagingError(f"custom: {where}: {key} must not be empty", field="schema")
    return _Schema(specs["inputs"], specs["outputs"], _labels_option(raw.get("labels")))


def _labels_option(labels: Any) -> list[str | int] | None:
    if labels is None:
        return None
    items = [part.strip() for part in labels.split(",")] if isinstance(labels, str) else labels
    if not isinstance(items, Sequence) or not all(isinstance(i, str | int) and not isinstance(i, bool) for i in items):
        raise PackagingError("custom: option 'labels' must be a list of strings/integers or 'a,b,c'", field="labels")
    return list(items) or None


def _as_inputs(sample: Any, input_name: str) -> dict[str, Any]:
    return dict(sample) if isinstance(sample, Mapping) else {input_name: sample}


def _rows(sample: Any) -> int:
    import numpy as np

    first = np.asarray(next(iter(sample.values())) if isinstance(sample, Mapping) else sample)
    return int(first.shape[0]) if first.ndim else 1


def _infer_specs(arrays: Mapping[str, Any], *, rows: int | None = None) -> list[TensorSpec]:
    """Specs from example arrays: the batch (leading) dimension becomes dynamic (-1)."""
    import numpy as np

    specs = []
    for name, value in arrays.items():
        array = np.asarray(value)
        dtype = "string" if array.dtype.kind in "OUS" else str(array.dtype)
        shape = list(array.shape)
        if shape and (rows is None or shape[0] == rows):
            shape[0] = -1
        try:
            specs.append(TensorSpec.from_builtins({"name": name, "dtype": dtype, "shape": shape}))
        except ValueError as exc:
            raise PackagingError(f"custom: {name!r} has dtype {array.dtype}, not a manifest dtype", field=name) from exc
    return specs


def _notes(code: bytes) -> str | None:
    """The module docstring's first paragraph: what the hand-written pre/post-processing does."""
    try:
        doc = ast.get_docstring(ast.parse(code)) or ""
    except (SyntaxError, ValueError):
        doc = ""
    return doc.split("\n\n", 1)[0].strip()[:MAX_NOTES] or None
