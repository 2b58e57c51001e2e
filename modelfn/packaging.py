"""Model in, unsigned bundle directory out: adapter -> ONNX -> schema -> parity -> manifest.

Signing is a separate step (``modelfn.signing``) so a bundle can be inspected, and signed by a
different machine or key, after it is built. Nothing pickled is ever written: the artifact must
be ONNX, checked by the same guard the run time uses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfn.bundle.layout import MANIFEST_FILE, ONNX_ARTIFACT, ONNX_DATA_RE, check_model_name
from modelfn.converter_process import DEFAULT_TIMEOUT_S as DEFAULT_CONVERTER_TIMEOUT_S
from modelfn.errors import PackagingError, UnsafeBundleError
from modelfn.parity import DEFAULT_ATOL, DEFAULT_MIN_AGREEMENT, DEFAULT_RTOL

if TYPE_CHECKING:
    from modelfn.adapters.base import Adapter, ExportResult
    from modelfn.bundle.encryption import KeyWrapper
    from modelfn.bundle.manifest import Manifest
    from modelfn.packaging_processing import ProcessingRequest

ENCRYPTED_ARTIFACT = ONNX_ARTIFACT + ".enc"
REPLACEABLE_FILES = frozenset({ONNX_ARTIFACT, ENCRYPTED_ARTIFACT, MANIFEST_FILE})
"""What a previous ``package`` run leaves behind, and so may be overwritten."""


@dataclasses.dataclass(frozen=True)
class _Exported:
    """An adapter's export, the sample it used and the framework's own outputs on that sample."""

    result: ExportResult
    sample: Any
    native: Mapping[str, Any]


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
    options: Mapping[str, Any] | None = None,
    converter_python: Path | str | None = None,
    converter_timeout: float = DEFAULT_CONVERTER_TIMEOUT_S,
    optimize: str | None = None,
    quantize: str | None = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    encrypt: str | KeyWrapper | None = None,
    processing: ProcessingRequest | None = None,
) -> Manifest:
    """Convert ``model`` (object or file) into ``out_dir/model.onnx`` + ``manifest.json``; return the manifest.

    ``framework`` is a registry name or ``pkg.mod:Class`` and skips detection. ``sample`` is one
    array or arrays by input name; it may be None for ONNX models (a sample is synthesized from
    the schema). ``options`` go to the adapter's constructor (e.g. a PyTorch class path). Raises
    ``ParityError`` when outputs differ beyond ``atol``/``rtol``.

    ``converter_python`` (CLI: ``--python``) runs load, export and the native predictions in that
    interpreter instead (a framework that cannot live here, such as MXNet, or untrusted pickles kept
    out of this process); the schema, guard and parity checks still run here.

    ``optimize`` (``basic``/``extended``) applies onnxruntime's portable offline graph optimizations
    before the parity check. ``quantize`` (``int8``/``uint8``) stores dynamically quantized weights;
    the manifest's ``compression`` report says how far they moved the outputs, and packaging is
    refused when label agreement on the sample falls below ``min_agreement``.

    ``encrypt`` (``kms:<key>``, a local wrapping key file, or a ``KeyWrapper``) stores the artifact
    AES-256-GCM encrypted as ``model.onnx.enc``; the plaintext is never written.

    ``processing`` (CLI: ``--preprocess``, ``--labels``, ``--feature-names``, ...) declares the
    bundle's pipeline (``modelfn.packaging_processing``); ``sample`` may then be ``ImageSamples``
    (run through the declared image pipeline) or ``RecordSamples`` (a CSV sample's columns).
    """
    from modelfn._version import __version__
    from modelfn.adapters.base import BundleWriter
    from modelfn.adapters.registry import detect, get_adapter
    from modelfn.bundle.manifest import Manifest
    from modelfn.bundle.schema import read_schema
    from modelfn.packaging_processing import ProcessingRequest, declare
    from modelfn.packaging_samples import pipeline_report, pipeline_sample
    from modelfn.parity import check_parity, to_feeds

    request = processing or ProcessingRequest()
    sample, images = pipeline_sample(sample, request)  # flags checked before the (slow) conversion
    check_model_name(name)
    if version < 1:
        raise PackagingError(f"version must be >= 1, got {version}", field="version")
    out = Path(out_dir)
    _check_out_dir(out)
    adapter: Adapter = get_adapter(framework, options) if framework else detect(model, options=options)
    if isinstance(adapter, BundleWriter) and converter_python is None:
        if optimize or quantize or encrypt:
            raise PackagingError(
                f"--optimize/--quantize/--encrypt apply to ONNX artifacts, not to {adapter.name!r} bundles"
            )
        native = _load(adapter, model, allow_pickle)
        return adapter.write_bundle(native, sample, out, name=name, version=version, atol=atol, rtol=rtol)
    if converter_python is not None:
        exported = _export_in_interpreter(
            adapter, framework, model, sample, converter_python, converter_timeout,
            options=options, allow_pickle=allow_pickle, opset=opset, request=request,
        )  # fmt: skip
    else:
        exported = _export_here(adapter, model, sample, allow_pickle=allow_pickle, opset=opset, request=request)
    onnx_bytes, data_files = exported.result.onnx_bytes, exported.result.data_files
    if data_files and (optimize or quantize or encrypt):
        raise PackagingError(
            "--optimize/--quantize/--encrypt need the whole model in one model.onnx; this one keeps its weights"
            f" in {', '.join(sorted(data_files))} (over the inline limit)"
        )
    if optimize:
        from modelfn.onnx_optimize import optimize_onnx

        onnx_bytes = optimize_onnx(onnx_bytes, optimize)
        _refuse_unsafe_artifact(onnx_bytes, adapter.name)
    schema = read_schema(onnx_bytes)
    feeds = to_feeds(exported.sample, schema.inputs)
    labels = request.labels or exported.result.labels
    classifier = labels is not None
    parity = check_parity(
        onnx_bytes, exported.native, feeds, atol=atol, rtol=rtol, classifier=classifier, data_files=data_files
    )
    declared, notes = declare(
        request, schema.inputs, schema.outputs, labels=labels, feature_names=exported.result.feature_names,
        sample_outputs=exported.native,
    )  # fmt: skip
    parity = pipeline_report(parity, declared, images, request, onnx_bytes, feeds, atol=atol, data_files=data_files)
    compression = None
    if quantize:
        from modelfn.compression import quantize_int8

        quantized = quantize_int8(
            onnx_bytes, sample_feeds=feeds, native_outputs=exported.native, labels=labels,
            weight_type=quantize, reduce_range=True, min_agreement=min_agreement,
        )  # fmt: skip
        onnx_bytes, compression = quantized.onnx_bytes, quantized.report
        _refuse_unsafe_artifact(onnx_bytes, adapter.name)
        schema = read_schema(onnx_bytes)
    manifest = Manifest(
        name=name,
        version=version,
        framework=exported.result.framework,
        opset=schema.opset,
        inputs=schema.inputs,
        outputs=schema.outputs,
        labels=labels,
        parity=parity,
        compression=compression,
        preprocessing="; ".join(filter(None, [exported.result.notes, *notes])) or None,
        processing=declared,
        created_at=dt.datetime.now(dt.UTC),
        modelfn_version=__version__,
    )
    artifact, artifact_bytes = ONNX_ARTIFACT, onnx_bytes
    if encrypt is not None:
        artifact_bytes, manifest = _encrypt(onnx_bytes, manifest, encrypt)
        artifact = manifest.artifact
    out.mkdir(parents=True, exist_ok=True)
    for stale in {ONNX_ARTIFACT, ENCRYPTED_ARTIFACT} - {artifact}:  # a previous run's other artifact
        (out / stale).unlink(missing_ok=True)
    for old in out.iterdir():  # a previous run's external data
        if ONNX_DATA_RE.match(old.name) and old.name not in data_files:
            old.unlink()
    for data_name, data in sorted(data_files.items()):
        _write_atomic(out / data_name, data)
    _write_atomic(out / artifact, artifact_bytes)
    _write_atomic(out / MANIFEST_FILE, manifest.to_json())
    return manifest


def _encrypt(onnx_bytes: bytes, manifest: Manifest, encrypt: str | KeyWrapper) -> tuple[bytes, Manifest]:
    """Encrypt in memory; the manifest names the ciphertext and carries the wrapped data key."""
    from modelfn.bundle.encryption import encrypt_artifact, wrapper_for

    wrapper = wrapper_for(encrypt) if isinstance(encrypt, str) else encrypt
    ciphertext, record = encrypt_artifact(
        onnx_bytes, wrapper, name=manifest.name, version=manifest.version, artifact=ENCRYPTED_ARTIFACT
    )
    return ciphertext, manifest.replace(artifact=ENCRYPTED_ARTIFACT, encryption=record)


def _load(adapter: Adapter, model: Any, allow_pickle: bool) -> Any:
    """A file path goes through the adapter's loader; an in-memory object is used as is."""
    return adapter.load(Path(model), allow_pickle=allow_pickle) if isinstance(model, str | os.PathLike) else model


def _export_here(
    adapter: Adapter, model: Any, sample: Any, *, allow_pickle: bool, opset: int | None, request: ProcessingRequest
) -> _Exported:
    from modelfn.adapters.base import SampleNormalizer, feature_names_of
    from modelfn.bundle.schema import read_schema
    from modelfn.packaging_samples import RecordSamples, records_sample
    from modelfn.parity import synthesize_sample

    native = _load(adapter, model, allow_pickle)
    if isinstance(sample, RecordSamples):  # a CSV sample: its feature columns, in the model's order
        names = request.feature_names or feature_names_of(native)
        sample = records_sample(sample, names, by_column=adapter.name == "spark")
    if sample is not None and isinstance(adapter, SampleNormalizer):
        sample = adapter.normalize_sample(sample)
    result = adapter.export(native, sample, opset=opset)
    if result.feature_names is None:
        result = dataclasses.replace(result, feature_names=feature_names_of(native))
    _refuse_unsafe_artifact(result.onnx_bytes, adapter.name, result.data_files)
    if sample is None:
        sample = synthesize_sample(read_schema(result.onnx_bytes).inputs)
    return _Exported(result=result, sample=sample, native=adapter.native_predict(native, sample))


def _export_in_interpreter(
    adapter: Adapter,
    framework: str | None,
    model: Any,
    sample: Any,
    python: Path | str,
    timeout: float,
    *,
    options: Mapping[str, Any] | None,
    allow_pickle: bool,
    opset: int | None,
    request: ProcessingRequest,
) -> _Exported:
    from modelfn.converter_process import convert_in_interpreter
    from modelfn.packaging_samples import RecordSamples, records_sample

    if isinstance(sample, RecordSamples):  # names only from --feature-names: the model stays in the other interpreter
        sample = records_sample(sample, request.feature_names, by_column=adapter.name == "spark")
    if not isinstance(model, str | os.PathLike):
        raise PackagingError(
            "a converter interpreter (--python) converts model files; save the model and pass its path", field="model"
        )
    converted = convert_in_interpreter(
        python, framework or _dotted(adapter), Path(model), sample,
        options=options, allow_pickle=allow_pickle, opset=opset, timeout=timeout,
    )  # fmt: skip
    _refuse_unsafe_artifact(converted.result.onnx_bytes, converted.adapter_name)
    return _Exported(result=converted.result, sample=converted.sample, native=converted.native)


def _dotted(adapter: Adapter) -> str:
    """``pkg.mod:Class`` of a detected adapter, so the converter interpreter builds the same one."""
    cls = type(adapter)
    return f"{cls.__module__}:{cls.__qualname__}"


def _check_out_dir(out: Path) -> None:
    """Write only into a new/empty directory or over a previous unsigned package run."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise PackagingError(f"output path {out} is not a directory", field="out_dir")
    if not out.exists():
        return
    others = sorted(
        p.name
        for p in out.iterdir()
        if (p.name not in REPLACEABLE_FILES and not ONNX_DATA_RE.match(p.name)) or not p.is_file()
    )
    if others:
        raise PackagingError(
            f"output directory {out} is not empty ({', '.join(others[:5])}); use an empty directory"
            f" (only a previous {ONNX_ARTIFACT}/{MANIFEST_FILE} may be replaced)",
            field="out_dir",
        )


def _refuse_unsafe_artifact(data: bytes, adapter: str, data_files: Mapping[str, bytes] | None = None) -> None:
    """The artifact is ONNX or nothing: pickle, zip checkpoints and outside data never enter a bundle.

    External data is allowed only from the bundle's own data files, by the rule the run time applies.
    """
    from modelfn.runtime.onnx_guard import check_external_data, inspect_onnx, refuse_external_data

    try:
        facts = inspect_onnx(data, artifact=ONNX_ARTIFACT)
        if data_files:
            check_external_data(facts, data_files, artifact=ONNX_ARTIFACT)
        else:
            refuse_external_data(facts, artifact=ONNX_ARTIFACT)
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
