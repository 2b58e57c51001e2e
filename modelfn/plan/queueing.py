"""Queueing formulas the plan rests on, each a pure function.

- Little's law: mean number in a system L = λ · W (arrival rate × mean time in system). It holds for
  any stable system, so it is also how the estimate is checked against a measured load test.
- Lambda is an M/G/∞ system (every request gets its own execution environment): the number of busy
  environments is Poisson-distributed with mean λ · W (Palm's theorem), so "how many environments
  cover 99 % of the time" is a Poisson quantile.
- A container with c workers is an M/M/c queue: requests wait when every worker is busy. The mean
  wait is the Erlang C formula, Wq = C(c, a) · S / (c − a) with offered load a = λ · S.
"""

from __future__ import annotations

import math
import statistics

from modelfn.errors import ConfigError


def littles_law(rate_per_s: float, time_in_system_s: float) -> float:
    """L = λ · W: mean concurrency of a stable system."""
    return rate_per_s * time_in_system_s


def poisson_quantile(mean: float, q: float) -> int:
    """Smallest k with P(X ≤ k) ≥ q for X ~ Poisson(mean); the normal approximation above mean 500."""
    if mean < 0 or not 0 < q < 1:
        raise ConfigError(f"poisson_quantile needs mean >= 0 and 0 < q < 1, got {mean}, {q}", field="q")
    if mean == 0:
        return 0
    if mean > 500:
        return math.ceil(mean + statistics.NormalDist().inv_cdf(q) * math.sqrt(mean))
    term = math.exp(-mean)
    cdf, k = term, 0
    while cdf < q:
        k += 1
        term *= mean / k
        cdf += term
    return k


def erlang_c(workers: int, offered_load: float) -> float:
    """Probability an arrival waits in an M/M/c queue (c = workers, a = λ·S); 1.0 when overloaded."""
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", field="workers")
    if offered_load >= workers:
        return 1.0
    # Erlang B by its stable recurrence, then C = B / (1 - ρ(1 - B)).
    blocking = 1.0
    for k in range(1, workers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    rho = offered_load / workers
    return blocking / (1 - rho * (1 - blocking))


def mmc_time_in_system(rate_per_s: float, service_s: float, workers: int) -> float:
    """Mean time in an M/M/c system, W = S + Wq; infinite when λ·S ≥ c (the queue grows without bound)."""
    offered = rate_per_s * service_s
    if offered >= workers:
        return math.inf
    wait = erlang_c(workers, offered) * service_s / (workers - offered)
    return service_s + wait
