"""ONNX models pass straight through, after the checks a bundle needs.

External data beside a file is read in at build time. A model over the inline limit (protobuf's
2 GB by default; the ``inline_limit`` option lowers it) keeps its large initializers in
``model.onnx.data``, a signed file of the bundle that the run time hands to onnxruntime from the
verified bytes; otherwise the bundle is one self-contained ``model.onnx``. The model must be valid
by ``onnx.checker`` and loadable by onnxruntime. An ``opset`` request
converts the default domain with the ONNX version converter. Parity is onnxruntime against
itself, so it is exact; it still runs once to prove the model loads and answers.

Ops must come from domains the serving onnxruntime implements: custom-op libraries are never
loaded (SECURITY.md 13), so a model needing one could not be served. Ops defined by the model's
own local functions need no library and always pass; other domains must be in an allowlist
(``allowed_domains`` option, default standard ONNX, ``ai.onnx.ml`` and ``com.microsoft``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelfn.adapters.base import ExportResult, SampleInput, class_from, import_extra
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np

SUFFIXES = (".onnx",)
STANDARD_DOMAIN = "ai.onnx"
"""The default domain (also spelled ``""``); always allowed."""
DEFAULT_ALLOWED_DOMAINS = (STANDARD_DOMAIN, "ai.onnx.ml", "com.microsoft")
"""Standard ONNX, the ONNX-ML operators, and onnxruntime's own contrib ops."""
_DOMAIN_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class OnnxFileAdapter:
    """A ready ONNX model (``onnx.ModelProto`` or a ``.onnx`` file)."""

    name: ClassVar[str] = "onnx"

    def __init__(
        self, allowed_domains: str | Sequence[str] | None = None, inline_limit: str | int | None = None
    ) -> None:
        """``allowed_domains``: op domains the model may use (standard ONNX always); ``inline_limit``: bytes."""
        self.allowed_domains = parse_domains(allowed_domains)
        self.inline_limit = _parse_limit(inline_limit)

    @classmethod
    def detects(cls, model: Any) -> bool:
        """A ``.onnx`` path or an ``onnx.ModelProto``."""
        if isinstance(model, Path):
            return model.is_file() and model.suffix.lower() in SUFFIXES
        return type(model).__name__ == "ModelProto" and class_from(model, "onnx")

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """Parse the file's bytes; weights kept in external-data files beside it are inlined.

        A bundle holds one self-contained model.onnx, so external data is read here, at build time,
        and only from regular files inside the model's own directory (no ``..``, absolute paths or
        symlinks). Models over the inline limit are split again at export (``model.onnx.data``).
        """
        onnx = import_extra("onnx", extra="onnx")
        data = path.read_bytes()
        locations = _external_locations(data, path.name)
        try:
            model = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf raises DecodeError, onnx raises several kinds
            raise PackagingError(f"onnx: cannot parse {path.name} as an ONNX model: {exc}") from exc
        if locations:
            _inline_external_data(model, path, locations)
        return model

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """Check (and optionally convert the opset of) the model; the bytes go into the bundle as they are."""
        onnx = import_extra("onnx", extra="onnx")
        from modelfn.bundle.manifest import FrameworkInfo

        if model.ByteSize() <= MAX_INLINE_BYTES:  # larger ones are checked once split, below
            _refuse_external_data(model.SerializeToString(), "the model")
        refuse_custom_domains(model, self.allowed_domains)
        if opset is not None and _default_opset(model) != opset:
            from onnx import version_converter

            try:
                model = version_converter.convert_version(model, opset)
            except Exception as exc:  # the converter raises plain RuntimeError/ValueError
                raise PackagingError(f"onnx: cannot convert the model to opset {opset}: {exc}") from exc
        model, data_files = split_weights(model, self.inline_limit)
        try:
            _check_model(model, data_files)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise PackagingError(f"onnx: the model fails onnx.checker: {exc}") from exc
        framework = FrameworkInfo(
            name=self.name,
            version=onnx.__version__,
            converter=model.producer_name or None,
            converter_version=model.producer_version or None,
        )
        return ExportResult(onnx_bytes=model.SerializeToString(), framework=framework, data_files=data_files)

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, np.ndarray[Any, Any]]:
        """onnxruntime on the model itself: the reference for an ONNX file is the file."""
        from modelfn.bundle.schema import read_schema
        from modelfn.parity import run_onnx, to_feeds

        stripped, data_files = split_weights(model, self.inline_limit)
        data = stripped.SerializeToString()
        return run_onnx(data, to_feeds(sample, read_schema(data).inputs), data_files=data_files)


def parse_domains(value: str | Sequence[str] | None) -> frozenset[str]:
    """The allowlist from an option value: None = defaults; ``""`` means the standard domain, always included."""
    if value is None:
        return frozenset(DEFAULT_ALLOWED_DOMAINS)
    items = value.split(",") if isinstance(value, str) else list(value)
    domains = {STANDARD_DOMAIN}
    for item in items:
        if not isinstance(item, str):
            raise PackagingError(f"allowed_domains: expected domain names, got {item!r}", field="allowed_domains")
        domain = _normal_domain(item.strip())
        if not _DOMAIN_RE.fullmatch(domain):
            raise PackagingError(
                f"allowed_domains: {item!r} is not an op domain name (like 'ai.onnx.ml' or 'com.microsoft')",
                field="allowed_domains",
            )
        domains.add(domain)
    return frozenset(domains)


def used_ops(model: Any) -> dict[str, set[str]]:
    """Op types by domain over every node: the graph, nested subgraphs and local function bodies."""
    ops: dict[str, set[str]] = {}
    for node in _all_nodes(model):
        ops.setdefault(_normal_domain(node.domain), set()).add(node.op_type)
    return ops


def refuse_custom_domains(model: Any, allowed: Iterable[str] = DEFAULT_ALLOWED_DOMAINS) -> None:
    """Raise ``PackagingError`` naming each op outside ``allowed`` that no local function of the model defines."""
    local = {(_normal_domain(f.domain), f.name) for f in model.functions}
    permitted = {_normal_domain(d) for d in allowed} | {STANDARD_DOMAIN}
    outside: dict[str, set[str]] = {}
    for domain, ops in used_ops(model).items():
        missing = {op for op in ops if (domain, op) not in local}
        if domain not in permitted and missing:
            outside[domain] = missing
    if not outside:
        return
    found = "; ".join(f"{d!r} ({', '.join(sorted(ops))})" for d, ops in sorted(outside.items()))
    suggestion = ",".join(sorted(permitted - {STANDARD_DOMAIN}) + sorted(outside))
    raise PackagingError(
        f"onnx: the model uses ops from domains outside the allowlist [{', '.join(sorted(permitted))}]: {found}."
        " Custom-op libraries are never loaded, so only domains onnxruntime implements can be served."
        f" If it does implement these, allow them with allowed_domains={suggestion!r}"
        f" (CLI: --option allowed_domains={suggestion})",
        field="allowed_domains",
    )


def _all_nodes(model: Any) -> Iterable[Any]:
    stack = [model.graph, *model.functions]
    while stack:
        for node in stack.pop().node:
            yield node
            for attr in node.attribute:
                if attr.HasField("g"):
                    stack.append(attr.g)
                stack.extend(attr.graphs)


def _normal_domain(domain: str) -> str:
    return domain or STANDARD_DOMAIN


def _default_opset(model: Any) -> int | None:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


MAX_INLINE_BYTES = 2**31 - 1
"""protobuf's limit on one serialized message: larger models cannot be a single model.onnx."""


def _external_locations(data: bytes, where: str) -> set[str]:
    """External-data files the model names; each must be a plain relative name inside its directory."""
    from modelfn.errors import UnsafeBundleError
    from modelfn.runtime.onnx_guard import inspect_onnx, refuse_external_data

    try:
        facts = inspect_onnx(data, artifact=where)
    except UnsafeBundleError as exc:
        raise PackagingError(f"onnx: {exc.message}", field="model") from exc
    for tensor, location in facts.external:
        parts = location.replace("\\", "/").split("/")
        if location.startswith(("/", "\\")) or ".." in parts or (len(location) > 1 and location[1] == ":"):
            try:
                refuse_external_data(facts, artifact=where)
            except UnsafeBundleError as exc:
                raise PackagingError(f"onnx: {exc.message}", field="model") from exc
        if location == "<unnamed>":
            raise PackagingError(f"onnx: {where}: tensor {tensor!r} is external but names no file", field="model")
    return {location for _, location in facts.external}


def _inline_external_data(model: Any, path: Path, locations: set[str]) -> None:
    """Read the named files (regular files under the model's directory only) into the model."""
    from onnx.external_data_helper import load_external_data_for_model

    base = path.parent.resolve()
    for location in sorted(locations):
        target = path.parent / location
        if target.is_symlink() or not target.is_file() or not target.resolve().is_relative_to(base):
            raise PackagingError(
                f"onnx: external data {location!r} of {path.name} must be a regular file inside {path.parent}"
                " (no symlinks)",
                field="model",
            )
    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # onnx raises ValueError / OSError for missing or unsafe locations
        raise PackagingError(f"onnx: cannot read the external data of {path.name}: {exc}", field="model") from exc


def _refuse_external_data(data: bytes, where: str) -> None:
    """The run-time guard's walk (graphs, subgraphs, functions, sparse tensors), applied at build time."""
    from modelfn.errors import UnsafeBundleError
    from modelfn.runtime.onnx_guard import inspect_onnx

    try:
        facts = inspect_onnx(data, artifact=where)
    except UnsafeBundleError as exc:
        raise PackagingError(f"onnx: {exc.message}", field="model") from exc
    for tensor, location in facts.external:
        raise PackagingError(
            f"onnx: {where} keeps tensor {tensor!r} in external file {location!r}; a bundle holds one"
            " self-contained model.onnx. Re-save it with onnx.save_model(model, path,"
            " save_as_external_data=False) (models under 2 GB)",
            field="model",
        )


MIN_EXTERNAL_BYTES = 1024
"""Initializers smaller than this stay in model.onnx (onnx's own default threshold)."""


def split_weights(model: Any, limit: int) -> tuple[Any, dict[str, bytes]]:
    """Over ``limit`` bytes: a copy whose large initializers live in ``model.onnx.data`` (in memory), by offset."""
    if model.ByteSize() <= limit:
        return model, {}
    onnx = import_extra("onnx", extra="onnx")
    from onnx.external_data_helper import set_external_data

    from modelfn.bundle.layout import ONNX_DATA_FILE
    from modelfn.errors import UnsafeBundleError
    from modelfn.runtime.onnx_guard import check_external_data, inspect_onnx

    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    data = bytearray()
    for tensor in stripped.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.raw_data) < MIN_EXTERNAL_BYTES:
            continue
        set_external_data(tensor, ONNX_DATA_FILE, offset=len(data), length=len(tensor.raw_data))
        data += tensor.raw_data
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
    if stripped.ByteSize() > MAX_INLINE_BYTES:
        raise PackagingError("onnx: the model is over 2 GB even without its initializers' raw data", field="model")
    files = {ONNX_DATA_FILE: bytes(data)} if data else {}
    try:  # nothing may point anywhere else (a tensor still external from the source, in a subgraph...)
        facts = inspect_onnx(stripped.SerializeToString(), artifact="the model")
        check_external_data(facts, files, artifact="the model")
    except UnsafeBundleError as exc:
        raise PackagingError(f"onnx: {exc.message}", field="model") from exc
    return stripped, files


def _check_model(model: Any, data_files: dict[str, bytes]) -> None:
    """``onnx.checker`` in full; with external data it reads the files, so they go to a private temp dir."""
    import tempfile

    onnx = import_extra("onnx", extra="onnx")
    if not data_files:
        onnx.checker.check_model(model, full_check=True)
        return
    with tempfile.TemporaryDirectory(prefix="modelfn-check-") as scratch:
        for name, data in data_files.items():
            (Path(scratch) / name).write_bytes(data)
        path = Path(scratch) / "model.onnx"
        path.write_bytes(model.SerializeToString())
        onnx.checker.check_model(str(path), full_check=True)


def _parse_limit(value: str | int | None) -> int:
    """The ``inline_limit`` option: a positive byte count up to protobuf's limit (the default)."""
    if value is None:
        return MAX_INLINE_BYTES
    try:
        limit = int(value)
    except (TypeError, ValueError):
        limit = 0
    if not 0 < limit <= MAX_INLINE_BYTES:
        raise PackagingError(
            f"onnx: option 'inline_limit' must be a byte count from 1 to {MAX_INLINE_BYTES}, got {value!r}",
            field="inline_limit",
        )
    return limit
