"""The portfolio estimators, worked by hand, checked against independent statistics, and their invariants."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from oracle.estimators import (DID, REGRESSION, SITE, T_975_MILLI, EstimatorError, SiteObservation, estimate,
                               t_975_milli)


def _sites(treatment, control, covariates_t=None, covariates_c=None, placebo=None):
    out = []
    for i, r in enumerate(treatment):
        x = covariates_t[i] if covariates_t else 0
        p = tuple(placebo[i]) if placebo else ()
        out.append(SiteObservation(f"0x{i:040x}", True, r, (x,), p))
    for j, r in enumerate(control):
        x = covariates_c[j] if covariates_c else 0
        out.append(SiteObservation(f"0x{1000 + j:040x}", False, r, (x,)))
    return out


def test_difference_in_differences_by_hand():
    # S_T = 60, n_T = 3; S_C = 15, n_C = 5: floor(60 - 3 * 15 / 5) = 51.
    # s_C^2 of 1..5 = 2.5; Var = 2.5 * 3 * (3 + 5) / 5 = 12; isqrt 3; df 4, t = 2.776 -> half floor(8.328) = 8.
    result = estimate(DID, _sites([10, 20, 30], [1, 2, 3, 4, 5]))
    assert (result.estimated_wh, result.ci95_wh, result.variance_wh2, result.df) == (51, (43, 59), 12, 4)


def test_difference_in_differences_floors_towards_minus_infinity():
    assert estimate(DID, _sites([10, 20, 30], [2, 2, 3, 4, 5])).estimated_wh == 50  # floor(60 - 9.6)
    assert estimate(DID, _sites([10, 20, 30], [-2, -2, -3, -4, -5])).estimated_wh == 69  # floor(60 + 9.6)
    assert estimate(DID, _sites([-70, 0, 0], [2, 2, 3, 4, 5])).estimated_wh == -80  # floor(-79.6)


def test_regression_by_hand():
    # Control: y = 1 + 2x exactly, so the line is (1, 2) with zero residual; treatment x = 1, 2 predicts
    # baseline errors 3 and 5, so 13 + 25 - 8 = 30 with a zero-width interval; df = 5 - 1 - 1.
    result = estimate(REGRESSION, _sites([13, 25], [1, 3, 5, 7, 9], [1, 2], [0, 1, 2, 3, 4]))
    assert (result.estimated_wh, result.ci95_wh, result.df) == (30, (30, 30), 3)


def test_regression_with_two_covariates_by_hand():
    # Control: y = 1 + 2 x1 - x2 exactly (x1, x2 not collinear): the fit is exact, so the treatment
    # sites' predicted errors are 1 + 2 - 3 = 0 and 1 + 4 - 1 = 4: 10 + 20 - 4 = 26, zero width.
    treatment = [SiteObservation("0x" + "a1" * 20, True, 10, (1, 3)), SiteObservation("0x" + "a2" * 20, True, 20, (2, 1))]
    xs = [(0, 0), (1, 0), (0, 1), (2, 1), (1, 3), (3, 2), (4, 4)]
    control = [SiteObservation(f"0x{0xc0 + j:040x}", False, 1 + 2 * a - b, (a, b)) for j, (a, b) in enumerate(xs)]
    result = estimate(REGRESSION, treatment + control)
    assert (result.estimated_wh, result.ci95_wh, result.df) == (26, (26, 26), 4)


def test_regression_without_covariate_spread_is_difference_in_differences():
    sites = _sites([10, 20, 30], [1, 2, 3, 4, 5])
    assert estimate(REGRESSION, sites).estimated_wh == estimate(DID, sites).estimated_wh


def test_site_fallback_by_hand():
    # 10 - 4 = 6; Var = mean(9, 9) + mean(1, 1, 1, 1) = 10, isqrt 3; 6 placebo errors -> df 5, t 2.571 -> 7.
    result = estimate(SITE, _sites([10, -4], [], placebo=[[3, -3], [1, 1, 1, 1]]))
    assert (result.estimated_wh, result.ci95_wh, result.df) == (6, (-1, 13), 5)


def test_too_small_a_holdout_is_refused_with_the_counts():
    with pytest.raises(EstimatorError, match="got 3 and 4"):
        estimate(DID, _sites([1, 2, 3], [1, 2, 3, 4]))
    with pytest.raises(EstimatorError, match="unknown estimator"):
        estimate("magic", _sites([1], [1, 2, 3, 4, 5]))


def _t_quantile(df: int, p: float = 0.975) -> float:
    """An independent Student t quantile: Simpson integration of the density and bisection."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x):
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    def cdf(x, steps=4_000):
        h = x / steps
        total = density(0) + density(x) + sum((4 if k % 2 else 2) * density(k * h) for k in range(1, steps))
        return 0.5 + total * h / 3

    low, high = 0.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) < p else (low, middle)
    return (low + high) / 2


@pytest.mark.parametrize("df", [d for d, _ in T_975_MILLI if d <= 120])
def test_t_table_matches_an_independent_quantile(df):
    assert abs(t_975_milli(df) - _t_quantile(df) * 1_000) <= 1


def test_t_lookup_is_never_narrower_than_the_exact_quantile():
    for df in (31, 35, 45, 59, 61, 100, 500):
        assert t_975_milli(df) >= _t_quantile(df) * 1_000 - 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5_000, 5_000), min_size=1, max_size=12),
       st.lists(st.integers(-5_000, 5_000), min_size=5, max_size=12), st.integers(-10_000, 10_000),
       st.randoms(use_true_random=False))
def test_did_ignores_a_shift_common_to_every_site_and_the_site_order(treatment, control, shift, rng):
    """A baseline that is off by the same amount for everybody (a hot day) moves nothing."""
    base = _sites(treatment, control)
    shifted = [SiteObservation(s.site, s.treatment, s.reduction_wh + shift, s.covariates) for s in base]
    rng.shuffle(shifted)
    first, second = estimate(DID, base), estimate(DID, shifted)
    assert (first.estimated_wh, first.ci95_wh) == (second.estimated_wh, second.ci95_wh)


def test_did_is_unbiased_and_its_interval_covers_the_realized_reduction():
    """Monte Carlo with known truth: baseline errors N(0, 400) shared by both groups, reductions
    drawn per site; the estimate's mean error is ~0 and the 95 % interval covers >= 92 % of runs."""
    rng = random.Random(7)
    errors, covered = [], 0
    runs = 300
    for _ in range(runs):
        true = [rng.randint(0, 800) for _ in range(60)]
        treatment = [t + round(rng.gauss(0, 400)) for t in true]
        control = [round(rng.gauss(0, 400)) for _ in range(15)]
        result = estimate(DID, _sites(treatment, control))
        errors.append(result.estimated_wh - sum(true))
        covered += result.ci95_wh[0] <= sum(true) <= result.ci95_wh[1]
    sd = (sum(e * e for e in errors) / runs) ** 0.5
    assert abs(sum(errors) / runs) < 3 * sd / runs ** 0.5
    assert covered / runs >= 0.92
