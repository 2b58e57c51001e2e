"""Run an adapter's load → export → native_predict in another Python interpreter.

Some frameworks cannot share modelfn's environment (MXNet 1.9 needs numpy<1.24 and onnx<1.16),
and some build inputs are pickles that should not be unpickled in the packaging process. Both
are solved by one move: hand the model path, adapter options and sample to a worker running in
the other interpreter (``modelfn._convert_worker``), and take back only plain data — ONNX bytes,
native outputs as ``.npz`` (read with ``allow_pickle=False``) and a JSON result. Schema, guard and
parity checks then run here, in modelfn's own environment, as for an in-process conversion.

The other interpreter needs Python >= 3.10, numpy, msgspec (``FrameworkInfo``) and the
framework; it imports modelfn from this source tree, never from its own site-packages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfn._convert_worker import (
    ERROR_FILE,
    EXIT_HANDLED,
    NATIVE_FILE,
    ONNX_FILE,
    REQUEST_FILE,
    RESULT_FILE,
    SAMPLE_FILE,
    USED_SAMPLE_FILE,
)
from modelfn.errors import PackagingError

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.adapters.base import ExportResult, SampleInput

DEFAULT_TIMEOUT_S = 600.0
STDERR_TAIL_CHARS = 2000
SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
"""Variables that would pull modelfn's own environment into the other interpreter."""

_BOOTSTRAP = (
    "import sys\n"
    "if sys.version_info < (3, 10):\n"
    "    sys.exit('modelfn converter worker needs Python >= 3.10, this is ' + sys.version.split()[0])\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from modelfn._convert_worker import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


@dataclasses.dataclass(frozen=True)
class Converted:
    """What came back from the other interpreter, ready for the checks in ``modelfn.packaging``."""

    result: ExportResult
    adapter_name: str
    native: dict[str, npt.NDArray[Any]]
    """The framework's outputs on ``sample``, computed in the other interpreter."""
    sample: SampleInput
    """The sample the native outputs belong to (the given one, or one the worker synthesized)."""


class ConverterWarning(UserWarning):
    """Warn with a message that modelfn code emitted inside the converter interpreter."""


def convert_in_interpreter(
    python: Path | str,
    adapter: str,
    model: Path | str,
    sample: SampleInput | None,
    *,
    options: Mapping[str, Any] | None = None,
    allow_pickle: bool = False,
    opset: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Converted:
    """Convert ``model`` with ``adapter`` (registry name or ``pkg.mod:Class``) inside ``python``."""
    interpreter = _check_interpreter(python)
    model_path = Path(model).resolve()
    if not model_path.exists():
        raise PackagingError(f"model file {model_path} does not exist", field="model")
    if timeout <= 0:
        raise PackagingError(f"converter timeout must be > 0 seconds, got {timeout}", field="converter_timeout")
    with tempfile.TemporaryDirectory(prefix="modelfn-convert-") as tmp:
        work = Path(tmp)
        request = {
            "adapter": adapter,
            "model": str(model_path),
            "options": _json_options(options),
            "allow_pickle": allow_pickle,
            "opset": opset,
            "sample": _write_arrays(work / SAMPLE_FILE, sample) if sample is not None else None,
        }
        (work / REQUEST_FILE).write_text(json.dumps(request))
        _run(interpreter, _source_root(work), work, timeout)
        return _read_result(work, sample)


def _check_interpreter(python: Path | str) -> Path:
    path = Path(python).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise PackagingError(
            f"converter interpreter {path} is not an executable file (expected e.g. /path/to/venv/bin/python)",
            field="python",
        )
    return path.absolute()  # keep a venv's bin/python symlink: resolving it would leave the venv


def _source_root(work: Path) -> Path:
    """A directory holding only this ``modelfn`` package, for the worker's ``sys.path``.

    The package's real parent may be a site-packages full of modern numpy/onnx; exposing it would
    undo the isolation, so the worker sees a link to the package alone.
    """
    import modelfn

    package_dir = Path(modelfn.__file__).resolve().parent
    root = work / "src"
    root.mkdir()
    try:
        (root / "modelfn").symlink_to(package_dir, target_is_directory=True)
    except OSError:  # no symlinks (some Windows setups): copy the sources instead
        import shutil

        shutil.copytree(package_dir, root / "modelfn", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _run(python: Path, root: Path, work: Path, timeout: float) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        proc = subprocess.run(
            [str(python), "-c", _BOOTSTRAP, str(root), str(work)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PackagingError(
            f"converter interpreter {python} did not finish within {timeout:g} s (raise converter_timeout)",
            field="converter_timeout",
        ) from exc
    except OSError as exc:
        raise PackagingError(f"cannot start converter interpreter {python}: {exc}", field="python") from exc
    if proc.returncode == 0:
        return
    error = _read_json(work / ERROR_FILE) if proc.returncode == EXIT_HANDLED else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        field = error.get("field")
        raise PackagingError(error["message"], field=field if isinstance(field, str) else None)
    tail = proc.stderr.strip()[-STDERR_TAIL_CHARS:] or proc.stdout.strip()[-STDERR_TAIL_CHARS:] or "(no output)"
    raise PackagingError(f"converter interpreter {python} failed (exit status {proc.returncode}):\n{tail}")


def _read_result(work: Path, sample: SampleInput | None) -> Converted:
    from modelfn.adapters.base import ExportResult
    from modelfn.bundle.manifest import FrameworkInfo

    data = _read_json(work / RESULT_FILE)
    onnx_path = work / ONNX_FILE
    if not isinstance(data, dict) or not onnx_path.is_file():
        raise PackagingError(f"converter interpreter left no {RESULT_FILE}/{ONNX_FILE}; see its output above")
    try:
        framework = FrameworkInfo.from_builtins(data["framework"])
        labels = data.get("labels")
        notes = data.get("notes")
        if labels is not None and not (isinstance(labels, list) and all(isinstance(v, str | int) for v in labels)):
            raise TypeError(f"labels must be a list of str/int, got {labels!r}")
        if notes is not None and not isinstance(notes, str):
            raise TypeError(f"notes must be a string, got {notes!r}")
        native = _read_arrays(work / NATIVE_FILE, data["native"])
        if not isinstance(native, dict):
            raise TypeError("native outputs must be named")
        used = data.get("used_sample")
        if sample is None:
            sample = _read_arrays(work / USED_SAMPLE_FILE, used) if used is not None else None
        adapter_name = str(data["adapter"])
        relayed = [(str(w["category"]), str(w["message"])) for w in data.get("warnings", [])]
    except (KeyError, TypeError, ValueError) as exc:  # from_builtins raises ValueError
        raise PackagingError(f"converter interpreter returned an unusable {RESULT_FILE}: {exc}") from exc
    if sample is None:
        raise PackagingError("converter interpreter returned no sample for the parity check", field="sample")
    for category, message in relayed:
        warnings.warn(message, _warning_class(category), stacklevel=3)
    result = ExportResult(onnx_bytes=onnx_path.read_bytes(), framework=framework, labels=labels, notes=notes)
    return Converted(result=result, adapter_name=adapter_name, native=native, sample=sample)


def _warning_class(category: str) -> type[Warning]:
    """Pickle warnings keep their class across the process boundary, so callers can filter them."""
    from modelfn.adapters.base import PickleLoadWarning

    return PickleLoadWarning if category == PickleLoadWarning.__name__ else ConverterWarning


def _json_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (options or {}).items():
        plain = str(value) if isinstance(value, os.PathLike) else value
        try:
            json.dumps(plain)
        except (TypeError, ValueError) as exc:
            raise PackagingError(
                f"option {key!r} ({type(value).__name__}) cannot be passed to a converter interpreter;"
                " use strings, numbers, booleans or lists of them",
                field="option",
            ) from exc
        out[str(key)] = plain
    return out


def _write_arrays(path: Path, sample: SampleInput) -> dict[str, Any]:
    """Save a sample as ``arr_0..`` in an ``.npz`` (no pickle); return how to rebuild it."""
    import numpy as np

    names = list(sample) if isinstance(sample, Mapping) else None
    arrays = [np.asarray(v) for v in (sample.values() if isinstance(sample, Mapping) else [sample])]
    for name, array in zip(names or ["sample"], arrays, strict=True):
        if array.dtype.hasobject:
            raise PackagingError(
                f"sample {name!r} has dtype object, which cannot cross to a converter interpreter without pickle;"
                " pass fixed-width strings (dtype 'U') or numbers",
                field="sample",
            )
    np.savez(path, *arrays)
    return {"names": names, "count": len(arrays)}


def _read_arrays(path: Path, layout: Any) -> Any:
    """Rebuild what ``_write_arrays`` (or the worker) saved: a dict by name, or one array."""
    import numpy as np

    if not isinstance(layout, dict):
        raise TypeError(f"array layout must be an object, got {layout!r}")
    names = layout.get("names")
    with np.load(path, allow_pickle=False) as npz:
        arrays = [npz[f"arr_{i}"] for i in range(int(layout["count"]))]
    if names is None:
        if len(arrays) != 1:
            raise ValueError(f"expected one unnamed array in {path.name}, got {len(arrays)}")
        return arrays[0]
    if not (isinstance(names, list) and len(names) == len(arrays)):
        raise ValueError(f"{path.name}: {len(arrays)} arrays for names {names!r}")
    return {str(n): a for n, a in zip(names, arrays, strict=True)}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
