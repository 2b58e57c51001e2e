"""``modelfn batch INPUT [OUTPUT]``: score files, folders or S3 prefixes with the signed bundle."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from modelfn.commands._options import (
    ConfigOpt,
    CustomCodeOpt,
    ModelOpt,
    StoreOpt,
    TrustOpt,
    VersionOpt,
    fail,
    load_settings,
)

if TYPE_CHECKING:
    from modelfn.config import Settings

FAILED_EXIT = 1
"""Exit status when some objects failed (the others were scored); 2 is a refused run (bad settings or bundle)."""


class Engine(StrEnum):
    """Where the scoring runs."""

    local = "local"
    spark = "spark"


def batch(
    input_url: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="A file, a folder, file://… or s3://bucket/prefix (or one s3:// object). The spark engine reads"
            " a Parquet or CSV file or folder (any Hadoop path Spark can read).",
            show_default=False,
        ),
    ],
    output_url: Annotated[
        str | None,
        typer.Argument(
            metavar="OUTPUT",
            help="Where results go: a folder, file://… or s3://bucket/prefix, outside INPUT"
            " (default: env MODELFN_OUTPUT_URL)",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    version: VersionOpt = None,
    trust: TrustOpt = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            case_sensitive=False,
            help="local: this process, one object at a time; spark: Apache Spark's mapInPandas (the spark extra and"
            " Java 17+), each executor verifying and loading the bundle once",
        ),
    ] = Engine.local,
    master: Annotated[
        str, typer.Option("--master", help="Spark master URL for --engine spark (local[2], spark://host:7077, yarn)")
    ] = "local[*]",
    chunk_rows: Annotated[
        int | None,
        typer.Option(
            "--chunk-rows",
            min=1,
            help="Rows read, predicted and written at once: per chunk of an object (local) or per Arrow batch"
            " (spark); default 10000 (env MODELFN_CHUNK_ROWS)",
            show_default=False,
        ),
    ] = None,
    allow_custom_code: CustomCodeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Score INPUT with the signed model: one result per input object under OUTPUT.

    The bundle is verified against the trusted keys before any input is read.

    Output naming, for each input object KEY (its path under INPUT; a single file is its own name):
      OUTPUT/KEY/MODEL-vVERSION-RUNID.EXT             the result
      OUTPUT/KEY/MODEL-vVERSION-RUNID.EXT.meta.json   rows, timings, model and input identity
      OUTPUT/KEY/MODEL-vVERSION-RUNID.EXT.error.json  why the object's data was refused
    RUNID hashes the input object's version and the model's digest: a re-run skips what is already
    scored, a changed input or a new model gets a new result beside the old one.
    CSV and Parquet keep their columns and gain prediction columns (y; y_0, y_1, … for a multi-column
    output; y_LABEL when the model has labels); JSONL gains one key per output; JSON becomes a V2
    response; NPY becomes NPZ. --engine spark writes a Spark dataset folder of the same name
    (part files and _SUCCESS) in the input's format, Parquet or CSV.

    A progress bar on a terminal, then one summary line (objects, rows, rows/s, failures).
    Exit status: 0 all scored, 1 some objects failed (each is listed), 2 the run was refused.
    """
    from modelfn.errors import ConfigError, ModelfnError

    try:
        settings = load_settings(
            config, trust, model_name=model, store_url=store, model_version=version, output_url=output_url,
            chunk_rows=chunk_rows, allow_custom_code=allow_custom_code,
        )  # fmt: skip
        if settings.output_url is None:
            raise ConfigError("no OUTPUT given and MODELFN_OUTPUT_URL is not set", field="output_url")
        if not settings.model_name:
            raise ConfigError("no model configured: pass --model or set MODELFN_MODEL_NAME", field="model_name")
        if engine is Engine.spark:
            _spark(settings, input_url, settings.output_url, master)
        else:
            _local(settings, input_url, settings.output_url)
    except ModelfnError as exc:
        raise fail(exc) from exc


def _local(settings: Settings, input_url: str, output_url: str) -> None:
    from modelfn.batch.runner import run_local

    summary = run_local(settings, input_url, output_url, progress=sys.stderr.isatty())
    for failure in summary.failures:
        typer.secho(f"failed: {failure.key}: {failure.message}", err=True, fg=typer.colors.RED)
    typer.echo(summary.line())
    if not summary.ok:
        raise typer.Exit(code=FAILED_EXIT)


def _spark(settings: Settings, input_url: str, output_url: str, master: str) -> None:
    from modelfn.batch.runner import check_output_outside
    from modelfn.batch.spark_engine import run_spark

    check_output_outside(input_url, output_url)
    outcome = run_spark(
        settings, input_url, output_url, master=master, chunk_rows=settings.chunk_rows, progress=sys.stderr.isatty()
    )
    typer.echo(outcome.line())
