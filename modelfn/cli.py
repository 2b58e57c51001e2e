"""`modelfn …`: package, sign, verify, push and serve models.

Each command is a thin shell over a library function; heavy modules (onnxruntime, sklearn,
boto3, fastapi) are imported inside the command that needs them so ``--help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelfn.commands import batch as batch_command
from modelfn.commands import deploy as deploy_command
from modelfn.commands import event as event_command
from modelfn.commands import keys as keys_command
from modelfn.commands import plan as plan_command
from modelfn.commands._options import (
    ConfigOpt,
    CustomCodeOpt,
    ModelOpt,
    StoreOpt,
    TrustOpt,
    VersionOpt,
)
from modelfn.commands._options import fail as _fail
from modelfn.commands._options import load_settings as _settings
from modelfn.errors import ModelfnError

if TYPE_CHECKING:
    from modelfn.bundle.manifest import Manifest
    from modelfn.config import Settings

OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output", help="Storage events: where results go, s3://bucket/prefix or a path [env MODELFN_OUTPUT_URL]"
    ),
]

app = typer.Typer(
    name="modelfn",
    help="Turn a trained model into a small, signed, serverless inference function.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts show literal [env MODELFN_…] and [a|b], not rich markup
)


@app.command()
def package(
    model: Annotated[
        str,
        typer.Argument(
            help="Model file or directory: .onnx, .skops, .safetensors, .keras, SavedModel dir, .pb,"
            " XGBoost .json/.ubj, LightGBM .txt, Spark PipelineModel dir, MXNet -symbol.json, custom-code dir"
            " (.joblib/.pkl/.pt/.pth only with --allow-pickle)"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name (lowercase, digits, . _ -)")],
    version: Annotated[int, typer.Option("--version", "-v", min=1, help="Bundle version (monotonic integer)")] = 1,
    sample: Annotated[
        Path | None,
        typer.Option(
            "--sample",
            help="Parity-check sample input: .npy (.npz for several inputs), a .csv with a header (columns picked by"
            " feature name), or an image / a folder of .jpg/.png/.webp images (run through --preprocess image:...)",
        ),
    ] = None,
    framework: Annotated[
        str | None,
        typer.Option("--framework", "-f", help="Adapter name (see README) or pkg.mod:Class; skips detection"),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-O", help="Adapter option key=value, repeatable (e.g. model_class=pkg.mod:Net)"),
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option("--params", help="Weights file beside a graph file (MXNet .params); = --option params="),
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option("--allow-pickle", help="Allow loading pickle-based files (runs arbitrary code; build time only)"),
    ] = False,
    python: Annotated[
        Path | None,
        typer.Option(
            "--python", help="Convert in this interpreter (a venv with the framework, e.g. MXNet) as a subprocess"
        ),
    ] = None,
    atol: Annotated[float, typer.Option(help="Parity: absolute tolerance")] = 1e-4,
    rtol: Annotated[float, typer.Option(help="Parity: relative tolerance")] = 1e-3,
    optimize: Annotated[
        str | None, typer.Option("--optimize", help="Offline graph optimization: basic or extended (portable levels)")
    ] = None,
    quantize: Annotated[str | None, typer.Option("--quantize", help="Dynamic weight quantization: int8")] = None,
    min_agreement: Annotated[
        float, typer.Option("--min-agreement", help="Quantization: refuse below this label agreement on the sample")
    ] = 0.99,
    encrypt: Annotated[
        str | None,
        typer.Option(
            "--encrypt", help="Store the model AES-256-GCM encrypted: kms:<key id|ARN|alias> or a wrapping key file"
        ),
    ] = None,
    preprocess: Annotated[
        str | None,
        typer.Option(
            "--preprocess",
            help="Declare the bundle's preprocessing (signed, applied at run time): a .json/.toml file with image,"
            " records and output tables, or image:size=224,resize=256,mean=imagenet,std=imagenet,layout=NCHW"
            " (keys: the image fields; input= defaults to the only 4-D input), or records (named features)",
        ),
    ] = None,
    feature_names: Annotated[
        str | None,
        typer.Option(
            "--feature-names",
            help="Feature names in the model's column order: a,b,c or @file (one per line); declares records",
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Class labels in output order: a text file (one per line, like imagenet_classes.txt) or a JSON"
            " list; overrides the framework's. With labels, output processing (labels, top-k) is declared",
        ),
    ] = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", min=1, help="Output processing: how many labels to answer (default 5)")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold", min=0.0, max=1.0, help="Binary classifiers: probability of the positive (last) label"
        ),
    ] = None,
    softmax: Annotated[
        bool | None,
        typer.Option(
            "--softmax/--sigmoid",
            help="Activation applied to the class scores; default: softmax (sigmoid for one score) when the sample"
            " scores are not probabilities already, none otherwise",
        ),
    ] = None,
    classify: Annotated[
        bool | None,
        typer.Option(
            "--classify/--no-classify",
            help="Declare output processing (labels, top-k); default: when labels are known",
        ),
    ] = None,
    reference_preprocess: Annotated[
        str | None,
        typer.Option(
            "--reference-preprocess",
            help="module:function: your preprocessing, given a PIL image as opened from each --sample image and"
            " returning its tensor; the pipeline's tensors must match it within --atol",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="On failure, print the converter's full error and traceback")
    ] = False,
) -> None:
    """Convert a model into an unsigned bundle (model.onnx + manifest.json) with a parity report."""
    import warnings

    from modelfn.adapters._converter_error import brief
    from modelfn.packaging import package as do_package
    from modelfn.packaging_processing import ProcessingRequest
    from modelfn.packaging_samples import read_sample
    from modelfn.processing_flags import parse_names, read_labels

    try:
        sample_value = read_sample(sample) if sample else None
        request = ProcessingRequest(
            preprocess=preprocess, feature_names=parse_names(feature_names) if feature_names else None,
            labels=read_labels(labels) if labels else None, top_k=top_k, threshold=threshold,
            activation=None if softmax is None else "softmax" if softmax else "sigmoid", classify=classify,
            reference_preprocess=reference_preprocess,
        )  # fmt: skip
        options = _parse_options(option or [])
        if params is not None:
            options["params"] = str(params)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            manifest = do_package(
                model, sample_value, out, name=name, version=version, framework=framework, allow_pickle=allow_pickle,
                atol=atol, rtol=rtol, options=options, converter_python=python, optimize=optimize, quantize=quantize,
                min_agreement=min_agreement, encrypt=encrypt, processing=request,
            )  # fmt: skip
        for warning in caught:
            typer.secho(f"warning: {warning.message}", err=True, fg=typer.colors.YELLOW)
    except ModelfnError as exc:
        if verbose:
            import traceback

            typer.echo("".join(traceback.format_exception(exc)), err=True)
            raise _fail(exc) from exc
        typer.secho(f"error: {brief(exc)}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from exc
    _report_package(manifest, out)


def _parse_options(pairs: list[str]) -> dict[str, str]:
    from modelfn.errors import PackagingError

    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PackagingError(f"--option takes key=value, got {pair!r}", field="option")
        options[key.strip()] = value
    return options


def _report_package(manifest: Manifest, out: Path) -> None:
    typer.echo(f"packaged {manifest.name} v{manifest.version} ({manifest.framework.name}) -> {out}")
    parity = manifest.parity
    if parity:
        agreement = "" if parity.label_agreement is None else f", label agreement {parity.label_agreement:.3f}"
        typer.echo(f"parity on {parity.samples} samples: max abs diff {parity.max_abs_diff:.3g}{agreement}")
        if parity.preprocessing_max_abs_diff is not None:
            top1 = parity.preprocessing_top1_agreement
            typer.echo(
                f"preprocessing parity vs {parity.preprocessing_reference} on {parity.preprocessing_samples} images:"
                f" max abs diff {parity.preprocessing_max_abs_diff:.3g}"
                + ("" if top1 is None else f", top-1 agreement {top1:.3f}")
            )
    if manifest.processing is not None:
        parts = [p for p in ("image", "records", "output") if getattr(manifest.processing, p) is not None]
        typer.echo(
            f"processing declared: {', '.join(parts)}"
            + (f" ({manifest.preprocessing})" if manifest.preprocessing else "")
        )
    compression = manifest.compression
    if compression:
        native_agreement = compression.label_agreement_native
        agreement_text = "" if native_agreement is None else f", label agreement {native_agreement:.3f}"
        typer.echo(
            f"quantized {compression.weight_type}: {compression.size_before} -> {compression.size_after} bytes,"
            f" max abs diff vs float {compression.max_abs_diff_onnx:.3g}{agreement_text}"
        )


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory")],
    trust: TrustOpt = None,
    min_version: Annotated[int, typer.Option("--min-version", help="Refuse signed versions below this")] = 0,
) -> None:
    """Verify a bundle directory against trusted keys exactly as the function does before loading."""
    from modelfn.bundle.layout import MANIFEST_FILE
    from modelfn.bundle.manifest import Manifest
    from modelfn.signing.keys import TrustSet
    from modelfn.signing.verify import VerifyPolicy, check_min_version, signed_identity, verify_directory

    try:
        settings = _settings(trust=trust)
        result = verify_directory(bundle, TrustSet.from_entries(settings.trusted_keys), VerifyPolicy())
        st = result.statement
        model_name, version = st.name, st.version
        if MANIFEST_FILE in result.files:  # a signed manifest names the model when the predicate does not
            manifest = Manifest.from_json(result.files[MANIFEST_FILE])
            model_name, version = signed_identity(st, manifest.name, manifest.version)
        check_min_version(version, min_version)
    except ModelfnError as exc:
        raise _fail(exc) from exc
    shown = f"v{version}" if version is not None else "(no signed version)"
    typer.echo(f"OK {model_name} {shown} root sha256:{st.root_digest} signed by key {st.key_hint[:16]}…")
    for name in sorted(st.resources):
        typer.echo(f"  {st.resources[name]}  {name}")


@app.command()
def push(
    bundle: Annotated[Path, typer.Argument(help="Signed bundle directory")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Upload a signed bundle to the store as <name>/<version>/ (claimed first, signature last; versions are immutable).

    Of two concurrent pushes of one version exactly one succeeds; the other fails (exit 2) without
    writing anything under the version.
    """
    from modelfn.bundle.manifest import Manifest
    from modelfn.repository.transfer import push_bundle
    from modelfn.store.registry import store_for

    try:
        settings = _settings(config, store_url=store)
        manifest = Manifest.from_json((bundle / "manifest.json").read_bytes())
        target = store_for(settings.store_url, settings)
        prefix = push_bundle(bundle, target, name=manifest.name, version=manifest.version, progress=sys.stderr.isatty())
    except ModelfnError as exc:
        raise _fail(exc) from exc
    typer.echo(f"pushed {manifest.name} v{manifest.version} -> {target.url.rstrip('/')}/{prefix}")


@app.command()
def pull(
    model: Annotated[str, typer.Argument(help="Model name")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the bundle into")],
    version: VersionOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Download a bundle from the store (verify it afterwards with `modelfn verify`)."""
    from modelfn.repository.transfer import pull_bundle
    from modelfn.repository.versions import resolve_version
    from modelfn.store.registry import store_for

    try:
        settings = _settings(config, store_url=store)
        source = store_for(settings.store_url, settings)
        resolved = resolve_version(source, model, version or "latest")
        pull_bundle(source, name=model, version=resolved, dest=out, progress=sys.stderr.isatty())
    except ModelfnError as exc:
        raise _fail(exc) from exc
    typer.echo(f"pulled {model} v{resolved} -> {out}")


@app.command()
def serve(
    model: ModelOpt = None,
    store: StoreOpt = None,
    version: VersionOpt = None,
    trust: TrustOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address [env MODELFN_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env MODELFN_PORT]")] = None,
    threads: Annotated[int | None, typer.Option(help="onnxruntime intra-op threads [env MODELFN_THREADS]")] = None,
    max_batch_size: Annotated[
        int | None,
        typer.Option(help="Merge concurrent requests into runs of up to N rows; 1 = off [env MODELFN_MAX_BATCH_SIZE]"),
    ] = None,
    max_batch_delay_ms: Annotated[
        float | None,
        typer.Option(help="With batching: the longest a request waits for others, ms [env MODELFN_MAX_BATCH_DELAY_MS]"),
    ] = None,
    allow_custom_code: CustomCodeOpt = None,
    lambda_rie: Annotated[
        bool,
        typer.Option(
            "--lambda", help="Run the Lambda handler under the Lambda Runtime Interface Emulator (emulate extra)"
        ),
    ] = False,
    handler: Annotated[
        str,
        typer.Option("--handler", help="With --lambda: http, storage_event or wsgi", metavar="http|storage_event|wsgi"),
    ] = "http",
    output: OutputOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the model over HTTP with uvicorn (the container / GPU entry point; same app as Lambda).

    With --lambda, the Lambda handler runs under aws-lambda-rie instead: POST events to
    http://HOST:PORT/2015-03-31/functions/function/invocations (e.g. from `modelfn event`).
    """
    try:
        settings = _settings(
            config, trust, model_name=model, store_url=store, model_version=version, host=host, port=port,
            threads=threads, allow_custom_code=allow_custom_code, output_url=output,
            max_batch_size=max_batch_size, max_batch_delay_ms=max_batch_delay_ms,
        )  # fmt: skip
        if lambda_rie:
            _serve_lambda(settings, handler)
        else:
            from modelfn.container import run_server

            run_server(settings)
    except ModelfnError as exc:
        raise _fail(exc) from exc


def _serve_lambda(settings: Settings, handler: str) -> None:
    from modelfn.emulate.lambda_rie import LambdaEmulator, settings_env

    emulator = LambdaEmulator(handler, env=settings_env(settings), host=settings.host, port=settings.port)
    typer.echo(f"Lambda {handler} handler under aws-lambda-rie: POST events to {emulator.url}", err=True)
    typer.echo(f"  e.g. modelfn event http -d '{{...}}' | curl -s {emulator.url} -d @-", err=True)
    try:
        emulator.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


@app.command()
def invoke(
    data: Annotated[str | None, typer.Option("--data", "-d", help="JSON body to POST (or @file.json)")] = None,
    event: Annotated[
        Path | None, typer.Option("--event", "-e", help="A stored Lambda event JSON to replay (- reads stdin)")
    ] = None,
    path: Annotated[str, typer.Option("--path", help="Request path for --data")] = "/predict",
    model: ModelOpt = None,
    store: StoreOpt = None,
    version: VersionOpt = None,
    trust: TrustOpt = None,
    allow_custom_code: CustomCodeOpt = None,
    output: OutputOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Send one request (as an HTTP API v2 event) or one stored event to the Lambda handler in-process.

    A stored event goes to the handler its shape calls for: storage notifications (S3, SQS, EventBridge)
    to the storage-event handler, HTTP front doors (API Gateway, Function URL, ALB) to the HTTP one.
    """
    from modelfn.invoke import invoke_handler

    if (data is None) == (event is None):
        typer.secho("error: give exactly one of --data or --event", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    try:
        settings = _settings(
            config, trust, model_name=model, store_url=store, model_version=version,
            allow_custom_code=allow_custom_code, output_url=output,
        )  # fmt: skip
        response = invoke_handler(settings, data=data, event_path=event, path=path)
    except ModelfnError as exc:
        raise _fail(exc) from exc
    typer.echo(response)


@app.command()
def quickstart(
    port: Annotated[int, typer.Option(help="Port to serve on (0 picks a free one)")] = 8080,
    once: Annotated[bool, typer.Option("--once", help="Exit after the first prediction instead of serving")] = False,
    home: Annotated[Path, typer.Option(help="Where keys and the embedded store live")] = Path(".modelfn"),
) -> None:
    """Train a small scikit-learn model, package, sign, push to the local store, serve and predict once."""
    from modelfn.quickstart import run_quickstart

    try:
        run_quickstart(home=home, port=port, once=once)
    except ModelfnError as exc:
        raise _fail(exc) from exc


# Commands that live in modelfn.commands (one module each): registered here, in help order.
# app.command("name")(module.function)
app.command("keygen")(keys_command.keygen)
app.command("sign")(keys_command.sign)
app.command("event")(event_command.event)
app.command("batch")(batch_command.batch)
app.command("deploy")(deploy_command.deploy)
app.command("plan")(plan_command.plan)


def main() -> None:
    """Console-script entry point; `modelfn serve` with plain options skips typer's parse (cold start)."""
    from modelfn.commands._direct import call_direct

    if not call_direct({"serve": serve}, sys.argv[1:]):
        app()


if __name__ == "__main__":
    main()
