"""Model in, unsigned bundle directory out: adapter -> ONNX -> schema -> parity -> manifest.

Signing is a separate step (``modelfn.signing``) so a bundle can be inspected, and signed by a
different machine or key, after it is built. Nothing pickled is ever written: the artifact must
be ONNX, checked by the same guard the run time uses.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfn.bundle.layout import MANIFEST_FILE, ONNX_ARTIFACT, check_model_name
from modelfn.errors import PackagingError, UnsafeBundleError
from modelfn.parity import DEFAULT_ATOL, DEFAULT_RTOL

if TYPE_CHECKING:
    from modelfn.adapters.base import Adapter
    from modelfn.bundle.manifest import Manifest

REPLACEABLE_FILES = frozenset({ONNX_ARTIFACT, MANIFEST_FILE})
"""What a previous ``package`` run leaves behind, and so may be overwritten."""


def package(
    model: Any,
    sample: Any,
    out_dir: Path | str,
    *,
    name: str,
    version: int = 1,
    framework: str | None = None,
    allow_pickle: bool = False,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    opset: int | None = None,
) -> Manifest:
    """Convert ``model`` (object or file) into ``out_dir/model.onnx`` + ``manifest.json``; return the manifest.

    ``framework`` is a registry name or ``pkg.mod:Class`` and skips detection. ``sample`` is one
    array or arrays by input name; it may be None for ONNX models (a sample is synthesized from
    the schema). Raises ``ParityError`` when outputs differ beyond ``atol``/``rtol``.
    """
    from modelfn import __version__
    from modelfn.adapters.registry import detect, get_adapter
    from modelfn.bundle.manifest import Manifest
    from modelfn.bundle.schema import read_schema
    from modelfn.parity import check_parity, synthesize_sample, to_feeds

    check_model_name(name)
    if version < 1:
        raise PackagingError(f"version must be >= 1, got {version}", field="version")
    out = Path(out_dir)
    _check_out_dir(out)
    adapter: Adapter = get_adapter(framework) if framework else detect(model)
    native = adapter.load(Path(model), allow_pickle=allow_pickle) if isinstance(model, str | os.PathLike) else model
    result = adapter.export(native, sample, opset=opset)
    _refuse_unsafe_artifact(result.onnx_bytes, adapter.name)
    schema = read_schema(result.onnx_bytes)
    if sample is None:
        sample = synthesize_sample(schema.inputs)
    feeds = to_feeds(sample, schema.inputs)
    parity = check_parity(result.onnx_bytes, adapter.native_predict(native, sample), feeds, atol=atol, rtol=rtol)
    manifest = Manifest(
        name=name,
        version=version,
        framework=result.framework,
        opset=schema.opset,
        inputs=schema.inputs,
        outputs=schema.outputs,
        labels=result.labels,
        parity=parity,
        preprocessing=result.notes,
        created_at=dt.datetime.now(dt.UTC),
        modelfn_version=__version__,
    )
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / ONNX_ARTIFACT, result.onnx_bytes)
    _write_atomic(out / MANIFEST_FILE, manifest.to_json())
    return manifest


def _check_out_dir(out: Path) -> None:
    """Write only into a new/empty directory or over a previous unsigned package run."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise PackagingError(f"output path {out} is not a directory", field="out_dir")
    if not out.exists():
        return
    others = sorted(p.name for p in out.iterdir() if p.name not in REPLACEABLE_FILES or not p.is_file())
    if others:
        raise PackagingError(
            f"output directory {out} is not empty ({', '.join(others[:5])}); use an empty directory"
            f" (only a previous {ONNX_ARTIFACT}/{MANIFEST_FILE} may be replaced)",
            field="out_dir",
        )


def _refuse_unsafe_artifact(data: bytes, adapter: str) -> None:
    """The artifact is ONNX or nothing: pickle, zip checkpoints and external data never enter a bundle."""
    from modelfn.runtime.onnx_guard import inspect_onnx, refuse_external_data

    try:
        refuse_external_data(inspect_onnx(data, artifact=ONNX_ARTIFACT), artifact=ONNX_ARTIFACT)
    except UnsafeBundleError as exc:
        raise PackagingError(f"adapter {adapter!r} produced an unsafe artifact: {exc.message}") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target then rename, so a crash never leaves a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
