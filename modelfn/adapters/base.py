"""The adapter contract: what a framework module must offer to become a bundle.

One small Protocol so a new framework plugs in with one module and one registry line, and a few
helpers every adapter needs (pickle consent, sample shapes). Build time only: nothing on the
serving path imports this package.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeAlias, runtime_checkable

from modelfn.bundle.layout import PICKLE_EXTENSIONS
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelfn.bundle.manifest import FrameworkInfo, Manifest

SampleInput: TypeAlias = "npt.NDArray[Any] | dict[str, npt.NDArray[Any]]"
"""One array for single-input models, or arrays by input name."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What an adapter hands to packaging: the ONNX bytes and what to record about them."""

    onnx_bytes: bytes
    framework: FrameworkInfo
    labels: list[str | int] | None = None
    """Class labels in output-index order (classifiers only)."""
    notes: str | None = None
    """Preprocessing or output notes copied into the manifest."""
    data_files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    """External-data files by name (``model.onnx.data``) for a model too large to be one ``model.onnx``."""
    feature_names: list[str] | None = None
    """Names of the input's feature columns in order (sklearn ``feature_names_in_``, Spark input columns)."""


class Adapter(Protocol):
    """One framework's way from a model (object or file) to ONNX bytes, plus its native predictions."""

    name: ClassVar[str]
    """The registry key (``sklearn``, ``onnx``, ...), recorded as the manifest's framework name."""

    @classmethod
    def detects(cls, model: Any) -> bool:
        """True when ``model`` (a native object or a ``Path``) belongs to this framework; cheap, no heavy imports."""
        ...

    def load(self, path: Path, *, allow_pickle: bool) -> Any:
        """Read a model file into the native object; refuse pickle unless ``allow_pickle``."""
        ...

    def export(self, model: Any, sample: SampleInput | None, *, opset: int | None) -> ExportResult:
        """Convert the native object to ONNX; raise ``PackagingError`` when a sample is required but None."""
        ...

    def native_predict(self, model: Any, sample: SampleInput) -> dict[str, np.ndarray[Any, Any]]:
        """The framework's own outputs on ``sample``, keyed by the ONNX output names (for parity)."""
        ...


@runtime_checkable
class SampleNormalizer(Protocol):
    """An adapter whose users hand samples in a framework's own shape (a DataFrame): it turns them into arrays."""

    def normalize_sample(self, sample: Any) -> SampleInput:
        """The sample as one array or arrays by ONNX input name."""
        ...


@runtime_checkable
class BundleWriter(Protocol):
    """An adapter whose artifact is not ONNX (custom code): it writes the whole unsigned bundle itself."""

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
        """Copy the artifact and data files into ``out_dir``, check parity, write and return the manifest."""
        ...


class PickleLoadWarning(UserWarning):
    """Warn when a pickle-family file is loaded at build time (it can run arbitrary code)."""


def require_pickle_consent(path: Path, *, allow_pickle: bool, adapter: str) -> None:
    """Refuse a pickle-family file unless the caller opted in; warn loudly when they did."""
    if not allow_pickle:
        raise PackagingError(
            f"{adapter}: {path.name} is a pickle-family file ({path.suffix}); loading it runs arbitrary code."
            " Pass allow_pickle=True (CLI: --allow-pickle) only for files you trust, or save the model in a"
            " safe format (.skops for scikit-learn, .onnx)",
            field="allow_pickle",
        )
    warnings.warn(
        f"loading {path.name} with pickle at build time: pickle runs arbitrary code, only load files you trust."
        " The bundle itself never contains pickle",
        PickleLoadWarning,
        stacklevel=4,
    )


def load_pickled(path: Path, *, allow_pickle: bool, adapter: str, extra: str) -> Any:
    """Unpickle a build input only after explicit consent (warning), any failure as a PackagingError."""
    require_pickle_consent(path, allow_pickle=allow_pickle, adapter=adapter)
    joblib = import_extra("joblib", extra=extra)
    try:
        return joblib.load(path)
    except Exception as exc:  # unpickling raises anything the payload chooses
        raise PackagingError(f"{adapter}: cannot load {path.name}: {exc}", field="model") from exc


def is_pickle_path(path: Path) -> bool:
    """True for the pickle-family suffixes that never enter a bundle."""
    return path.suffix.lower() in PICKLE_EXTENSIONS


def single_array(sample: SampleInput | None, *, adapter: str) -> tuple[str | None, npt.NDArray[Any]]:
    """The one array of a single-input sample, with its input name when the sample was a dict."""
    import numpy as np

    if sample is None:
        raise PackagingError(f"{adapter}: a sample input is required to infer the input schema", field="sample")
    if isinstance(sample, dict):
        if len(sample) != 1:
            raise PackagingError(
                f"{adapter}: expected one input array, got {len(sample)} ({sorted(sample)})", field="sample"
            )
        ((name, value),) = sample.items()
        return name, np.asarray(value)
    return None, np.asarray(sample)


def feature_names_of(model: Any) -> list[str] | None:
    """The feature names a fitted model recorded: ``feature_names_in_`` (scikit-learn API), an XGBoost
    Booster's ``feature_names``, a LightGBM Booster's ``feature_name()`` (its ``Column_i`` defaults are no names)."""
    names = getattr(model, "feature_names_in_", None)
    if names is None and hasattr(model, "get_booster"):
        names = getattr(model.get_booster(), "feature_names", None)
    if names is None and not callable(getattr(model, "feature_names", None)):
        names = getattr(model, "feature_names", None)
    if names is None and callable(getattr(model, "feature_name", None)):
        names = model.feature_name()
    if names is None or len(names) == 0:
        return None
    listed = [str(name) for name in names]
    if all(name == f"Column_{i}" for i, name in enumerate(listed)):
        return None
    return listed


def class_from(model: Any, *packages: str) -> bool:
    """True when the object's class, or a base class, is defined in one of ``packages`` (no import needed)."""
    for cls in type(model).__mro__:
        module = getattr(cls, "__module__", "") or ""
        if any(module == p or module.startswith(p + ".") for p in packages):
            return True
    return False


def import_extra(module: str, *, extra: str) -> Any:
    """Import a build-time dependency, or say which ``modelfn[extra]`` to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PackagingError(f"{module} is not installed; install it with: pip install 'modelfn[{extra}]'") from exc
