"""From site-meter readings and the holdout's groups to one request's verified portfolio reduction.

The rule, per request:

1. Every committed site gets its like-day baseline over the event window (the request's baseline
   method, CAISO 10-in-10 / 4-in-4 by default, event days excluded, no same-day adjustment), and
   r = sum of (baseline - actual). A site without a baseline or with a missing event reading
   leaves the estimate; the result lists it with its reason.
2. For the covariate-adjusted estimator the same is computed over a pre-window (`PRE_WINDOW`
   ending at gate closure, so the draw cannot move it; `DEFAULT_GATE_LEAD` before the start where
   no gate is known); the site's committed watts, fixed before the gate too, is the second covariate.
3. Placebo days: the `PLACEBO_DAYS` most recent like-days before the event are settled as if they
   were the event, by the same rules; each site's window error on each of them is kept (it sizes
   the fallback's interval), and the treatment group's *aggregate* prediction (its baselines
   corrected by the held-out sites' error that day) must pass the quality gate on them (RRMSE <= `max_rrmse_bps`, 20 % by default, decided in integers by
   oracle.quality.gate_passes): the settlement unit is the portfolio, so the gate is the portfolio's.
4. The estimate: the request's estimator (oracle.estimators) when the holdout has at least
   MIN_CONTROL_SITES usable held-out sites and the portfolio passes its gate; otherwise the
   **fallback**: the dispatched sites' own baselines, each site gated at 20 % on its placebo days
   (sites that fail leave; if none passes, rule `none`: nothing is verified). `rule` says which
   applied and `fallback_reason` why; a portfolio estimate the gate refused is still reported
   (`not_used`), never paid on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from oracle.baselines import BaselineSpec, build_grid, compute_baselines
from oracle.baselines.vectorised import BaselineBatch
from oracle.baselines.spec import CAISO, BaselineError, plan_event
from oracle.estimators import (DID, ESTIMATORS, MIN_CONTROL_SITES, REGRESSION, SITE, Estimate, EstimatorError,
                               SiteObservation, estimate)
from oracle.quality import DEFAULT_MAX_RRMSE_BPS, gate_passes
from oracle.reasons import Reason
from protocol.units import SECONDS_PER_DAY

TREATMENT = "treatment"
CONTROL = "control"
GROUPS = (TREATMENT, CONTROL)
METHODS = ESTIMATORS
DEFAULT_METHOD = DID
PLACEBO_DAYS = 5
PRE_WINDOW_SECONDS = 3_600
DEFAULT_GATE_LEAD_SECONDS = 900  # where no gate closure is known, the pre-window ends this long before the start

RULE_PORTFOLIO = "portfolio"
RULE_SITE_FALLBACK = "site_fallback"
RULE_NONE = "none"  # the fallback found no dispatched site that passes its own gate: nothing is verified
FALLBACK_SMALL_HOLDOUT = "holdout_too_small"
FALLBACK_PORTFOLIO_QUALITY = "portfolio_baseline_quality"
FALLBACK_NO_HOLDOUT = "no_holdout"


class VerifyError(ValueError):
    """Data the estimate cannot be computed from; the message says why."""


@dataclass(frozen=True)
class SiteWindow:
    """One site's baseline and actual over one request's window, and what the estimators need."""

    site: str
    group: str
    baseline_wh: tuple[int, ...]
    actual_wh: tuple[int, ...]
    covariate_wh: int | None  # sum(baseline - actual) over the pre-window (None: readings missing)
    placebo_errors_wh: tuple[int, ...]
    site_quality_passed: bool
    reasons: tuple[str, ...] = ()
    committed_w: int | None = None  # the site's commitment, a second covariate when known

    @property
    def usable(self) -> bool:
        """Whether the site takes part in the estimate (it has a baseline and every event reading)."""
        return not self.reasons

    @property
    def reduction_wh(self) -> int:
        """sum(baseline - actual) over the window (negative when the site used more)."""
        return sum(self.baseline_wh) - sum(self.actual_wh)

    def observation(self) -> SiteObservation:
        """The estimators' view of the site."""
        covariates = (self.covariate_wh or 0,) + (() if self.committed_w is None else (self.committed_w,))
        return SiteObservation(self.site, self.group == TREATMENT, self.reduction_wh, covariates,
                               self.placebo_errors_wh)


@dataclass(frozen=True)
class PortfolioQuality:
    """The treatment group's aggregate prediction on the placebo days (exact integer sums): the sum of
    its baselines, corrected per interval by n_T times the held-out sites' mean error that day (floor),
    as the difference in differences corrects the event."""

    days: int
    n: int
    sse: int
    sum_actual: int
    max_rrmse_bps: int

    @property
    def passed(self) -> bool:
        return self.days >= 2 and gate_passes(self.sse, self.n, self.sum_actual, self.max_rrmse_bps)

    def to_dict(self) -> dict:
        rrmse = None
        if self.n and self.sum_actual:
            rrmse = round((self.sse / self.n) ** 0.5 / (self.sum_actual / self.n), 6)
        return {"passed": self.passed, "days": self.days, "n": self.n, "sse": self.sse,
                "sum_actual_wh": self.sum_actual, "rrmse": rrmse, "max_rrmse_bps": self.max_rrmse_bps}


@dataclass(frozen=True)
class PortfolioResult:
    """The verified reduction of one request's dispatched sites, the rule that produced it, per site."""

    estimate: Estimate
    requested_method: str
    rule: str
    fallback_reason: str | None
    quality: PortfolioQuality
    sites: tuple[SiteWindow, ...]
    included: frozenset[str] = field(default_factory=frozenset)
    not_used: Estimate | None = None  # the portfolio estimator's figure when its gate sent it to the fallback

    def to_dict(self) -> dict:
        """The JSON form `negawatt oracle verify` prints and the report publishes."""
        portfolio = self.estimate.to_dict()
        portfolio.update({"requested_method": self.requested_method, "rule": self.rule,
                          "fallback_reason": self.fallback_reason, "quality": self.quality.to_dict(),
                          "not_used": None if self.not_used is None else self.not_used.to_dict()})
        devices = [{"device": s.site, "group": s.group, "baseline_wh": list(s.baseline_wh),
                    "actual_wh": list(s.actual_wh), "estimated_wh": s.reduction_wh,
                    "included": s.site in self.included, "reasons": list(s.reasons),
                    "site_quality_passed": s.site_quality_passed} for s in self.sites]
        return {"portfolio": portfolio, "devices": devices}


Verification = PortfolioResult  # the CLI's name for it


def default_spec(interval_seconds: int, max_rrmse_bps: int = DEFAULT_MAX_RRMSE_BPS, **overrides) -> BaselineSpec:
    """The site baseline the estimate uses unless a program says otherwise: CAISO like-days, no
    same-day adjustment (UK DFS dropped in-day adjustment after gaming), a 20 % gate."""
    return BaselineSpec(CAISO, interval_seconds=interval_seconds, max_rrmse_bps=max_rrmse_bps, **overrides)


def _window_sums(batch, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(complete, sum of baseline - actual) per row of a batch; complete = baseline and every reading."""
    has_baseline = (batch.reason_bits & int(Reason.INSUFFICIENT_HISTORY)) == 0
    complete = has_baseline & (batch.actual_wh >= 0).all(axis=1)
    sums = batch.baseline_wh.sum(axis=1) - np.where(batch.actual_wh >= 0, batch.actual_wh, 0).sum(axis=1)
    return complete[rows], sums[rows]


def site_windows(spec: BaselineSpec, grid_start: int, loads: np.ndarray, sites: Sequence[str],
                 groups: Mapping[str, str], event_start: int, event_end: int,
                 placebo_days: int = PLACEBO_DAYS, gate_closure: int | None = None,
                 committed_w: Mapping[str, int] | None = None,
                 event_batch: BaselineBatch | None = None) -> tuple[list[SiteWindow], PortfolioQuality]:
    """Each site's window, covariate and placebo errors, and the treatment group's placebo quality,
    from site-meter loads laid out on a grid (oracle.baselines.build_grid: [sites, T], -1 missing).
    `event_batch` is the event window's compute_baselines over the same rows, if the caller has it."""
    for site in sites:
        if groups.get(site) not in GROUPS:
            raise VerifyError(f"site {site}: group must be one of {', '.join(GROUPS)}, got {groups.get(site)!r}")
    interval = spec.interval_seconds
    names = list(sites)
    rows = np.arange(len(names))
    batch = event_batch if event_batch is not None else compute_baselines(spec, grid_start, loads, event_start,
                                                                          event_end, devices=names)
    complete, _sums = _window_sums(batch, rows)

    gate = event_start - DEFAULT_GATE_LEAD_SECONDS if gate_closure is None else min(gate_closure, event_start)
    pre_end = gate // interval * interval
    pre_start = pre_end - PRE_WINDOW_SECONDS
    covariates: np.ndarray | None = None
    pre_complete = np.zeros(len(names), dtype=bool)
    if pre_start >= grid_start:
        pre = compute_baselines(spec, grid_start, loads, pre_start, pre_end, devices=names)
        pre_complete, covariates = _window_sums(pre, rows)

    treatment = np.array([groups[s] == TREATMENT for s in names], dtype=bool)
    plan = plan_event(spec, event_start, event_end)
    placebo_errors: list[list[int]] = [[] for _ in names]
    q_days = q_n = q_sse = q_sum = 0
    for k, _day in plan.candidates:
        if q_days >= placebo_days:
            break
        start_k, end_k = event_start - k * SECONDS_PER_DAY, event_end - k * SECONDS_PER_DAY
        if start_k < grid_start:
            break
        placebo = compute_baselines(spec, grid_start, loads, start_k, end_k, devices=names)
        ok, errors = _window_sums(placebo, rows)
        if not ok.any():
            continue
        for i in np.flatnonzero(ok).tolist():
            placebo_errors[i].append(int(errors[i]))
        members = ok & treatment & complete
        controls = ok & ~treatment & complete
        if members.any():
            predicted = placebo.baseline_wh[members].sum(axis=0).astype(object)
            actual = placebo.actual_wh[members].sum(axis=0).astype(object)
            if controls.any():  # the control group's own error that day corrects the prediction, as DiD does
                control_error = (placebo.actual_wh[controls] - placebo.baseline_wh[controls]).sum(axis=0)
                n_t, n_c = int(members.sum()), int(controls.sum())
                predicted = [int(p) + (n_t * int(c)) // n_c for p, c in zip(predicted, control_error)]
            q_sse += sum((int(a) - int(p)) ** 2 for a, p in zip(actual, predicted))
            q_sum += int(sum(int(a) for a in actual))
            q_n += len(actual)
            q_days += 1
    quality = PortfolioQuality(q_days, q_n, q_sse, q_sum, spec.max_rrmse_bps)

    windows = []
    for i, site in enumerate(names):
        reasons = [] if complete[i] else [r for r in batch.reasons(i) if r != Reason.BASELINE_QUALITY.code
                                          and r != Reason.INSUFFICIENT_HISTORY_FOR_QUALITY.code]
        if not complete[i] and not reasons:
            reasons = [Reason.MISSING_EVENT_READINGS.code]
        windows.append(SiteWindow(
            site, groups[site], tuple(int(v) for v in batch.baseline_wh[i]),
            tuple(int(v) for v in batch.actual_wh[i]),
            int(covariates[i]) if covariates is not None and pre_complete[i] else None,
            tuple(placebo_errors[i]), bool(batch.quality(i).passed), tuple(reasons),
            None if committed_w is None else int(committed_w.get(site, 0))))
    return windows, quality


def estimate_portfolio(windows: Sequence[SiteWindow], quality: PortfolioQuality,
                       method: str = DEFAULT_METHOD, min_control: int = MIN_CONTROL_SITES) -> PortfolioResult:
    """The request's estimate by `method`, or the site fallback when the holdout cannot support it."""
    if method not in METHODS:
        raise VerifyError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    usable = [w for w in windows if w.usable]
    if method == REGRESSION:  # a site without its pre-window leaves the regression
        usable = [w for w in usable if w.covariate_wh is not None]
    treatment = [w for w in usable if w.group == TREATMENT]
    control = [w for w in usable if w.group == CONTROL]
    if not treatment:
        raise VerifyError("no dispatched (treatment) site has a baseline and every event reading")
    reason = None
    if method != SITE:
        if not control:
            reason = FALLBACK_NO_HOLDOUT
        elif len(control) < min_control:
            reason = FALLBACK_SMALL_HOLDOUT
        elif not quality.passed:
            reason = FALLBACK_PORTFOLIO_QUALITY
    if method != SITE and reason is None:
        try:
            result = estimate(method, [w.observation() for w in usable])
        except EstimatorError as error:
            raise VerifyError(str(error)) from None
        return PortfolioResult(result, method, RULE_PORTFOLIO, None, quality, tuple(windows),
                               frozenset(w.site for w in usable))
    not_used = None
    if reason == FALLBACK_PORTFOLIO_QUALITY:  # shown, never paid on: its placebo days were too noisy
        try:
            not_used = estimate(method, [w.observation() for w in usable])
        except EstimatorError:
            not_used = None
    gated = [w for w in treatment if w.site_quality_passed]
    if not gated:
        nothing = Estimate(SITE, 0, (0, 0), 0, len(control), 0, 1)
        return PortfolioResult(nothing, method, RULE_NONE, reason or "no_site_passes_quality", quality,
                               tuple(windows), frozenset(), not_used)
    result = estimate(SITE, [w.observation() for w in gated])
    rule = RULE_PORTFOLIO if method == SITE else RULE_SITE_FALLBACK
    return PortfolioResult(result, method, rule, reason, quality, tuple(windows), frozenset(w.site for w in gated),
                           not_used)


def verify_readings(readings: Mapping[str, Mapping[int, int]], groups: Mapping[str, str], event_start: int,
                    event_end: int, interval_seconds: int, method: str = DEFAULT_METHOD) -> PortfolioResult:
    """The portfolio estimate from raw site-meter readings {site: {interval start: Wh}} and groups
    {site: treatment|control}: what `negawatt oracle verify` runs."""
    missing = sorted(set(groups) - set(readings))
    if missing:
        raise VerifyError(f"site {missing[0]} has a group but no readings")
    try:
        spec = default_spec(interval_seconds)
        plan_event(spec, event_start, event_end)
        grid_start, order, loads = build_grid({s: readings[s] for s in groups}, interval_seconds, event_start,
                                              event_end)
    except BaselineError as error:
        raise VerifyError(str(error)) from None
    windows, quality = site_windows(spec, grid_start, loads, order, groups, event_start, event_end)
    return estimate_portfolio(windows, quality, method)
