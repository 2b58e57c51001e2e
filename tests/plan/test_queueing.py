"""The queueing formulas against closed forms and an independent implementation (scipy)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import poisson

from modelfn.errors import ConfigError
from modelfn.plan.queueing import erlang_c, littles_law, mmc_time_in_system, poisson_quantile


def test_littles_law() -> None:
    # GIVEN 200 requests/s each in the system for 25 ms  WHEN  THEN 5 are in the system on average
    assert littles_law(200, 0.025) == pytest.approx(5.0)


@settings(max_examples=60, deadline=None)
@given(mean=st.floats(0.01, 400), q=st.sampled_from([0.5, 0.9, 0.99, 0.999]))
def test_poisson_quantile_matches_scipy(mean: float, q: float) -> None:
    # GIVEN a Poisson mean and a probability  WHEN the quantile is computed  THEN it equals scipy's
    assert poisson_quantile(mean, q) == int(poisson.ppf(q, mean))


@pytest.mark.parametrize("mean", [800.0, 5000.0, 1e6])
def test_large_means_use_the_normal_approximation_within_half_a_percent(mean: float) -> None:
    # GIVEN large means  WHEN  THEN the approximation is within 0.5 % of the exact quantile
    assert poisson_quantile(mean, 0.999) == pytest.approx(poisson.ppf(0.999, mean), rel=0.005)


def test_poisson_quantile_refuses_nonsense() -> None:
    with pytest.raises(ConfigError):
        poisson_quantile(1.0, 1.0)
    assert poisson_quantile(0.0, 0.99) == 0


def test_erlang_c_closed_forms() -> None:
    # GIVEN M/M/1: the chance to wait is ρ; M/M/2 at ρ = 0.5: 2ρ²/(1+ρ) = 1/3
    assert erlang_c(1, 0.3) == pytest.approx(0.3)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # AND an overloaded queue always waits
    assert erlang_c(2, 2.5) == 1.0


def test_time_in_system_mm1_and_overload() -> None:
    # GIVEN M/M/1 with S = 10 ms at ρ = 0.5  THEN W = S / (1 − ρ) = 20 ms
    assert mmc_time_in_system(50, 0.010, 1) == pytest.approx(0.020)
    # AND more workers only shorten the wait, never below S
    assert 0.010 < mmc_time_in_system(50, 0.010, 2) < 0.020
    assert mmc_time_in_system(300, 0.010, 2) == math.inf
    with pytest.raises(ConfigError):
        erlang_c(0, 0.1)
