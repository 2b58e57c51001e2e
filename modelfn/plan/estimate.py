"""The estimates: Lambda concurrency, cold starts, throttling and cost; always-on containers; a recommendation.

Formulas (λ = request rate, W = warm duration on Lambda, D = burst length):
- Concurrency C = λ · W (Little's law); environments kept = the Poisson 99.9 % quantile of C (M/G/∞).
- W on Lambda = measured latency × max(1, 1769 MB / memory): below 1,769 MB a function gets a
  fraction of a vCPU, in proportion to memory. The init duration scales the same way.
- Cold starts per day = environments above provisioned concurrency × 86,400 / lifetime (recycling)
  + λ · e^(−λ·T_idle) · 86,400 when nothing is provisioned (a request after an idle gap longer
  than the reclaim time finds no environment; Poisson arrivals) + new environments per burst × bursts.
- Throttling during a burst: available concurrency A(t) = min(limit, C₀ + 1,000 + 100 · t) (a full
  bucket of 1,000 at the start, refilled at 1,000 per 10 s); throttled requests = ∫ max(0, C_b − A(t)) / W dt.
- Cost per month (730 h): requests + front door + duration (at the provisioned-concurrency rate for the
  requests it covers: min(1, P / C) of them, in steady and in burst time) + billed init of every cold
  start + provisioned GB-seconds.
- Containers: c workers per instance serve S-second requests; instances = ⌈λ / (c · u / S)⌉ at target
  utilization u; mean time in system from the M/M/c (Erlang C) queue.
"""

from __future__ import annotations

import dataclasses
import math

from modelfn.plan.inputs import (
    FRONT_DOORS,
    FULL_VCPU_MEMORY_MB,
    GB_SECOND_PRICES,
    HTTP_API_METER_KB,
    PAYLOAD_LIMITS_KB,
    PROVISIONED_DURATION_PRICES,
    PROVISIONED_GB_SECOND_PRICES,
    SECONDS_PER_MONTH,
    ContainerOption,
    LambdaOptions,
    ModelFigures,
    Traffic,
)
from modelfn.plan.queueing import littles_law, mmc_time_in_system, poisson_quantile

ENVIRONMENT_QUANTILE = 0.999
PROVISIONED_QUANTILE = 0.99
DAYS_PER_MONTH = SECONDS_PER_MONTH / 86400


@dataclasses.dataclass(frozen=True)
class LambdaEstimate:
    """Lambda with ``provisioned`` environments pre-initialized (0 = on demand only)."""

    provisioned: int
    memory_mb: int
    duration_ms: float
    init_ms: float
    steady_concurrency: float
    burst_concurrency: float
    environments: int
    cold_starts_per_day: float
    cold_start_share: float
    throttled_per_burst: float
    throttled_share: float
    ramp_s: float
    cost: dict[str, float]

    @property
    def monthly_usd(self) -> float:
        """Total of the cost lines."""
        return sum(self.cost.values())


@dataclasses.dataclass(frozen=True)
class ContainerEstimate:
    """An always-on fleet sized for the peak rate."""

    name: str
    min_instances: int
    max_instances: int
    utilization: float
    concurrency: float
    time_in_system_ms: float
    monthly_usd: float


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything ``modelfn plan`` reports."""

    traffic: Traffic
    figures: ModelFigures
    on_demand: LambdaEstimate
    provisioned: LambdaEstimate
    containers: tuple[ContainerEstimate, ...]
    recommendations: tuple[str, ...]
    warnings: tuple[str, ...]


def estimate_lambda(
    traffic: Traffic, figures: ModelFigures, options: LambdaOptions, provisioned: int = 0
) -> LambdaEstimate:
    """Concurrency, cold starts, throttling and monthly cost of the function on Lambda."""
    memory = options.configured_memory_mb(figures)
    cpu_share = max(1.0, FULL_VCPU_MEMORY_MB / memory)
    duration_s = figures.warm_latency_ms / 1000 * cpu_share
    init_s = figures.cold_start_ms / 1000 * cpu_share
    steady = littles_law(traffic.steady_rps, duration_s)
    burst = littles_law(traffic.burst_rps, duration_s) if traffic.bursts_per_day else 0.0
    pool = poisson_quantile(steady, ENVIRONMENT_QUANTILE)
    pool_burst = poisson_quantile(burst, ENVIRONMENT_QUANTILE)
    warm_at_start = max(pool, provisioned)

    recycled = max(0, pool - provisioned) * 86400 / options.env_lifetime_s
    idle = 0.0 if provisioned else traffic.steady_rps * math.exp(-traffic.steady_rps * options.idle_reclaim_s) * 86400
    burst_new = max(0, pool_burst - warm_at_start) * traffic.bursts_per_day
    cold_per_day = recycled + idle + burst_new
    requests_per_day = traffic.mean_rps * 86400

    limit = options.concurrency_limit()
    per_burst, ramp_s = burst_throttling(burst, warm_at_start, limit, duration_s, traffic.burst_s, options)
    steady_excess = max(0.0, steady - limit) / duration_s * 86400
    throttled_per_day = per_burst * traffic.bursts_per_day + steady_excess

    cost = lambda_cost(traffic, options, memory, duration_s, init_s, cold_per_day, provisioned)
    return LambdaEstimate(
        provisioned=provisioned,
        memory_mb=memory,
        duration_ms=duration_s * 1000,
        init_ms=init_s * 1000,
        steady_concurrency=steady,
        burst_concurrency=burst,
        environments=max(pool, pool_burst),
        cold_starts_per_day=cold_per_day,
        cold_start_share=min(1.0, cold_per_day / requests_per_day) if requests_per_day else 0.0,
        throttled_per_burst=per_burst,
        throttled_share=min(1.0, throttled_per_day / requests_per_day) if requests_per_day else 0.0,
        ramp_s=ramp_s,
        cost=cost,
    )


def burst_throttling(
    need: float, warm: int, limit: int, duration_s: float, burst_s: float, options: LambdaOptions
) -> tuple[float, float]:
    """(requests throttled in one burst, seconds until scaling reaches the needed concurrency)."""
    if need <= 0:
        return 0.0, 0.0
    rate = options.scale_step / options.scale_window_s

    def available(t: float) -> float:
        return min(limit, warm + options.scale_step + rate * t)

    steps = 2000
    dt = burst_s / steps
    excess = sum(max(0.0, need - available((i + 0.5) * dt)) for i in range(steps)) * dt
    reachable = min(need, limit)
    ramp_s = max(0.0, (reachable - warm - options.scale_step) / rate)
    return excess / duration_s, ramp_s


def lambda_cost(
    traffic: Traffic,
    options: LambdaOptions,
    memory_mb: int,
    duration_s: float,
    init_s: float,
    cold_per_day: float,
    provisioned: int,
) -> dict[str, float]:
    """Monthly USD by line: requests, front door, duration, init, provisioned."""
    requests = traffic.mean_rps * SECONDS_PER_MONTH
    gb = memory_mb / 1024
    billed_s = math.ceil(duration_s * 1000) / 1000  # duration is billed per started millisecond
    covered = provisioned_share(traffic, duration_s, provisioned)
    duration_price = (
        covered * PROVISIONED_DURATION_PRICES[options.arch] + (1 - covered) * GB_SECOND_PRICES[options.arch]
    )
    metered = math.ceil(traffic.payload_kb / HTTP_API_METER_KB)
    return {
        "requests": requests * options.request_price,
        "front door": requests * metered * FRONT_DOORS[options.front_door],
        "duration": requests * billed_s * gb * duration_price,
        "init": cold_per_day * DAYS_PER_MONTH * init_s * gb * GB_SECOND_PRICES[options.arch],
        "provisioned": provisioned * gb * SECONDS_PER_MONTH * PROVISIONED_GB_SECOND_PRICES[options.arch],
    }


def provisioned_share(traffic: Traffic, duration_s: float, provisioned: int) -> float:
    """Share of requests run on provisioned environments: min(1, P / C) in steady time and in burst time."""
    if not provisioned:
        return 0.0
    burst_time = traffic.burst_s * traffic.bursts_per_day / 86400 if traffic.burst_rps > traffic.steady_rps else 0.0
    periods = [
        (traffic.steady_rps * (1 - burst_time), traffic.steady_rps),
        (traffic.burst_rps * burst_time, traffic.burst_rps),
    ]
    total = sum(requests for requests, _ in periods)
    covered = sum(requests * min(1.0, provisioned / (rate * duration_s)) for requests, rate in periods if requests)
    return covered / total if total else 0.0


def estimate_container(traffic: Traffic, figures: ModelFigures, option: ContainerOption) -> ContainerEstimate:
    """An always-on fleet sized for the peak rate at the target utilization."""
    service_s = (option.latency_ms if option.latency_ms is not None else figures.warm_latency_ms) / 1000
    capacity = option.workers * option.target_utilization / service_s
    min_instances = max(1, math.ceil(traffic.steady_rps / capacity))
    max_instances = max(min_instances, math.ceil(traffic.peak_rps / capacity))
    workers = max_instances * option.workers
    in_system = mmc_time_in_system(traffic.peak_rps, service_s, workers)
    return ContainerEstimate(
        name=option.name,
        min_instances=min_instances,
        max_instances=max_instances,
        utilization=traffic.peak_rps * service_s / workers,
        concurrency=littles_law(traffic.peak_rps, in_system),
        time_in_system_ms=in_system * 1000,
        monthly_usd=max_instances * option.hourly_usd * SECONDS_PER_MONTH / 3600,
    )


def make_plan(
    traffic: Traffic,
    figures: ModelFigures,
    options: LambdaOptions,
    containers: tuple[ContainerOption, ...],
    *,
    max_cold_share: float = 0.01,
) -> Plan:
    """Estimate every option and say which to pick and how to configure it."""
    on_demand = estimate_lambda(traffic, figures, options)
    steady = on_demand.steady_concurrency
    provisioned_count = max(1, poisson_quantile(steady, PROVISIONED_QUANTILE))
    provisioned = estimate_lambda(traffic, figures, options, provisioned=provisioned_count)
    fleets = tuple(estimate_container(traffic, figures, option) for option in containers)
    return Plan(
        traffic=traffic,
        figures=figures,
        on_demand=on_demand,
        provisioned=provisioned,
        containers=fleets,
        recommendations=_recommend(on_demand, provisioned, fleets, options, max_cold_share),
        warnings=_warnings(traffic, figures, on_demand),
    )


def _recommend(
    on_demand: LambdaEstimate,
    provisioned: LambdaEstimate,
    fleets: tuple[ContainerEstimate, ...],
    options: LambdaOptions,
    max_cold_share: float,
) -> tuple[str, ...]:
    out: list[str] = []
    extra = provisioned.monthly_usd - on_demand.monthly_usd
    if on_demand.cold_start_share > max_cold_share:
        out.append(
            f"provisioned concurrency {provisioned.provisioned}: cold starts {on_demand.cold_start_share:.2%} ->"
            f" {provisioned.cold_start_share:.2%} of requests, {extra:+,.2f} USD/month"
        )
    else:
        out.append(f"on-demand Lambda is enough: {on_demand.cold_start_share:.2%} of requests see a cold start")
    limit = options.concurrency_limit()
    peak = max(on_demand.steady_concurrency, on_demand.burst_concurrency)
    if peak > limit:
        out.append(
            f"peak concurrency {peak:,.0f} exceeds the limit of {limit:,}: raise the concurrency quota to at least"
            f" {math.ceil(peak * 1.1):,} or buffer requests in a queue"
        )
    elif on_demand.throttled_per_burst > 0:
        warm_needed = max(0, math.ceil(on_demand.burst_concurrency - options.scale_step))
        out.append(
            f"bursts outrun the scaling rate ({options.scale_step:,} environments per {options.scale_window_s:g} s):"
            f" ~{on_demand.throttled_per_burst:,.0f} requests throttled per burst; provisioned concurrency"
            f" >= {warm_needed:,} before bursts, or a queue, avoids it"
        )
    for fleet in fleets:
        out.append(f"{fleet.name} container: min scale {fleet.min_instances}, max scale {fleet.max_instances}")
    costs = {"Lambda on demand": on_demand.monthly_usd, "Lambda + provisioned": provisioned.monthly_usd}
    costs.update({f"{fleet.name} container (always on)": fleet.monthly_usd for fleet in fleets})
    cheapest = min(costs, key=lambda name: costs[name])
    out.append(f"cheapest: {cheapest} at {costs[cheapest]:,.2f} USD/month")
    return tuple(out)


def _warnings(traffic: Traffic, figures: ModelFigures, on_demand: LambdaEstimate) -> tuple[str, ...]:
    out = [
        f"a {traffic.payload_kb:g} KB request is over the {name} limit of {limit_kb:,} KB (413)"
        for name, limit_kb in PAYLOAD_LIMITS_KB.items()
        if traffic.payload_kb > limit_kb
    ]
    if on_demand.memory_mb < FULL_VCPU_MEMORY_MB:
        out.append(
            f"{on_demand.memory_mb} MB gives {on_demand.memory_mb / FULL_VCPU_MEMORY_MB:.0%} of a vCPU: latency and"
            f" init scaled to {on_demand.duration_ms:.1f} ms and {on_demand.init_ms:.0f} ms"
        )
    if on_demand.memory_mb < figures.memory_mb:
        out.append(f"configured memory {on_demand.memory_mb} MB is below the measured {figures.memory_mb:g} MB")
    return tuple(out)
