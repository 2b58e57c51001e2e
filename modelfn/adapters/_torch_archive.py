"""TorchScript files and TorchServe / MXNet Model Server ``.mar`` archives, read without running their handlers.

``torch.jit.save`` writes a zip whose members sit under ``<name>/code/`` and ``<name>/constants.pkl``;
``torch.load`` refuses it with ``weights_only=True`` and only dispatches to ``torch.jit.load``
otherwise, so the archive is recognised here by its layout and loaded with ``torch.jit.load``.

A ``.mar`` is a zip with ``MAR-INF/MANIFEST.json`` naming the model's ``serializedFile`` (TorchScript
or eager weights), an optional ``modelFile`` (the eager module's source) and a ``handler`` (Python
pre/post-processing run by the model server). Only the model is converted: the handler and any
extra files are reported as not carried over. Member names are checked before anything is read
(SECURITY.md rule 14): ``..``, absolute names, backslashes, duplicates, links and devices are refused.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import stat
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from modelfn.errors import PackagingError

MAR_SUFFIX = ".mar"
MAR_MANIFEST = "MAR-INF/MANIFEST.json"
MXNET_SYMBOL_SUFFIX = "-symbol.json"
MXNET_PARAMS_SUFFIX = ".params"
CHECKPOINT_KEYS = ("state_dict", "model_state_dict")
_LINK_OR_SPECIAL = (stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK)


@dataclasses.dataclass(frozen=True)
class ModelArchive:
    """What a ``.mar`` holds: the manifest's model entry and every regular member's bytes."""

    name: str
    model_name: str
    serialized_file: str | None
    model_file: str | None
    handler: str | None
    engine: str | None
    members: dict[str, bytes]

    def member(self, name: str) -> bytes:
        """A member named by the manifest; refused when the archive lacks it."""
        if name not in self.members:
            raise PackagingError(
                f"torch: {self.name}: {MAR_MANIFEST} names {name!r}, which the archive does not contain", field="model"
            )
        return self.members[name]

    def mxnet_pair(self) -> tuple[str, str] | None:
        """The MXNet ``*-symbol.json`` and its newest ``*.params`` member, if this is an MXNet model."""
        symbols = sorted(n for n in self.members if n.endswith(MXNET_SYMBOL_SUFFIX))
        if not symbols:
            return None
        prefix = symbols[0].removesuffix(MXNET_SYMBOL_SUFFIX)
        params = sorted(n for n in self.members if n.startswith(prefix + "-") and n.endswith(MXNET_PARAMS_SUFFIX))
        if not params:
            raise PackagingError(f"mxnet: {self.name} has {symbols[0]} but no {prefix}-NNNN.params", field="model")
        return symbols[0], params[-1]

    def not_carried(self, used: set[str]) -> str:
        """The note on what the bundle leaves behind: the handler and the members not converted."""
        left = sorted(n for n in self.members if n not in used and n != MAR_MANIFEST)
        parts = [f"converted from model archive {self.name} (model {self.model_name!r})"]
        if self.handler:
            parts.append(f"its handler {self.handler!r} was not run and is not in the bundle (pre/post-processing)")
        if left:
            parts.append(f"not carried over: {', '.join(left[:20])}{' …' if len(left) > 20 else ''}")
        return "; ".join(parts)


def is_torchscript(source: Path | bytes) -> bool:
    """True for a ``torch.jit.save`` archive: a zip with ``<name>/code/`` and ``<name>/constants.pkl`` members."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    parts = [PurePosixPath(n).parts for n in names]
    return any(len(p) == 2 and p[1] == "constants.pkl" for p in parts) and any(
        len(p) > 2 and p[1] == "code" for p in parts
    )


def read_model_archive(path: Path) -> ModelArchive:
    """Check every member name and type, then read the manifest and the regular members."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackagingError(f"torch: {path.name} is not a readable .mar (zip) archive: {exc}", field="model") from exc
    with zf:
        infos = zf.infolist()
        _check_members(path.name, infos)
        try:
            members = {i.filename: zf.read(i) for i in infos if not i.is_dir()}
        except (zipfile.BadZipFile, OSError, ValueError) as exc:  # CRC errors, truncation
            raise PackagingError(f"torch: {path.name}: a member cannot be read: {exc}", field="model") from exc
    if MAR_MANIFEST not in members:
        raise PackagingError(f"torch: {path.name} has no {MAR_MANIFEST}; is it a model archive?", field="model")
    try:
        manifest = json.loads(members[MAR_MANIFEST])
        model = manifest["model"]
        model_name = str(model.get("modelName") or path.stem)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PackagingError(
            f"torch: {path.name}: {MAR_MANIFEST} is not a model archive manifest (needs a 'model' object)",
            field="model",
        ) from exc
    engine = model.get("engine") or manifest.get("engine") or {}
    return ModelArchive(
        name=path.name,
        model_name=model_name,
        serialized_file=_member_name(path.name, model.get("serializedFile"), "serializedFile"),
        model_file=_member_name(path.name, model.get("modelFile"), "modelFile"),
        handler=str(model["handler"]) if model.get("handler") else None,
        engine=str(engine.get("engineName")) if isinstance(engine, dict) and engine.get("engineName") else None,
        members=members,
    )


def _check_members(archive: str, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse path tricks and non-regular members before any member is read."""
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts
        mode = info.external_attr >> 16
        problem = None
        if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            problem = "an absolute or backslashed name"
        elif ".." in parts:
            problem = "a '..' component"
        elif name in seen:
            problem = "a duplicate name"
        elif stat.S_IFMT(mode) in _LINK_OR_SPECIAL:
            problem = "a link or special file"
        if problem:
            raise PackagingError(f"torch: {archive}: member {name!r} is {problem}; archive refused", field="model")
        seen.add(name)


def _member_name(archive: str, value: Any, key: str) -> str | None:
    """A manifest entry naming a member: a plain relative name (the model servers keep them at the top)."""
    if value in (None, ""):
        return None
    name = str(value)
    if "\\" in name or name.startswith("/") or ".." in PurePosixPath(name).parts:
        raise PackagingError(f"torch: {archive}: {MAR_MANIFEST} {key} {name!r} leaves the archive", field="model")
    return name


def torch_consent(path: Path, *, allow_pickle: bool, torchscript: bool) -> None:
    """Refuse a ``.pt``/``.pth`` without consent, suggesting torch's safe format; warn when consent is given."""
    if not allow_pickle:
        kind = (
            "a TorchScript archive (it runs its own code)" if torchscript else "pickle (loading it runs arbitrary code)"
        )
        raise PackagingError(
            f"torch: {path.name} is {kind}. Pass allow_pickle=True (CLI: --allow-pickle) only for files you trust,"
            " or save the weights as .safetensors (safetensors.torch.save_file(model.state_dict(), path)) and"
            " package them with model_class='pkg.module:Class' (CLI: --option model_class=...), or export .onnx",
            field="allow_pickle",
        )
    from modelfn.adapters.base import require_pickle_consent

    require_pickle_consent(path, allow_pickle=True, adapter="torch")


def load_archive_model(
    archive: ModelArchive,
    *,
    allow_pickle: bool,
    build: Callable[[Mapping[str, Any], Path], Any] | None,
    labels: list[str | int] | None,
) -> tuple[Any, Any, str]:
    """(native model, the MXNet adapter when it converts, the note on what was not carried over).

    ``build`` loads a state dict into the ``model_class`` option's module; without it an eager
    archive's ``modelFile`` is imported (the model servers do the same), which runs the archive's
    code and so needs the same consent as unpickling.
    """
    pair = archive.mxnet_pair()
    if pair is not None and (archive.serialized_file is None or archive.serialized_file in pair):
        return (*_mxnet(archive, pair, allow_pickle=allow_pickle, labels=labels), archive.not_carried(set(pair)))
    if archive.serialized_file is None:
        raise PackagingError(f"torch: {archive.name}: {MAR_MANIFEST} names no serializedFile", field="model")
    from modelfn.adapters.base import import_extra

    torch = import_extra("torch", extra="torch")
    data = archive.member(archive.serialized_file)
    where = Path(archive.name) / archive.serialized_file
    used = {archive.serialized_file}
    if is_torchscript(data):
        torch_consent(where, allow_pickle=allow_pickle, torchscript=True)
        try:
            return torch.jit.load(io.BytesIO(data), map_location="cpu"), None, archive.not_carried(used)
        except Exception as exc:  # TorchScript deserialization errors are RuntimeErrors from C++
            raise PackagingError(f"torch: cannot load TorchScript {where}: {exc}", field="model") from exc
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickled whole module, or not a torch file
        raise PackagingError(
            f"torch: {where} is neither TorchScript nor a weights-only state dict; save the archive's model"
            " with torch.jit.save or as a state_dict",
            field="model",
        ) from exc
    if isinstance(state, Mapping):
        state = next((state[k] for k in CHECKPOINT_KEYS if isinstance(state.get(k), Mapping)), state)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PackagingError(f"torch: {where} holds a {type(state).__name__}, not a state dict", field="model")
    if build is not None:
        return build(state, where), None, archive.not_carried(used)
    if archive.model_file is None:
        raise PackagingError(
            f"torch: {archive.name} holds eager weights without a modelFile; name the module class with"
            " model_class='pkg.module:Class' (CLI: --option model_class=...)",
            field="model_class",
        )
    torch_consent(Path(archive.name) / archive.model_file, allow_pickle=allow_pickle, torchscript=False)
    cls = _archive_module_class(archive, torch)
    module = cls()
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        raise PackagingError(
            f"torch: the weights in {where} do not fit {cls.__name__} from {archive.model_file}: {str(exc)[:400]}",
            field="model",
        ) from exc
    return module, None, archive.not_carried(used | {archive.model_file})


def _archive_module_class(archive: ModelArchive, torch: Any) -> Any:
    """The one ``nn.Module`` subclass the archive's model file defines (as TorchServe requires)."""
    assert archive.model_file is not None
    with tempfile.TemporaryDirectory(prefix="modelfn-mar-") as tmp:
        source = Path(tmp, "model_file.py")
        source.write_bytes(archive.member(archive.model_file))
        spec = importlib.util.spec_from_file_location(f"modelfn_mar_{PurePosixPath(archive.model_file).stem}", source)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the archive's code raises whatever it raises
            raise PackagingError(f"torch: {archive.name}: its model file {archive.model_file} failed: {exc}") from exc
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise PackagingError(
            f"torch: {archive.name}: its model file {archive.model_file} defines {len(classes)} nn.Module classes;"
            " expected one (or name it with model_class='pkg.module:Class')",
            field="model_class",
        )
    return classes[0]


def _mxnet(
    archive: ModelArchive, pair: tuple[str, str], *, allow_pickle: bool, labels: list[str | int] | None
) -> tuple[Any, Any]:
    """Load an MXNet Model Server archive's symbol/params through the MXNet adapter (MXNet's own formats)."""
    from modelfn.adapters.mxnet_symbol import MxnetSymbolAdapter

    symbol, params = pair
    with tempfile.TemporaryDirectory(prefix="modelfn-mar-") as tmp:
        symbol_path = Path(tmp, PurePosixPath(symbol).name)
        params_path = Path(tmp, PurePosixPath(params).name)
        symbol_path.write_bytes(archive.member(symbol))
        params_path.write_bytes(archive.member(params))
        adapter = MxnetSymbolAdapter(params=params_path, labels=labels)
        return adapter.load(symbol_path, allow_pickle=allow_pickle), adapter
