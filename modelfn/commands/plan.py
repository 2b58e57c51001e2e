"""``modelfn plan``: Lambda concurrency, cold starts, throttling and monthly cost vs always-on containers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelfn.commands._options import fail

_T = "Traffic"
_M = "Model figures (flags override --bench)"
_L = "Lambda"
_C = "Containers"


def plan(
    rps: Annotated[float, typer.Option("--rps", min=0, help="Steady requests per second", rich_help_panel=_T)],
    burst_rps: Annotated[float, typer.Option(min=0, help="Requests per second in a burst", rich_help_panel=_T)] = 0,
    burst_seconds: Annotated[float, typer.Option(min=0.001, help="Length of one burst", rich_help_panel=_T)] = 60,
    bursts_per_day: Annotated[float, typer.Option(min=0, help="Bursts per day", rich_help_panel=_T)] = 0,
    payload_kb: Annotated[float, typer.Option(min=0.001, help="Request body size (KB)", rich_help_panel=_T)] = 1,
    latency_ms: Annotated[
        float | None, typer.Option(help="Warm request duration on one vCPU (ms)", rich_help_panel=_M)
    ] = None,
    cold_start_ms: Annotated[
        float | None, typer.Option(help="Init: start to verified, warmed model (ms)", rich_help_panel=_M)
    ] = None,
    memory_mb: Annotated[float | None, typer.Option(help="Peak resident memory (MB)", rich_help_panel=_M)] = None,
    bench: Annotated[
        list[Path] | None,
        typer.Option(help="bench/results JSON: coldstart, handler, plan_validate; repeatable", rich_help_panel=_M),
    ] = None,
    bench_model: Annotated[
        str | None, typer.Option(help="Which model in the bench files (rf, mlp, ...)", rich_help_panel=_M)
    ] = None,
    arch: Annotated[str, typer.Option(help="x86_64 or arm64", rich_help_panel=_L)] = "x86_64",
    lambda_memory_mb: Annotated[
        int | None, typer.Option(help="Configured memory (default: one vCPU, 1,769 MB)", rich_help_panel=_L)
    ] = None,
    account_concurrency: Annotated[
        int, typer.Option(help="Account concurrency quota (default quota 1,000)", rich_help_panel=_L)
    ] = 1000,
    reserved_concurrency: Annotated[
        int | None, typer.Option(help="Reserved concurrency of the function", rich_help_panel=_L)
    ] = None,
    front_door: Annotated[str, typer.Option(help="function-url or http-api", rich_help_panel=_L)] = "function-url",
    max_cold_share: Annotated[
        float, typer.Option(help="Cold-start share above which provisioned concurrency is advised", rich_help_panel=_L)
    ] = 0.01,
    cpu_hourly: Annotated[float, typer.Option(help="CPU instance USD/hour (c7i.large)", rich_help_panel=_C)] = 0.08925,
    cpu_workers: Annotated[int, typer.Option(min=1, help="Workers per CPU instance", rich_help_panel=_C)] = 2,
    gpu_hourly: Annotated[
        float, typer.Option(help="GPU instance USD/hour (g5.xlarge); 0 leaves GPU out", rich_help_panel=_C)
    ] = 1.006,
    gpu_workers: Annotated[int, typer.Option(min=1, help="Concurrent requests per GPU", rich_help_panel=_C)] = 4,
    gpu_latency_ms: Annotated[
        float | None, typer.Option(help="Request duration on the GPU (default: --latency-ms)", rich_help_panel=_C)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON")] = False,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG chart here (matplotlib)")] = None,
) -> None:
    """Estimate Lambda concurrency, cold starts, throttling and cost vs always-on CPU/GPU containers."""
    import json

    from modelfn.errors import ConfigError, ModelfnError
    from modelfn.plan.estimate import make_plan
    from modelfn.plan.inputs import ContainerOption, LambdaOptions, ModelFigures, Traffic, figures_from_bench
    from modelfn.plan.report import render_text, to_dict

    try:
        measured = figures_from_bench(bench or [], bench_model)
        given = {"warm_latency_ms": latency_ms, "cold_start_ms": cold_start_ms, "memory_mb": memory_mb}
        measured.update({k: v for k, v in given.items() if v is not None})
        for key, flag in (("warm_latency_ms", "--latency-ms"), ("cold_start_ms", "--cold-start-ms")):
            if key not in measured:
                raise ConfigError(f"no {key}: pass {flag} or a --bench file that has it", field=key)
        figures = ModelFigures(**measured)
        traffic = Traffic(rps, burst_rps, burst_seconds, bursts_per_day, payload_kb)
        options = LambdaOptions(
            arch=arch,
            memory_mb=lambda_memory_mb,
            account_concurrency=account_concurrency,
            reserved_concurrency=reserved_concurrency,
            front_door=front_door,
        )
        containers = [ContainerOption("cpu", cpu_hourly, cpu_workers)]
        if gpu_hourly > 0:
            containers.append(ContainerOption("gpu", gpu_hourly, gpu_workers, latency_ms=gpu_latency_ms))
        result = make_plan(traffic, figures, options, tuple(containers), max_cold_share=max_cold_share)
        if plot_path is not None:
            from modelfn.plan.chart import plot

            plot(result, options, tuple(containers), plot_path)
    except ModelfnError as exc:
        raise fail(exc) from exc
    typer.echo(json.dumps(to_dict(result), indent=2) if as_json else render_text(result))
    if plot_path is not None and not as_json:
        typer.echo(f"chart: {plot_path}")
