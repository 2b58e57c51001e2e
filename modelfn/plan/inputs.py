"""What a plan is computed from: traffic, measured model figures, AWS limits and prices, container options.

Defaults are stated here once. AWS figures are us-east-1 list prices and documented quotas as of
2025; pass your own when they differ (other regions, savings plans, raised quotas).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from modelfn.errors import ConfigError

SECONDS_PER_MONTH = 730 * 3600
"""AWS bills a month as 730 hours."""
FULL_VCPU_MEMORY_MB = 1769
"""Lambda gives CPU in proportion to memory; 1,769 MB is one vCPU (Lambda docs, "Configure function memory")."""


def _require(ok: bool, field: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"{field} {why}", field=field)


@dataclasses.dataclass(frozen=True)
class Traffic:
    """A traffic profile: steady load, plus bursts of a given height, length and daily count."""

    steady_rps: float
    burst_rps: float = 0.0
    """Request rate during a burst (0 = no bursts)."""
    burst_s: float = 60.0
    bursts_per_day: float = 0.0
    payload_kb: float = 1.0
    """Request body size; checked against front-door limits and used for HTTP API metering."""

    def __post_init__(self) -> None:
        _require(self.steady_rps >= 0, "steady_rps", "must be >= 0")
        _require(self.burst_rps >= 0, "burst_rps", "must be >= 0")
        _require(self.burst_s > 0, "burst_s", "must be > 0")
        _require(self.bursts_per_day >= 0, "bursts_per_day", "must be >= 0")
        _require(self.payload_kb > 0, "payload_kb", "must be > 0")
        _require(self.burst_s * self.bursts_per_day <= 86400, "bursts_per_day", "bursts last longer than a day")

    @property
    def peak_rps(self) -> float:
        """The highest rate the service must absorb."""
        return max(self.steady_rps, self.burst_rps)

    @property
    def mean_rps(self) -> float:
        """Time-averaged rate over a day, bursts included."""
        extra = max(0.0, self.burst_rps - self.steady_rps) * self.burst_s * self.bursts_per_day / 86400
        return self.steady_rps + extra


@dataclasses.dataclass(frozen=True)
class ModelFigures:
    """Measured figures for one model (``bench/`` output or flags)."""

    warm_latency_ms: float
    """Mean warm request duration, measured on at least one full vCPU."""
    cold_start_ms: float
    """Init duration: fresh process to model verified, loaded and warmed."""
    memory_mb: float = 512.0
    """Peak resident memory of the serving process."""

    def __post_init__(self) -> None:
        _require(self.warm_latency_ms > 0, "warm_latency_ms", "must be > 0")
        _require(self.cold_start_ms >= 0, "cold_start_ms", "must be >= 0")
        _require(self.memory_mb > 0, "memory_mb", "must be > 0")


@dataclasses.dataclass(frozen=True)
class LambdaOptions:
    """Lambda configuration, quotas and prices.

    Quotas (Lambda docs, "Lambda scaling behavior" and "Lambda quotas"): 1,000 concurrent executions
    per account and region by default; each function scales by at most 1,000 execution environments
    every 10 seconds, refilled continuously (since November 2023). Throttled requests get 429.

    Prices (aws.amazon.com/lambda/pricing, us-east-1, first tier): requests $0.20 per million;
    duration per GB-second x86_64 $0.0000166667, arm64 $0.0000133334; provisioned concurrency per
    GB-second x86_64 $0.0000041667, arm64 $0.0000033334, and duration on it x86_64 $0.0000097222,
    arm64 $0.0000077778. The init phase is billed as duration (all on-demand functions since
    August 2025). Free tier and volume tiers are ignored.

    Environment lifetime and idle reclaim are not documented; the defaults are assumptions.
    """

    arch: str = "x86_64"
    memory_mb: int | None = None
    """Configured memory; None: one full vCPU (the latency was measured on one), more if the model needs it."""
    account_concurrency: int = 1000
    reserved_concurrency: int | None = None
    scale_step: int = 1000
    scale_window_s: float = 10.0
    env_lifetime_s: float = 7200.0
    idle_reclaim_s: float = 600.0
    request_price: float = 0.20e-6
    front_door: str = "function-url"
    """``function-url`` (no charge) or ``http-api`` ($1.00 per million, each 512 KB metered as one request)."""

    def __post_init__(self) -> None:
        _require(self.arch in GB_SECOND_PRICES, "arch", f"must be one of {sorted(GB_SECOND_PRICES)}")
        _require(self.front_door in FRONT_DOORS, "front_door", f"must be one of {sorted(FRONT_DOORS)}")
        _require(self.account_concurrency >= 1, "account_concurrency", "must be >= 1")
        _require(self.memory_mb is None or 128 <= self.memory_mb <= 10240, "memory_mb", "must be in 128..10240")
        _require(self.reserved_concurrency is None or self.reserved_concurrency >= 0, "reserved_concurrency", ">= 0")

    def concurrency_limit(self) -> int:
        """What this function may use: its reserved concurrency, else the account's."""
        if self.reserved_concurrency is not None:
            return min(self.reserved_concurrency, self.account_concurrency)
        return self.account_concurrency

    def configured_memory_mb(self, figures: ModelFigures) -> int:
        """The memory setting: as given, else 1,769 MB or the measured peak with 25 % headroom in 64 MB steps."""
        if self.memory_mb is not None:
            return self.memory_mb
        return max(FULL_VCPU_MEMORY_MB, min(10240, math.ceil(figures.memory_mb * 1.25 / 64) * 64))


GB_SECOND_PRICES = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PROVISIONED_GB_SECOND_PRICES = {"x86_64": 0.0000041667, "arm64": 0.0000033334}
PROVISIONED_DURATION_PRICES = {"x86_64": 0.0000097222, "arm64": 0.0000077778}
FRONT_DOORS = {"function-url": 0.0, "http-api": 1.00e-6}
HTTP_API_METER_KB = 512
PAYLOAD_LIMITS_KB = {"Lambda synchronous invoke": 6 * 1024, "API Gateway": 10 * 1024, "ALB (Lambda target)": 1024}


@dataclasses.dataclass(frozen=True)
class ContainerOption:
    """An always-on container fleet. Default prices: us-east-1 on-demand Linux, 2025."""

    name: str
    hourly_usd: float
    workers: int
    """Requests one instance serves at once (uvicorn workers / GPU streams)."""
    latency_ms: float | None = None
    """Service time on this hardware; None uses the measured warm latency."""
    target_utilization: float = 0.7

    def __post_init__(self) -> None:
        _require(self.hourly_usd >= 0, f"{self.name}_hourly", "must be >= 0")
        _require(self.workers >= 1, f"{self.name}_workers", "must be >= 1")
        _require(0 < self.target_utilization < 1, "target_utilization", "must be in (0, 1)")


CPU_CONTAINER = ContainerOption("cpu", hourly_usd=0.08925, workers=2)
"""c7i.large: 2 vCPU, 4 GiB."""
GPU_CONTAINER = ContainerOption("gpu", hourly_usd=1.006, workers=4)
"""g5.xlarge: 1 NVIDIA A10G, 4 vCPU, 16 GiB."""


def figures_from_bench(paths: list[Path], model: str | None = None) -> dict[str, float]:
    """Figures found in ``bench/results`` JSON files: ``cold_start_ms``, ``warm_latency_ms``, ``memory_mb``.

    Understands ``coldstart.json`` (``models.<model>.modelfn_ms_p50``), ``handler.json``
    (``<model>.lambda_handler.p50_ms``) and flat files holding those three keys.
    """
    found: dict[str, float] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read bench output {path}: {exc}", field="bench") from exc
        found.update(_figures_in(data, model, path))
    return found


def _figures_in(data: Any, model: str | None, path: Path) -> dict[str, float]:
    keys = ("cold_start_ms", "warm_latency_ms", "memory_mb")
    if isinstance(data, dict) and any(k in data for k in keys):
        return {k: float(data[k]) for k in keys if k in data}
    rows = data.get("models", data) if isinstance(data, dict) else None
    if not isinstance(rows, dict) or not rows:
        raise ConfigError(f"{path}: no model figures found", field="bench")
    if model is None:
        if len(rows) != 1:
            raise ConfigError(f"{path} holds {sorted(rows)}: choose one with --bench-model", field="bench_model")
        model = next(iter(rows))
    row = rows.get(model)
    if not isinstance(row, dict):
        raise ConfigError(f"{path} has no model {model!r}; it has {sorted(rows)}", field="bench_model")
    out: dict[str, float] = {}
    if "modelfn_ms_p50" in row:
        out["cold_start_ms"] = float(row["modelfn_ms_p50"])
    handler = row.get("lambda_handler")
    if isinstance(handler, dict) and "p50_ms" in handler:
        out["warm_latency_ms"] = float(handler["p50_ms"])
    if not out:
        raise ConfigError(f"{path}: model {model!r} has no modelfn_ms_p50 or lambda_handler.p50_ms", field="bench")
    return out
