"""`modelfn batch` on the local engine: walk a file, a folder or an ``s3://`` prefix and score each object.

The bundle is verified and loaded once; every object then goes through ``job.score_object``, the
same code the storage-event function runs, so results, names and idempotency are identical
(re-running skips what is already scored). A failing object is recorded and the walk goes on; the
summary lists every failure. Objects with an extension no format reads (``notes.txt``) and hidden
names (``.meta``, ``_SUCCESS``) are skipped when walking a folder or prefix; a single named object
is always tried. The output location may not lie inside the input, so a re-run never scores its
own results.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from modelfn.errors import ConfigError, ModelfnError, ObjectNotFound

if TYPE_CHECKING:
    from modelfn.batch.job import JobOutcome
    from modelfn.config import Settings
    from modelfn.loader import LoadedBundle
    from modelfn.store.base import ObjectInfo, Store


@dataclasses.dataclass(frozen=True)
class Failure:
    """One object that could not be scored, and why (the error's own message)."""

    key: str
    code: str
    message: str


@dataclasses.dataclass
class BatchSummary:
    """What a whole run did: per-object outcomes, failures, skipped names, rows and wall time."""

    input_url: str
    output_url: str
    outcomes: list[JobOutcome] = dataclasses.field(default_factory=list)
    failures: list[Failure] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows scored in this run (objects already done count as theirs, from their meta record)."""
        return sum(outcome.rows for outcome in self.outcomes)

    @property
    def rows_per_s(self) -> float:
        """Rows per second of wall time, loading included."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        """True when no object failed."""
        return not self.failures

    def line(self) -> str:
        """The one-line summary printed after every run."""
        done = sum(1 for outcome in self.outcomes if outcome.already_done)
        parts = [f"{len(self.outcomes)} scored" + (f" ({done} already done)" if done else "")]
        parts.append(f"{len(self.failures)} failed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return (
            f"{', '.join(parts)}: {self.rows} rows in {self.seconds:.2f} s ({self.rows_per_s:,.0f} rows/s)"
            f" -> {self.output_url}"
        )


@dataclasses.dataclass(frozen=True)
class InputObjects:
    """The store an INPUT names and the objects under it to score."""

    store: Store
    objects: list[ObjectInfo]
    skipped: list[str]


def walk_input(url: str) -> InputObjects:
    """A file, a folder, ``file://…`` or ``s3://bucket/prefix`` (or one object) → the objects to score."""
    from modelfn.batch.formats import EXTENSIONS
    from modelfn.store.registry import store_for

    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = Path(unquote(parts.path) if parts.scheme else url)
        if path.is_file():
            return _single(store_for(str(path.parent)), path.name)
        if not path.is_dir():
            raise ObjectNotFound(f"input {url!r} is neither a file nor a folder", field="input")
        store = store_for(str(path))
    elif parts.scheme == "s3":
        key = parts.path.strip("/")
        parent, _, name = key.rpartition("/")
        root = f"s3://{parts.netloc}/{parent}" if parent else f"s3://{parts.netloc}"
        if name and any(info.key == name for info in store_for(root).list(name)):
            return _single(store_for(root), name)
        store = store_for(url)
    else:
        raise ConfigError(f"input {url!r}: use a path, file://… or s3://bucket/prefix", field="input")
    objects, skipped = [], []
    for info in store.list(""):
        if info.is_link or any(p.startswith((".", "_")) for p in info.key.split("/")):
            skipped.append(info.key)
        elif PurePosixPath(info.key).suffix and PurePosixPath(info.key).suffix.lower() not in EXTENSIONS:
            skipped.append(info.key)
        else:
            objects.append(info)
    if not objects:
        raise ObjectNotFound(f"input {url!r} holds nothing to score (skipped: {len(skipped)})", field="input")
    return InputObjects(store, objects, skipped)


def check_output_outside(input_url: str, output_url: str) -> None:
    """Refuse an output location inside the input (a re-run would score its own results)."""
    from modelfn.batch.locations import contains

    if contains(input_url, output_url):
        raise ConfigError(
            f"output {output_url!r} lies inside input {input_url!r}; choose an output outside it", field="output"
        )


def run_local(
    settings: Settings,
    input_url: str,
    output_url: str,
    *,
    chunk_rows: int | None = None,
    progress: bool = False,
    bundle: LoadedBundle | None = None,
) -> BatchSummary:
    """Verify and load the bundle once, then score every input object into ``output_url``.

    ``chunk_rows`` defaults to ``settings.chunk_rows``; ``bundle`` skips the load when already verified.
    """
    from modelfn.batch.job import score_object
    from modelfn.batch.sink import output_for
    from modelfn.loader import load_bundle

    started = time.perf_counter()
    check_output_outside(input_url, output_url)
    found = walk_input(input_url)
    output = output_for(output_url)
    loaded = bundle or load_bundle(settings)
    rows_per_chunk = chunk_rows or settings.chunk_rows
    summary = BatchSummary(input_url=input_url, output_url=output.url, skipped=found.skipped)
    with _Progress(progress, len(found.objects)) as bar:
        for info in found.objects:
            bar.start(info.key)
            try:
                summary.outcomes.append(
                    score_object(loaded, found.store, info.key, output, pin=info, chunk_rows=rows_per_chunk)
                )
            except ModelfnError as exc:
                summary.failures.append(Failure(info.key, exc.code, exc.message))
            except Exception as exc:  # one unreadable object must not end the walk; it is listed instead
                summary.failures.append(Failure(info.key, "unexpected", f"{type(exc).__name__}: {exc}"))
            bar.done(summary.rows)
    summary.seconds = time.perf_counter() - started
    return summary


def _single(store: Store, name: str) -> InputObjects:
    info = next((i for i in store.list(name) if i.key == name), None)
    if info is None:
        raise ObjectNotFound(f"input {store.url.rstrip('/')}/{name} does not exist", field="input")
    return InputObjects(store, [info], [])


class _Progress:
    """A rich progress bar on stderr (objects done, rows, the object being scored) when asked, else nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rows]:,} rows"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("scoring", total=self.total, rows=0)
        return self

    def start(self, key: str) -> None:
        """Show the object now being scored."""
        if self._bar is not None:
            self._bar.update(self._task, description=key if len(key) <= 40 else "…" + key[-39:])

    def done(self, rows: int) -> None:
        """Count one more object finished (scored or failed) and the rows so far."""
        if self._bar is not None:
            self._bar.update(self._task, advance=1, rows=rows)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
