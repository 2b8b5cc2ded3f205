"""Baseline quality gate on placebo (non-event) days: relative RMSE, CV(RMSE) and NMBE.

How a device is tested (the day loop lives in `oracle.baselines`, which owns day selection; the
metrics, the gate and the report live here):

* The placebo days are the device's `quality_days` (default 5) most recent *usable* like-days
  before the event day, inside the 45-day look-back (the same days the method could pick as
  history). Each is treated as if it were the event day, with the same window offsets: its baseline
  is computed from the days before it by the same rules (day type, exclusions, look-back of 45 days
  counted from the placebo day, minimum number of days, selection, same-day adjustment).
  For `meter-before-after` a placebo day's prediction comes from that day's own intervals just
  before the window.
* A placebo day is *evaluated* when the method can produce a baseline for it. Over the evaluated
  days' window intervals (n points) the oracle keeps three exact integers:
  SSE = sum (actual - predicted)^2, S = sum actual, E = sum (actual - predicted).
* Gate, exact integer arithmetic only:
      passed  iff  evaluated days >= 2  and  10_000^2 * SSE * n <= max_rrmse_bps^2 * S^2
  which is RRMSE <= max_rrmse_bps / 10_000 without any division (default 2,000 bps = 20 %, the PJM
  and AEMO threshold). With S = 0 the gate passes only if SSE = 0.
* Reported metrics (floats, display only, rounded to 6 decimals; None when n = 0 or S = 0):
      RRMSE    = sqrt(SSE / n) / (S / n)
      CV(RMSE) = sqrt(SSE / (n - p)) / (S / n) with p = 0 parameters, so equal to RRMSE
      NMBE     = E / S   (= sum(actual - predicted) / (n * mean(actual)))
  Floats never decide eligibility.

Reason codes (members of `oracle.reasons.Reason`): fewer than 2 evaluated placebo days -> `insufficient_history_for_quality`;
gate failed -> `baseline_quality`. Either makes the device ineligible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from oracle.reasons import Reason
from protocol.units import BPS

MIN_PLACEBO_DAYS = 2
DEFAULT_MAX_RRMSE_BPS = 2_000

REASON_INSUFFICIENT_HISTORY_FOR_QUALITY = Reason.INSUFFICIENT_HISTORY_FOR_QUALITY.code
REASON_BASELINE_QUALITY = Reason.BASELINE_QUALITY.code


def gate_passes(sse: int, n: int, sum_actual: int, max_rrmse_bps: int) -> bool:
    """RRMSE <= max_rrmse_bps / 10_000, decided with Python integers only."""
    sse, n, sum_actual, max_rrmse_bps = int(sse), int(n), int(sum_actual), int(max_rrmse_bps)
    if n <= 0:
        return False
    return BPS * BPS * sse * n <= max_rrmse_bps * max_rrmse_bps * sum_actual * sum_actual


def metrics(sse: int, n: int, sum_actual: int, sum_error: int) -> dict[str, float | None]:
    """Display metrics (rounded to 6 decimals). None where undefined (n = 0 or mean actual = 0)."""
    sse, n, sum_actual, sum_error = int(sse), int(n), int(sum_actual), int(sum_error)
    if n <= 0 or sum_actual <= 0:
        return {"rrmse": None, "cv_rmse": None, "nmbe": None}
    mean = sum_actual / n
    rrmse = math.sqrt(sse / n) / mean
    cv_rmse = math.sqrt(sse / (n - 0)) / mean  # p = 0 model parameters: identical to RRMSE
    nmbe = sum_error / sum_actual
    return {"rrmse": round(rrmse, 6), "cv_rmse": round(cv_rmse, 6), "nmbe": round(nmbe, 6)}


@dataclass(frozen=True)
class QualityResult:
    """Outcome of the placebo-day test for one device."""

    days: tuple[str, ...]  # ISO dates of the evaluated placebo days, most recent first
    n: int  # evaluated interval points
    sse: int
    sum_actual: int
    sum_error: int
    max_rrmse_bps: int

    @property
    def enough_days(self) -> bool:
        return len(self.days) >= MIN_PLACEBO_DAYS

    @property
    def passed(self) -> bool:
        return self.enough_days and gate_passes(self.sse, self.n, self.sum_actual, self.max_rrmse_bps)

    @property
    def reason_flag(self) -> Reason | None:
        """The quality reason that makes the device ineligible, or None if it passed."""
        if not self.enough_days:
            return Reason.INSUFFICIENT_HISTORY_FOR_QUALITY
        if not self.passed:
            return Reason.BASELINE_QUALITY
        return None

    @property
    def reason(self) -> str | None:
        """The report code of `reason_flag` (None if the device passed)."""
        flag = self.reason_flag
        return None if flag is None else flag.code

    def to_dict(self) -> dict:
        out: dict = {"passed": self.passed, "days": list(self.days), "n": self.n}
        out.update(metrics(self.sse, self.n, self.sum_actual, self.sum_error))
        out.update(
            {
                "sse": self.sse,
                "sum_actual_wh": self.sum_actual,
                "sum_error_wh": self.sum_error,
                "max_rrmse_bps": self.max_rrmse_bps,
            }
        )
        return out


def assess(
    pairs: list[tuple[str, list[int], list[int]]], max_rrmse_bps: int = DEFAULT_MAX_RRMSE_BPS
) -> QualityResult:
    """Per-device form: `pairs` holds (iso_date, predicted, actual) for each evaluated placebo day."""
    sse = sum_actual = sum_error = n = 0
    for _, predicted, actual in pairs:
        if len(predicted) != len(actual):
            raise ValueError("predicted and actual must have the same length")
        for p, a in zip(predicted, actual):
            e = int(a) - int(p)
            sse += e * e
            sum_error += e
            sum_actual += int(a)
            n += 1
    return QualityResult(tuple(d for d, _, _ in pairs), n, sse, sum_actual, sum_error, max_rrmse_bps)


class QualityAccumulator:
    """Vectorised form: accumulates the exact integer sums over many devices and placebo days.

    Values are bounded by the engine (readings <= 10^7 Wh, at most 10 placebo days of at most
    1,440 intervals), so every int64 sum below stays far from overflow.
    """

    def __init__(self, devices: int, slots: int) -> None:
        self.sse = np.zeros(devices, dtype=np.int64)
        self.sum_actual = np.zeros(devices, dtype=np.int64)
        self.sum_error = np.zeros(devices, dtype=np.int64)
        self.points = np.zeros(devices, dtype=np.int64)
        self.day_k = np.zeros((devices, slots), dtype=np.int64)  # days before the event, 0 = not evaluated

    def add(
        self, slot: int, day_k: np.ndarray, evaluated: np.ndarray, predicted: np.ndarray, actual: np.ndarray
    ) -> None:
        err = actual - predicted
        err[~evaluated] = 0
        act = np.where(evaluated[:, None], actual, 0)
        self.sse += np.einsum("ij,ij->i", err, err)
        self.sum_error += err.sum(axis=1)
        self.sum_actual += act.sum(axis=1)
        self.points += evaluated.astype(np.int64) * actual.shape[1]
        self.day_k[:, slot] = np.where(evaluated, day_k, 0)
