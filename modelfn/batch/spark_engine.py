"""`modelfn batch --engine spark`: score a Parquet or CSV data set on Apache Spark with the signed bundle.

The driver verifies and loads the bundle first (a refused bundle fails before any task starts) and
derives the output schema from it: the input columns, then the prediction columns that
``tabular.prediction_columns`` names. Each executor Python worker then verifies and loads the same
bundle, from the same store, with the same trust set, pinned to the version and root digest the
driver saw, once (a module-level cache keyed by the settings; Spark reuses Python workers across
tasks), and maps Arrow batches through ``tabular.feeds_from_columns`` and the model. Executors
need onnxruntime, never the training framework. Trusted keys travel as inline PEM and local paths
as absolute paths. pyspark and pandas are imported only here, lazily.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from modelfn.errors import ConfigError, ModelfnError, ObjectNotFound, StoreError, UnprocessableInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelfn.bundle.manifest import Manifest
    from modelfn.config import Settings
    from modelfn.loader import LoadedBundle

DEFAULT_MASTER = "local[*]"
SESSION_CONFIG = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
"""Set on sessions this module starts; an existing (cluster) session is used as configured."""
SAMPLE_ROWS = 16
"""Rows the driver scores to learn the prediction columns' names and types."""
Format = Literal["parquet", "csv"]
FORMATS: tuple[Format, ...] = ("parquet", "csv")

_LOADED: dict[Settings, LoadedBundle] = {}
_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class SparkOutcome:
    """What one Spark run did: rows scored, wall time, where the result went."""

    rows: int
    seconds: float
    output: str
    format: Format
    already_done: bool = False

    @property
    def rows_per_s(self) -> float:
        """Throughput over the whole run (read, score, write)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line summary printed after a run."""
        if self.already_done:
            return f"already done (nothing written) -> {self.output}"
        return f"{self.rows} rows in {self.seconds:.2f} s ({self.rows_per_s:,.0f} rows/s) -> {self.output}"


def loaded(settings: Settings) -> LoadedBundle:
    """The verified, loaded bundle for ``settings``: loaded once per process, then reused."""
    with _LOCK:
        bundle = _LOADED.get(settings)
        if bundle is None:
            from modelfn.loader import load_bundle

            bundle = _LOADED[settings] = load_bundle(settings)
        return bundle


def score_frames(settings: Settings, frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Each pandas batch with its prediction columns appended (the function every executor runs)."""
    bundle = loaded(settings)
    manifest = bundle.manifest
    for frame in frames:
        yield _with_predictions(frame, bundle, manifest)


def portable_settings(settings: Settings) -> Settings:
    """Settings that mean the same on every executor: keys as inline PEM, local store paths absolute."""
    from cryptography.hazmat.primitives import serialization

    from modelfn.signing.keys import load_public_key

    pems = tuple(
        load_public_key(entry)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
        for entry in settings.trusted_keys
    )
    return settings.replace(trusted_keys=pems, store_url=absolute_url(settings.store_url))


def absolute_url(url: str) -> str:
    """A bare local path made absolute (executors may run elsewhere); URLs with a scheme unchanged."""
    return str(Path(url).expanduser().absolute()) if urlsplit(url).scheme == "" else url


def spark_session(master: str = DEFAULT_MASTER, *, config: dict[str, str] | None = None) -> Any:
    """A SparkSession on ``master``; for a local master the workers run this very interpreter."""
    builder = _pyspark_sql().SparkSession.builder.master(master).appName("modelfn-batch")
    for key, value in {**SESSION_CONFIG, **(config or {})}.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # a missing JVM surfaces as PySparkRuntimeError / RuntimeError
        raise ConfigError(
            f"cannot start Spark on {master!r} (is Java 17+ installed and on PATH?): {exc}", field="master"
        ) from exc
    session.sparkContext.setLogLevel("ERROR")
    if master.startswith("local"):
        # Local executors are child processes of this machine: run them with the interpreter that
        # has modelfn and onnxruntime, whatever PYSPARK_PYTHON says.
        session.sparkContext.pythonExec = sys.executable
    return session


def run_spark(
    settings: Settings,
    input_url: str,
    output_url: str,
    *,
    master: str = DEFAULT_MASTER,
    chunk_rows: int | None = None,
    session: Any = None,
    bundle: LoadedBundle | None = None,
    progress: bool = False,
) -> SparkOutcome:
    """Score ``input_url`` (Parquet or CSV) with Spark into ``output_url`` (same format); idempotent.

    The driver verifies the bundle first (or takes the verified ``bundle`` given); executors are then
    pinned to its exact version and root digest, so they load the bundle the driver checked or nothing.
    The result is the Spark dataset folder ``<output_url>/<input name>/<model>-v<version>-<run id>.<fmt>``
    (the run id covers the input's files and the model's digest). A result holding Spark's ``_SUCCESS``
    marker is left alone and reported as already done; a partial one is replaced. ``session`` (else the
    active one) is used and left running; only a session started here, on ``master``, is stopped.
    ``progress`` turns on Spark's console progress bar (stages, tasks) in a session started here.
    """
    from modelfn.loader import load_bundle

    started = time.perf_counter()
    source = absolute_url(input_url)
    fmt = data_format(source)
    portable = portable_settings(settings)
    bundle = bundle or load_bundle(portable)
    pinned = portable.replace(model_version=str(bundle.manifest.version), pinned_digest=bundle.root_digest)
    target = result_url(source, absolute_url(output_url), bundle, fmt)
    if _committed(target):
        return SparkOutcome(rows=0, seconds=0.0, output=target, format=fmt, already_done=True)
    own = session is None and _active_session() is None
    config = {"spark.ui.showConsoleProgress": "true"} if progress else None
    spark = session or _active_session() or spark_session(master, config=config)
    try:
        if chunk_rows is not None:
            spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
        frame = _read(spark, source, fmt)
        scored = frame.mapInPandas(functools.partial(score_frames, pinned), _output_schema(frame, bundle))
        try:
            _write(scored, target, fmt)
        except Exception as exc:  # an executor's refusal arrives as a Py4J / PythonException
            raise _job_error(exc) from exc
        rows = spark.read.format(fmt).option("header", "true").load(target).count()
    finally:
        if own:
            spark.stop()
    return SparkOutcome(rows=rows, seconds=time.perf_counter() - started, output=target, format=fmt)


def _pyspark_sql() -> Any:
    try:
        import pyspark.sql
    except ImportError as exc:
        raise ConfigError(f"the spark engine needs the spark extra: pip install 'modelfn[spark]' ({exc})") from exc
    return pyspark.sql


def _active_session() -> Any:
    return _pyspark_sql().SparkSession.getActiveSession()


def result_url(source: str, output_url: str, bundle: LoadedBundle, fmt: Format) -> str:
    """``<output_url>/<input name>/<model>-v<version>-<run id>.<fmt>``; same input and model, same name."""
    import hashlib

    identity = [source, bundle.root_digest, *_file_identities(source)]
    rid = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
    name = PurePosixPath(urlsplit(source).path.rstrip("/")).name or "input"
    manifest = bundle.manifest
    return f"{output_url.rstrip('/')}/{name}/{manifest.name}-v{manifest.version}-{rid}.{fmt}"


def data_format(url: str) -> Format:
    """Parquet or CSV, from the name's suffix or (for a local folder) the files in it; Parquet otherwise."""
    for fmt in FORMATS:
        if url.rstrip("/").lower().endswith(f".{fmt}"):
            return fmt
    path = _local_path(url)
    if path is None:
        return "parquet"
    if not path.exists():
        raise ObjectNotFound(f"input {url!r} does not exist", field="input")
    suffixes = {p.suffix.lower() for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))}
    return "csv" if ".csv" in suffixes and ".parquet" not in suffixes else "parquet"


def _with_predictions(frame: pd.DataFrame, bundle: LoadedBundle, manifest: Manifest) -> pd.DataFrame:
    from modelfn.batch.tabular import feeds_from_columns, prediction_columns

    columns = {str(name): frame[name].to_numpy() for name in frame.columns}
    predictions = prediction_columns(bundle.model.predict(feeds_from_columns(columns, manifest)), manifest)
    clash = next((name for name in predictions if name in columns), None)
    if clash is not None:
        raise UnprocessableInput(f"input column {clash!r} has the name of a prediction column", field=clash)
    return frame.assign(**predictions)


def _output_schema(frame: Any, bundle: LoadedBundle) -> Any:
    """Input fields, then one field per prediction column, typed from a scored sample of the input."""
    import pandas as pd
    from pyspark.sql.types import NumericType, StructField, StructType

    sample = frame.limit(SAMPLE_ROWS).toPandas()
    if sample.empty:  # no rows to learn from: one zero per numeric column gives the prediction types
        sample = pd.DataFrame({f.name: [0.0 if isinstance(f.dataType, NumericType) else ""] for f in frame.schema})
    scored = _with_predictions(sample, bundle, bundle.manifest)
    fields = list(frame.schema.fields)
    for name in scored.columns[len(sample.columns) :]:
        fields.append(StructField(str(name), _spark_type(scored[name].to_numpy()), nullable=True))
    return StructType(fields)


def _spark_type(values: np.ndarray[Any, Any]) -> Any:
    """The Spark type of a prediction column (text for strings; numbers and booleans as numpy says)."""
    from pyspark.sql import types

    if values.dtype.kind in "OUS":
        return types.StringType()
    mapped = {
        "bool": types.BooleanType, "int8": types.ByteType, "int16": types.ShortType, "int32": types.IntegerType,
        "int64": types.LongType, "float32": types.FloatType, "float64": types.DoubleType,
    }.get(values.dtype.name)  # fmt: skip
    if mapped is None:
        raise UnprocessableInput(
            f"a prediction column has dtype {values.dtype}, which Spark cannot hold", field="outputs"
        )
    return mapped()


def _local_path(url: str) -> Path | None:
    """The local path of a bare path or ``file://`` URL; None for other schemes (s3a, hdfs, gs)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return Path(url) if parts.scheme == "" else None


def _file_identities(source: str) -> list[str]:
    """(relative name, size, mtime) of each local input file: a changed input gets a new result name."""
    path = _local_path(source)
    if path is None or not path.exists():
        return []
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [f"{p.relative_to(path) if p != path else p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]


def _committed(target: str) -> bool:
    """True when a local output already holds Spark's success marker (a finished earlier run)."""
    path = _local_path(target)
    return path is not None and (path / "_SUCCESS").is_file()


def _read(spark: Any, source: str, fmt: Format) -> Any:
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    try:
        return reader.format(fmt).load(source)
    except Exception as exc:  # AnalysisException: path missing, no files, unreadable schema
        raise StoreError(f"cannot read {fmt} input {source!r}: {_first_line(exc)}", field="input") from exc


def _write(scored: Any, target: str, fmt: Format) -> None:
    writer = scored.write.mode("overwrite").format(fmt)
    if fmt == "csv":
        writer = writer.option("header", "true")
    writer.save(target)


def _job_error(exc: BaseException) -> ModelfnError:
    """The typed modelfn error an executor raised (class and message from its traceback), else a StoreError."""
    import re

    from modelfn import errors

    found = re.findall(r"modelfn\.errors\.(\w+): (.+)", str(exc))
    if found:
        name, message = found[-1]
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and issubclass(kind, ModelfnError):
            return kind(message.strip())
    return StoreError(f"the Spark job failed: {_first_line(exc)}", field="output")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
