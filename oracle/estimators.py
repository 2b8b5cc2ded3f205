"""Portfolio estimators: how much energy the dispatched sites of one request did not consume.

Every oracle must get the same answer byte for byte, so the arithmetic is exact: sums and products
of Python integers, quotients as `fractions.Fraction`, and one rounding rule at the end of each
figure: **floor** (towards minus infinity; an estimate may be negative). Square roots are integer
square roots of the floored variance (`math.isqrt`), and the 97.5 % Student t quantile comes from a
fixed table in thousandths (`T_975_MILLI`), taking the next smaller tabulated degrees of freedom
(never a narrower interval than the exact quantile).

Per site i the input is r_i = sum over the event intervals of (baseline - actual) in Wh, the
site's group (treatment = dispatched, control = held out by the randomized draw), and for the
covariate-adjusted estimator x_i, the same difference over a pre-window that ended before gate
closure (so it cannot depend on the draw). With the baseline error e_i = baseline - counterfactual,
a control site has r_i = e_i and a treatment site r_i = e_i + reduction_i, and the randomization
makes e equally distributed in both groups. Covariates must be fixed before gate closure, when
nobody knows its group yet, or a dispatched site could move its own prediction.

* ``did`` (difference in differences): estimate = floor(S_T - n_T * S_C / n_C), i.e.
  n_T * (mean_T(r) - mean_C(r)). Its error against the realized reduction is
  n_T * (mean_T(e) - mean_C(e)), whose variance is estimated from the control group alone:
  Var = s_C^2 * n_T * (n_T + n_C) / n_C, df = n_C - 1.
* ``regression`` (covariate adjustment fitted on the control group): the control group's least
  squares fit e ~ a + b . x predicts each treatment site's baseline error from covariates known
  before gate closure (the pre-window's baseline - actual, the committed watts); estimate =
  S_T - sum_T (a + b . x_i). Variance from the control residuals s^2 (df = n_C - 1 - k):
  Var = s^2 * (n_T + n_T^2 / n_C + n_T^2 * d' Sxx_C^-1 d), d = xbar_T - xbar_C.
* ``site`` (the fallback when the holdout is too small, or the only rule without one): the
  treatment sites' own like-day baselines, estimate = S_T, with no control correction.
  Variance from each site's placebo days: Var = sum_T mean_d(placebo window error_{i,d}^2),
  df = the number of placebo window errors minus 1 (at least 1).

The 95 % interval is estimate -/+ floor(t * isqrt(floor(Var)) / 1000).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

DID = "did"
REGRESSION = "regression"
SITE = "site"
ESTIMATORS = (DID, REGRESSION, SITE)
MIN_CONTROL_SITES = 5
MIN_TREATMENT_SITES = 1

# Student t, 97.5 % quantile, in thousandths, by degrees of freedom (two-sided 95 %).
T_975_MILLI: tuple[tuple[int, int], ...] = (
    (1, 12_706), (2, 4_303), (3, 3_182), (4, 2_776), (5, 2_571), (6, 2_447), (7, 2_365), (8, 2_306),
    (9, 2_262), (10, 2_228), (11, 2_201), (12, 2_179), (13, 2_160), (14, 2_145), (15, 2_131), (16, 2_120),
    (17, 2_110), (18, 2_101), (19, 2_093), (20, 2_086), (21, 2_080), (22, 2_074), (23, 2_069), (24, 2_064),
    (25, 2_060), (26, 2_056), (27, 2_052), (28, 2_048), (29, 2_045), (30, 2_042), (40, 2_021), (60, 2_000),
    (120, 1_980), (1_000, 1_962), (100_000, 1_960),
)


class EstimatorError(ValueError):
    """The sites given cannot support the estimator asked for (the message says why)."""


def t_975_milli(df: int) -> int:
    """The 97.5 % Student t quantile for `df` degrees of freedom, in thousandths, rounded so the
    interval is never narrower than the exact one (the next smaller tabulated df)."""
    if df < 1:
        raise EstimatorError(f"degrees of freedom must be >= 1, got {df}")
    value = T_975_MILLI[0][1]
    for tabulated, milli in T_975_MILLI:
        if tabulated <= df:
            value = milli
    return value


@dataclass(frozen=True)
class SiteObservation:
    """One site's figures for one request (Wh): its event-window r, covariate x, placebo errors."""

    site: str
    treatment: bool
    reduction_wh: int  # r: sum over the event intervals of baseline - actual
    covariates: tuple[int, ...] = ()  # known before gate closure (regression only)
    placebo_errors_wh: tuple[int, ...] = ()  # per placebo day, the window's sum of baseline - actual


@dataclass(frozen=True)
class Estimate:
    """A portfolio estimate: the treatment group's reduction (Wh) and its 95 % interval."""

    method: str
    estimated_wh: int
    ci95_wh: tuple[int, int]
    treatment: int
    control: int
    variance_wh2: int  # floor of the estimated variance of the estimate's error
    df: int

    @property
    def half_width_wh(self) -> int:
        """Half the width of the 95 % interval."""
        return (self.ci95_wh[1] - self.ci95_wh[0]) // 2

    def to_dict(self) -> dict:
        """JSON form (integers only)."""
        return {"method": self.method, "estimated_wh": self.estimated_wh, "ci95_wh": list(self.ci95_wh),
                "treatment": self.treatment, "control": self.control, "variance_wh2": self.variance_wh2,
                "df": self.df}


def _floor(value: Fraction | int) -> int:
    return math.floor(value)


def _interval(method: str, estimate: int, variance: Fraction, df: int, n_t: int, n_c: int) -> Estimate:
    variance_floor = max(0, _floor(variance))
    half = t_975_milli(max(df, 1)) * math.isqrt(variance_floor) // 1_000
    return Estimate(method, estimate, (estimate - half, estimate + half), n_t, n_c, variance_floor, max(df, 1))


def _groups(sites: Sequence[SiteObservation]) -> tuple[list[SiteObservation], list[SiteObservation]]:
    ordered = sorted(sites, key=lambda s: s.site.lower())
    if len({s.site.lower() for s in ordered}) != len(ordered):
        raise EstimatorError("a site is listed twice")
    return [s for s in ordered if s.treatment], [s for s in ordered if not s.treatment]


def _sample_variance(values: Sequence[int]) -> Fraction:
    n = len(values)
    total = sum(values)
    squares = sum(v * v for v in values)
    return Fraction(squares * n - total * total, n * (n - 1))


def difference_in_differences(sites: Sequence[SiteObservation]) -> Estimate:
    """n_T * (mean_T(r) - mean_C(r)) and its interval (see the module docstring)."""
    treatment, control = _groups(sites)
    n_t, n_c = len(treatment), len(control)
    if n_t < MIN_TREATMENT_SITES or n_c < MIN_CONTROL_SITES:
        raise EstimatorError(f"difference in differences needs >= {MIN_TREATMENT_SITES} dispatched and "
                             f">= {MIN_CONTROL_SITES} held-out sites, got {n_t} and {n_c}")
    s_t = sum(s.reduction_wh for s in treatment)
    s_c = sum(s.reduction_wh for s in control)
    estimate = _floor(s_t - Fraction(n_t * s_c, n_c))
    var_c = _sample_variance([s.reduction_wh for s in control])
    variance = var_c * n_t * (n_t + n_c) / n_c
    return _interval(DID, estimate, variance, n_c - 1, n_t, n_c)


def _solve(matrix: list[list[Fraction]], vector: list[Fraction]) -> list[Fraction] | None:
    """The exact solution of a small linear system (Gauss-Jordan over fractions); None if singular."""
    n = len(vector)
    rows = [list(matrix[i]) + [vector[i]] for i in range(n)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if rows[r][col] != 0), None)
        if pivot is None:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col])]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def regression_adjusted(sites: Sequence[SiteObservation]) -> Estimate:
    """The treatment group's reduction with its baseline errors predicted from pre-gate covariates by a
    least-squares fit on the held-out sites (see the module docstring). A covariate without spread
    in the control group is dropped (with none left this is difference in differences)."""
    treatment, control = _groups(sites)
    n_t, n_c = len(treatment), len(control)
    width = len(control[0].covariates) if control else 0
    if n_t < MIN_TREATMENT_SITES or n_c < max(MIN_CONTROL_SITES, width + 2):
        raise EstimatorError(f"regression needs >= {MIN_TREATMENT_SITES} dispatched and >= "
                             f"{max(MIN_CONTROL_SITES, width + 2)} held-out sites, got {n_t} and {n_c}")
    if any(len(s.covariates) != width for s in sites):
        raise EstimatorError("every site needs the same covariates")
    ys = [Fraction(s.reduction_wh) for s in control]
    y_mean = sum(ys) / n_c
    means = [Fraction(sum(s.covariates[k] for s in control), n_c) for k in range(width)]
    keep = [k for k in range(width) if any(s.covariates[k] != control[0].covariates[k] for s in control)]
    centred = [[s.covariates[k] - means[k] for k in keep] for s in control]
    sxx = [[sum(row[a] * row[b] for row in centred) for b in range(len(keep))] for a in range(len(keep))]
    sxy = [sum(row[a] * (y - y_mean) for row, y in zip(centred, ys)) for a in range(len(keep))]
    slopes = _solve(sxx, sxy) if keep else []
    if slopes is None:  # collinear covariates: fall back to the first one alone
        keep, centred = keep[:1], [row[:1] for row in centred]
        sxx, sxy = [[sxx[0][0]]], [sxy[0]]
        slopes = [sxy[0] / sxx[0][0]]
    residuals = [y - y_mean - sum(b * x for b, x in zip(slopes, row)) for row, y in zip(centred, ys)]
    dof = n_c - 1 - len(keep)
    s2 = sum(r * r for r in residuals) / dof
    x_t = [Fraction(sum(s.covariates[k] for s in treatment), n_t) - means[k] for k in keep]
    predicted = n_t * (y_mean + sum(b * x for b, x in zip(slopes, x_t)))
    estimate = _floor(sum(s.reduction_wh for s in treatment) - predicted)
    leverage = Fraction(0)
    if keep:
        solved = _solve(sxx, x_t)
        leverage = sum(a * b for a, b in zip(x_t, solved)) if solved else Fraction(0)
    variance = s2 * (n_t + Fraction(n_t * n_t, n_c) + n_t * n_t * leverage)
    return _interval(REGRESSION, estimate, variance, dof, n_t, n_c)


def site_baselines(sites: Sequence[SiteObservation]) -> Estimate:
    """The treatment sites' own baselines with no control correction (the fallback rule)."""
    treatment, control = _groups(sites)
    if not treatment:
        raise EstimatorError("no dispatched site to estimate")
    estimate = sum(s.reduction_wh for s in treatment)
    variance = Fraction(0)
    errors = 0
    for s in treatment:
        if s.placebo_errors_wh:
            variance += Fraction(sum(e * e for e in s.placebo_errors_wh), len(s.placebo_errors_wh))
            errors += len(s.placebo_errors_wh)
    return _interval(SITE, estimate, variance, errors - 1, len(treatment), len(control))


ESTIMATOR_FUNCTIONS = {DID: difference_in_differences, REGRESSION: regression_adjusted, SITE: site_baselines}


def estimate(method: str, sites: Sequence[SiteObservation]) -> Estimate:
    """The estimate of `method` (one of ESTIMATORS) over `sites`; EstimatorError if it cannot."""
    if method not in ESTIMATOR_FUNCTIONS:
        raise EstimatorError(f"unknown estimator {method!r}; one of {', '.join(ESTIMATORS)}")
    return ESTIMATOR_FUNCTIONS[method](sites)
