"""Lambda and container estimates against hand-computed values from the documented formulas and prices."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from modelfn.errors import ConfigError
from modelfn.plan.estimate import burst_throttling, estimate_container, estimate_lambda, make_plan, provisioned_share
from modelfn.plan.inputs import (
    CPU_CONTAINER,
    SECONDS_PER_MONTH,
    ContainerOption,
    LambdaOptions,
    ModelFigures,
    Traffic,
    figures_from_bench,
)

FIGURES = ModelFigures(warm_latency_ms=100.0, cold_start_ms=1000.0, memory_mb=300.0)
TWO_GB = LambdaOptions(memory_mb=2048)
"""Above 1,769 MB: a full vCPU, so the measured latency applies unscaled."""


def test_concurrency_is_littles_law_at_one_vcpu_and_scales_below_it() -> None:
    # GIVEN 10 rps of 100 ms requests
    traffic = Traffic(steady_rps=10)
    # WHEN the function has a full vCPU (1,769 MB) or half of one
    full = estimate_lambda(traffic, FIGURES, LambdaOptions(memory_mb=1769))
    half = estimate_lambda(traffic, FIGURES, LambdaOptions(memory_mb=1769 // 2 + 1))
    # THEN concurrency is λ·W = 1, and twice as long requests need about twice the concurrency
    assert full.steady_concurrency == pytest.approx(1.0)
    assert half.steady_concurrency == pytest.approx(2.0, rel=0.01)
    assert half.init_ms == pytest.approx(2000, rel=0.01)


def test_on_demand_cost_matches_the_price_list() -> None:
    # GIVEN 10 rps, 100 ms at 2 GB on x86_64 through a Function URL
    estimate = estimate_lambda(Traffic(steady_rps=10), FIGURES, TWO_GB)
    requests = 10 * SECONDS_PER_MONTH  # 26.28 million
    # THEN requests $0.20 per million, duration $0.0000166667 per GB-s, no front-door charge
    assert estimate.cost["requests"] == pytest.approx(requests * 0.20e-6)
    assert estimate.cost["duration"] == pytest.approx(requests * 0.1 * 2.0 * 0.0000166667)
    assert estimate.cost["front door"] == 0
    assert estimate.cost["provisioned"] == 0
    # AND every cold start's billed init is 1 s at 2 GB
    assert estimate.cost["init"] == pytest.approx(
        estimate.cold_starts_per_day * SECONDS_PER_MONTH / 86400 * 2.0 * 0.0000166667
    )
    assert estimate.monthly_usd == pytest.approx(sum(estimate.cost.values()))


def test_arm64_and_provisioned_prices() -> None:
    # GIVEN the same traffic on arm64, with 3 provisioned environments
    estimate = estimate_lambda(Traffic(steady_rps=10), FIGURES, LambdaOptions(memory_mb=2048, arch="arm64"), 3)
    # THEN provisioned GB-seconds cost $0.0000033334 all month, and covered duration $0.0000077778 per GB-s
    assert estimate.cost["provisioned"] == pytest.approx(3 * 2.0 * SECONDS_PER_MONTH * 0.0000033334)
    assert estimate.cost["duration"] == pytest.approx(10 * SECONDS_PER_MONTH * 0.1 * 2.0 * 0.0000077778)


def test_http_api_meters_each_512_kb() -> None:
    # GIVEN 600 KB requests through an HTTP API: each counts as two requests at $1.00 per million
    estimate = estimate_lambda(Traffic(steady_rps=1, payload_kb=600), FIGURES, LambdaOptions(front_door="http-api"))
    assert estimate.cost["front door"] == pytest.approx(SECONDS_PER_MONTH * 2 * 1.00e-6)


def test_sparse_traffic_is_mostly_cold_unless_provisioned() -> None:
    # GIVEN one request every 30 minutes (idle reclaim assumed after 10 minutes)
    traffic = Traffic(steady_rps=1 / 1800)
    on_demand = estimate_lambda(traffic, FIGURES, TWO_GB)
    provisioned = estimate_lambda(traffic, FIGURES, TWO_GB, provisioned=1)
    # THEN about e^(-600/1800) = 72 % of requests start cold; one provisioned environment removes them
    assert on_demand.cold_start_share == pytest.approx(math.exp(-1 / 3), abs=0.02)
    assert provisioned.cold_start_share == 0


def test_a_burst_beyond_the_scaling_rate_is_throttled_until_scaling_catches_up() -> None:
    # GIVEN a burst needing 3,000 concurrent executions from none, limit 10,000, 100 ms requests
    options = LambdaOptions(account_concurrency=10_000)
    throttled, ramp_s = burst_throttling(3000, 0, 10_000, 0.1, 60, options)
    # THEN available = 1,000 + 100·t reaches 3,000 after 20 s; the shortfall ∫(2,000 − 100·t)dt = 20,000
    # concurrency-seconds is 200,000 requests at 100 ms each
    assert ramp_s == pytest.approx(20.0)
    assert throttled == pytest.approx(200_000, rel=1e-3)
    # AND a burst within the first 1,000 is never throttled
    assert burst_throttling(900, 0, 10_000, 0.1, 60, options) == (0.0, 0.0)


def test_a_burst_above_the_account_limit_is_throttled_for_its_whole_length() -> None:
    # GIVEN bursts needing 2,000 concurrency against the default limit of 1,000
    traffic = Traffic(steady_rps=10, burst_rps=20_000, burst_s=30, bursts_per_day=2)
    plan = make_plan(traffic, FIGURES, LambdaOptions(memory_mb=1769), (CPU_CONTAINER,))
    # THEN half of each burst is throttled (1,000 of 2,000 in flight) and the plan says to raise the quota
    assert plan.on_demand.throttled_per_burst == pytest.approx(20_000 * 30 / 2, rel=1e-3)
    assert any("raise the concurrency quota to at least 2,200" in line for line in plan.recommendations)


def test_provisioned_concurrency_is_advised_when_cold_starts_are_frequent() -> None:
    # GIVEN a request every 20 minutes: most are cold
    plan = make_plan(Traffic(steady_rps=1 / 1200), FIGURES, TWO_GB, ())
    # THEN one provisioned environment is advised, with its cost delta
    assert plan.provisioned.provisioned == 1
    assert plan.recommendations[0].startswith("provisioned concurrency 1: cold starts")
    assert "USD/month" in plan.recommendations[0]


def test_container_fleet_sized_at_target_utilization() -> None:
    # GIVEN 100 rps of 100 ms requests on 2-worker instances at 70 % target utilization
    option = ContainerOption("cpu", hourly_usd=0.1, workers=2)
    fleet = estimate_container(Traffic(steady_rps=100), FIGURES, option)
    # THEN each instance takes 14 rps: 8 instances, always on for 730 hours
    assert (fleet.min_instances, fleet.max_instances) == (8, 8)
    assert fleet.monthly_usd == pytest.approx(8 * 0.1 * 730)
    assert fleet.utilization == pytest.approx(100 * 0.1 / 16)
    assert fleet.time_in_system_ms > 100 and fleet.concurrency == pytest.approx(100 * fleet.time_in_system_ms / 1000)


def test_payload_over_the_lambda_limit_is_warned() -> None:
    plan = make_plan(Traffic(steady_rps=1, payload_kb=7000), FIGURES, TWO_GB, ())
    assert any("Lambda synchronous invoke limit" in line for line in plan.warnings)


def test_invalid_inputs_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        LambdaOptions(arch="sparc")
    assert info.value.field == "arch"
    with pytest.raises(ConfigError) as info:
        Traffic(steady_rps=-1)
    assert info.value.field == "steady_rps"


def test_figures_from_the_bench_outputs(tmp_path: Path) -> None:
    # GIVEN coldstart.json and handler.json as the benchmarks write them
    coldstart = tmp_path / "coldstart.json"
    coldstart.write_text(json.dumps({"runs": 7, "models": {"mlp": {"modelfn_ms_p50": 812.5}, "rf": {}}}))
    handler = tmp_path / "handler.json"
    handler.write_text(json.dumps({"mlp": {"lambda_handler": {"p50_ms": 0.41, "p99_ms": 0.9}}}))
    # WHEN read for one model
    found = figures_from_bench([coldstart, handler], "mlp")
    # THEN the cold start and warm latency come from them
    assert found == {"cold_start_ms": 812.5, "warm_latency_ms": 0.41}
    # AND an ambiguous or unknown model is a clear error naming the choices
    with pytest.raises(ConfigError, match="--bench-model"):
        figures_from_bench([coldstart])
    with pytest.raises(ConfigError, match="'mlp', 'rf'"):
        figures_from_bench([coldstart], "cnn")


def test_provisioned_environments_cover_steady_traffic_not_the_burst_above_them() -> None:
    # GIVEN steady 10 rps (1 in flight) and a 1-hour daily burst at 100 rps (10 in flight), 2 provisioned
    traffic = Traffic(steady_rps=10, burst_rps=100, burst_s=3600, bursts_per_day=1)
    # WHEN the share of requests on provisioned environments is computed
    share = provisioned_share(traffic, 0.1, 2)
    # THEN all steady requests and 2/10 of the burst requests are covered
    steady, burst = 10 * 23 / 24, 100 / 24
    assert share == pytest.approx((steady + burst * 0.2) / (steady + burst))
    assert provisioned_share(traffic, 0.1, 0) == 0
