"""oracle.quality: the exact integer RRMSE gate, display metrics, and placebo-day evaluation
through the baseline engine, with hand-computed examples."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.baselines import BaselineSpec, build_grid, compute_baselines, compute_device_baseline
from oracle.quality import QualityResult, assess, gate_passes, metrics

H = 3_600
EVENT_DAY = date(2026, 7, 1)  # a Wednesday


def ts(day: date, hour: int) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) + hour * H


START, END = ts(EVENT_DAY, 14), ts(EVENT_DAY, 16)


def put(readings: dict[int, int], day: date, values: dict[int, int], base: int = 100) -> None:
    for hour in range(24):
        readings[ts(day, hour)] = base
    for hour, wh in values.items():
        readings[ts(day, hour)] = wh


def both(spec: BaselineSpec, readings: dict[int, int]):
    one = compute_device_baseline(spec, readings, START, END, device="dev")
    grid_start, devices, loads = build_grid({"dev": readings}, H, START, END)
    assert compute_baselines(spec, grid_start, loads, START, END, devices).device(0) == one
    return one


# --------------------------------------------------------------------------- gate and metrics


def test_gate_boundary_is_inclusive():
    """actual [100, 100], predicted [80, 120]: SSE = 800, n = 2, S = 200, RRMSE = sqrt(400)/100 = 0.20.
    10^8 * 800 * 2 = 1.6e11 = 2000^2 * 200^2 -> passes at 2,000 bps, fails at 1,999."""
    result = assess([("2026-06-30", [80, 120], [100, 100])])
    assert (result.sse, result.n, result.sum_actual, result.sum_error) == (800, 2, 200, 0)
    assert gate_passes(800, 2, 200, 2_000)
    assert not gate_passes(800, 2, 200, 1_999)
    assert metrics(800, 2, 200, 0) == {"rrmse": 0.2, "cv_rmse": 0.2, "nmbe": 0.0}


def test_metrics_hand_example():
    """errors (actual - predicted) = 20, -20, 0, 10: SSE = 900, n = 4, S = 400, E = 10.
    RRMSE = sqrt(900/4) / (400/4) = 15/100 = 0.15 = CV(RMSE) (p = 0); NMBE = 10/400 = 0.025."""
    pairs = [("2026-06-30", [80, 120], [100, 100]), ("2026-06-29", [100, 90], [100, 100])]
    result = QualityResult(("2026-06-30", "2026-06-29"), 4, 900, 400, 10, 2_000)
    assert assess(pairs) == result
    out = result.to_dict()
    assert (out["rrmse"], out["cv_rmse"], out["nmbe"], out["n"]) == (0.15, 0.15, 0.025, 4)
    assert out["passed"] is True and result.reason is None
    assert QualityResult(result.days, 4, 900, 400, 10, 1_499).reason == "baseline_quality"


def test_zero_mean_and_too_few_days():
    assert gate_passes(0, 4, 0, 2_000) and not gate_passes(1, 4, 0, 2_000)
    assert metrics(0, 4, 0, 0) == {"rrmse": None, "cv_rmse": None, "nmbe": None}
    assert metrics(0, 0, 0, 0)["rrmse"] is None
    one_day = assess([("2026-06-30", [100], [100])])
    assert not one_day.passed and one_day.reason == "insufficient_history_for_quality"
    assert assess([]).reason == "insufficient_history_for_quality"
    with pytest.raises(ValueError):
        assess([("2026-06-30", [1, 2], [1])])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)), min_size=1, max_size=60),
    st.integers(0, 20_000),
)
def test_integer_gate_agrees_with_the_float_metric(points, max_rrmse_bps):
    predicted = [p for p, _ in points]
    actual = [a for _, a in points]
    result = assess([("d", predicted, actual)], max_rrmse_bps)
    if result.sum_actual == 0:
        assert gate_passes(result.sse, result.n, 0, max_rrmse_bps) == (result.sse == 0)
        return
    rrmse = math.sqrt(result.sse / result.n) / (result.sum_actual / result.n)
    threshold = max_rrmse_bps / 10_000
    if abs(rrmse - threshold) > 1e-9 * max(1.0, threshold):
        assert gate_passes(result.sse, result.n, result.sum_actual, max_rrmse_bps) == (rrmse <= threshold)
    assert metrics(result.sse, result.n, result.sum_actual, result.sum_error)["rrmse"] == round(rrmse, 6)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_vectorised_accumulator_matches_per_device_sums(seed, length):
    from oracle.quality import QualityAccumulator

    rng = np.random.default_rng(seed)
    acc = QualityAccumulator(5, 2)
    predicted = [rng.integers(0, 10**7, size=(5, length)) for _ in range(2)]
    actual = [rng.integers(0, 10**7, size=(5, length)) for _ in range(2)]
    evaluated = [rng.random(5) < 0.7 for _ in range(2)]
    for slot in range(2):
        acc.add(slot, np.full(5, slot + 1), evaluated[slot], predicted[slot], actual[slot])
    for d in range(5):
        pairs = [
            (str(s), predicted[s][d].tolist(), actual[s][d].tolist()) for s in range(2) if evaluated[s][d]
        ]
        expected = assess(pairs)
        assert (int(acc.sse[d]), int(acc.points[d]), int(acc.sum_actual[d]), int(acc.sum_error[d])) == (
            expected.sse,
            expected.n,
            expected.sum_actual,
            expected.sum_error,
        )


# --------------------------------------------------------------------------- placebo days


def mba_readings() -> dict[int, int]:
    """Meter-before-after, before = 12h and 13h (both 100 on every day, so each placebo prediction is 100).
    Window actuals on the 5 most recent weekdays:
      06-30 [100, 100], 06-29 [110, 90], 06-26 [100, 100], 06-25 [130, 70], 06-24 [100, 100]
    SSE = 10^2 + 10^2 + 30^2 + 30^2 = 2000, n = 10, S = 1000, E = 0;
    RRMSE = sqrt(2000/10) / 100 = 0.141421. The 6th weekday (06-23) and weekend days must not count."""
    r: dict[int, int] = {}
    windows = {
        date(2026, 6, 30): (100, 100),
        date(2026, 6, 29): (110, 90),
        date(2026, 6, 26): (100, 100),
        date(2026, 6, 25): (130, 70),
        date(2026, 6, 24): (100, 100),
        date(2026, 6, 23): (500, 0),
        date(2026, 6, 28): (900, 0),
        date(2026, 6, 27): (0, 900),
    }
    for day, (a, b) in windows.items():
        put(r, day, {14: a, 15: b})
    put(r, EVENT_DAY, {14: 60, 15: 60})
    return r


def test_placebo_quality_for_meter_before_after_hand_example():
    out = both(BaselineSpec(method="meter-before-after", interval_seconds=H), mba_readings())
    assert out.baseline_wh == [100, 100] and out.curtailed_wh == [40, 40]
    assert out.quality == {
        "passed": True,
        "days": ["2026-06-30", "2026-06-29", "2026-06-26", "2026-06-25", "2026-06-24"],
        "n": 10,
        "rrmse": 0.141421,
        "cv_rmse": 0.141421,
        "nmbe": 0.0,
        "sse": 2000,
        "sum_actual_wh": 1000,
        "sum_error_wh": 0,
        "max_rrmse_bps": 2000,
    }
    assert out.eligible and out.reasons == []


def test_placebo_quality_gate_fails_below_the_measured_rrmse():
    """10^8 * 2000 * 10 = 2.0e12 > 1400^2 * 1000^2 = 1.96e12: fails at 1,400 bps;
    1415^2 * 1000^2 = 2.002e12 >= 2.0e12: passes at 1,415 bps."""
    out = both(
        BaselineSpec(method="meter-before-after", interval_seconds=H, max_rrmse_bps=1_400), mba_readings()
    )
    assert out.reasons == ["baseline_quality"] and not out.eligible and out.quality["passed"] is False
    assert out.curtailed_wh == [40, 40]  # still reported; the settlement pays nothing
    out = both(
        BaselineSpec(method="meter-before-after", interval_seconds=H, max_rrmse_bps=1_415), mba_readings()
    )
    assert out.eligible


def test_fewer_than_two_placebo_days_is_insufficient():
    r = mba_readings()
    for day in (
        date(2026, 6, 29),
        date(2026, 6, 26),
        date(2026, 6, 25),
        date(2026, 6, 24),
        date(2026, 6, 23),
    ):
        del r[ts(day, 13)]  # the before-interval is missing: not a usable day any more
    out = both(BaselineSpec(method="meter-before-after", interval_seconds=H), r)
    assert out.quality["days"] == ["2026-06-30"] and out.quality["passed"] is False
    assert out.reasons == ["insufficient_history_for_quality"] and not out.eligible


def test_placebo_quality_for_a_day_matching_method():
    """high-x-of-y with x = y = 1 (yesterday's like-day), quality_days = 3. Weekday windows:
      06-30 [100, 100], 06-29 [100, 120], 06-26 [90, 100], 06-25 [100, 100]
    placebo 06-30 predicted from 06-29: errors 0, -20; 06-29 from 06-26: 10, 20; 06-26 from 06-25: -10, 0.
    SSE = 400 + 100 + 400 + 100 = 1000, n = 6, S = 610, E = 0.
    Gate: 10^8 * 1000 * 6 = 6e11 <= 2000^2 * 610^2 = 1.4884e12 passes; at 1,000 bps 3.721e11 fails."""
    r: dict[int, int] = {}
    for day, (a, b) in {
        date(2026, 6, 30): (100, 100),
        date(2026, 6, 29): (100, 120),
        date(2026, 6, 26): (90, 100),
        date(2026, 6, 25): (100, 100),
    }.items():
        put(r, day, {14: a, 15: b})
    put(r, EVENT_DAY, {14: 70, 15: 70})
    spec = BaselineSpec(method="high-x-of-y", x=1, y=1, quality_days=3, interval_seconds=H)
    out = both(spec, r)
    assert out.baseline_wh == [100, 100] and out.selected_days == ["2026-06-30"]
    q = out.quality
    assert q["days"] == ["2026-06-30", "2026-06-29", "2026-06-26"]
    assert (q["sse"], q["n"], q["sum_actual_wh"], q["sum_error_wh"]) == (1000, 6, 610, 0)
    assert q["rrmse"] == round(math.sqrt(1000 / 6) / (610 / 6), 6) and q["passed"]
    out = both(
        BaselineSpec(method="high-x-of-y", x=1, y=1, quality_days=3, interval_seconds=H, max_rrmse_bps=1_000),
        r,
    )
    assert out.reasons == ["baseline_quality"]


def test_placebo_days_stay_inside_the_look_back():
    """Usable weekdays only 46+ days back cannot serve as placebo days."""
    r = {}
    for k in range(46, 70):
        day = EVENT_DAY - timedelta(days=k)
        if day.weekday() < 5:
            put(r, day, {})
    put(r, EVENT_DAY, {})
    out = both(BaselineSpec(method="meter-before-after", interval_seconds=H), r)
    assert out.quality["days"] == [] and "insufficient_history_for_quality" in out.reasons
