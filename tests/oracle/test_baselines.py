"""oracle.baselines: hand-worked examples for every method and adjustment, day types, exclusions,
missing data, validation, and properties (vectorised == per-device, curtailed >= 0, bounds).

Unless a test says otherwise: hourly intervals (3,600 s), event Wednesday 2026-07-01 14:00-16:00 UTC
(two intervals: 14h and 15h), adjustment window 10:00-13:00 (3 h ending 1 h before the event).
The weekdays before 2026-07-01, most recent first, are
  06-30 Tue, 06-29 Mon, 06-26 Fri, 06-25 Thu, 06-24 Wed, 06-23 Tue, 06-22 Mon, 06-19 Fri,
  06-18 Thu, 06-17 Wed, 06-16 Tue, 06-15 Mon, ...
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle.baselines import (
    ADJUSTMENTS,
    METHODS,
    BaselineError,
    BaselineSpec,
    build_grid,
    compute_baselines,
    compute_device_baseline,
)

H = 3_600
EVENT_DAY = date(2026, 7, 1)


def ts(day: date, hour: int) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) + hour * H


START, END = ts(EVENT_DAY, 14), ts(EVENT_DAY, 16)


def weekdays_before(day: date, n: int) -> list[date]:
    out, d = [], day
    while len(out) < n:
        d -= timedelta(days=1)
        if d.weekday() < 5:
            out.append(d)
    return out


def put(readings: dict[int, int], day: date, values: dict[int, int] | None = None, base: int = 100) -> None:
    """Every hour of `day` reads `base`, except the hours given in `values`."""
    for hour in range(24):
        readings[ts(day, hour)] = base
    for hour, wh in (values or {}).items():
        readings[ts(day, hour)] = wh


def spec(method: str = "caiso-10in10", **kw) -> BaselineSpec:
    return BaselineSpec(method=method, interval_seconds=H, **kw)


def run(s: BaselineSpec, readings: dict[int, int], start: int = START, end: int = END):
    """Per-device result, checked against the vectorised engine on the same data."""
    one = compute_device_baseline(s, readings, start, end, device="dev")
    grid_start, devices, loads = build_grid({"dev": readings}, s.interval_seconds, start, end)
    batch = compute_baselines(s, grid_start, loads, start, end, devices)
    assert batch.device(0) == one
    return one


W10 = weekdays_before(EVENT_DAY, 12)


# --------------------------------------------------------------------------- caiso-10in10


def test_caiso_weekday_hand_example():
    """Day i (i = 1 most recent weekday .. 10) reads 14h: 100 + i, 15h: 200 + i + (i mod 3).
    14h: sum = 1000 + 55 = 1055 -> floor(105.5) = 105
    15h: sum = 2000 + 55 + (1+2+0+1+2+0+1+2+0+1 = 10) = 2065 -> floor(206.5) = 206
    The 11th weekday (9,999) and weekend days (5,000) must not count.
    Actual 14h = 50, 15h = 300 -> curtailed [105 - 50, max(0, 206 - 300)] = [55, 0]."""
    r: dict[int, int] = {}
    for i, day in enumerate(W10[:10], start=1):
        put(r, day, {14: 100 + i, 15: 200 + i + i % 3})
    put(r, W10[10], {14: 9_999, 15: 9_999})
    for day in (date(2026, 6, 27), date(2026, 6, 28), date(2026, 6, 20), date(2026, 6, 21)):
        put(r, day, {14: 5_000, 15: 5_000})
    put(r, EVENT_DAY, {14: 50, 15: 300})
    out = run(spec(), r)
    assert out.baseline_wh == [105, 206]
    assert out.actual_wh == [50, 300]
    assert out.curtailed_wh == [55, 0]
    assert out.selected_days == sorted(d.isoformat() for d in W10[:10])
    assert out.adjustment == {"kind": "none"}
    # Only 06-30 has 10 usable weekdays before it (06-29 .. 06-16), so one placebo day: too few.
    assert out.quality["days"] == ["2026-06-30"]
    assert out.reasons == ["insufficient_history_for_quality"]
    assert out.eligible is False


def test_caiso_weekend_event_uses_4_most_recent_weekend_or_holiday_days():
    """Event Sunday 2026-07-05, holiday Friday 07-03. Like-days by recency: 07-04 Sat, 07-03 (holiday),
    06-28 Sun, 06-27 Sat; 06-21 is the 5th and weekdays do not count.
    14h: 40 + 50 + 60 + 70 = 220 -> 55;  15h: 41 + 50 + 61 + 73 = 225 -> floor(56.25) = 56."""
    r: dict[int, int] = {}
    for day, (a, b) in {
        date(2026, 7, 4): (40, 41),
        date(2026, 7, 3): (50, 50),
        date(2026, 6, 28): (60, 61),
        date(2026, 6, 27): (70, 73),
        date(2026, 6, 21): (999, 999),
    }.items():
        put(r, day, {14: a, 15: b})
    for day in (date(2026, 7, 2), date(2026, 7, 1), date(2026, 6, 30), date(2026, 6, 29)):
        put(r, day, {14: 999, 15: 999})
    sunday = date(2026, 7, 5)
    put(r, sunday, {14: 10, 15: 10})
    out = run(spec(holidays={date(2026, 7, 3)}), r, ts(sunday, 14), ts(sunday, 16))
    assert out.baseline_wh == [55, 56]
    assert out.selected_days == ["2026-06-27", "2026-06-28", "2026-07-03", "2026-07-04"]
    # Without the holiday, 07-03 is a weekday and 06-21 (999) comes in: (40+60+70+999)//4 = 292.
    out = run(spec(), r, ts(sunday, 14), ts(sunday, 16))
    assert out.baseline_wh == [(40 + 60 + 70 + 999) // 4, (41 + 61 + 73 + 999) // 4]


def test_weekend_event_with_only_three_like_days_is_insufficient():
    r: dict[int, int] = {}
    for day in (date(2026, 7, 4), date(2026, 6, 28), date(2026, 6, 27)):
        put(r, day)
    sunday = date(2026, 7, 5)
    put(r, sunday)
    out = run(spec(), r, ts(sunday, 14), ts(sunday, 16))
    assert "insufficient_history" in out.reasons and not out.eligible


def test_holidays_and_event_days_are_excluded_from_weekday_history():
    """Each weekday reads its day of month at 14h and that + 1 at 15h. Holiday 06-29 and earlier event
    day 06-25 are skipped, so the 10 days are 06-30, 26, 24, 23, 22, 19, 18, 17, 16, 15:
    14h: 30+26+24+23+22+19+18+17+16+15 = 210 -> 21; 15h: 220 -> 22."""
    r: dict[int, int] = {}
    for day in weekdays_before(EVENT_DAY, 14):
        put(r, day, {14: day.day, 15: day.day + 1})
    put(r, EVENT_DAY)
    out = run(spec(holidays={date(2026, 6, 29)}, event_days={date(2026, 6, 25)}), r)
    assert out.baseline_wh == [21, 22]
    assert out.selected_days == [
        "2026-06-15",
        "2026-06-16",
        "2026-06-17",
        "2026-06-18",
        "2026-06-19",
        "2026-06-22",
        "2026-06-23",
        "2026-06-24",
        "2026-06-26",
        "2026-06-30",
    ]


def test_days_with_missing_readings_are_skipped():
    """Weekdays read their day of month at 14h and 15h. 06-30 lacks its 15h reading (never usable);
    06-29 lacks 11h, which only matters when an adjustment (window 10-13h) is used.
    none:     06-29, 26, 25, 24, 23, 22, 19, 18, 17, 16 -> 219 -> floor(21.9) = 21
    additive: 06-26, 25, 24, 23, 22, 19, 18, 17, 16, 15 -> 205 -> floor(20.5) = 20, and the
              adjustment window reads 100 everywhere, so A = U = 300 and d = 0."""
    r: dict[int, int] = {}
    for day in weekdays_before(EVENT_DAY, 14):
        put(r, day, {14: day.day, 15: day.day})
    del r[ts(date(2026, 6, 30), 15)]
    del r[ts(date(2026, 6, 29), 11)]
    put(r, EVENT_DAY)
    assert run(spec(), r).baseline_wh == [21, 21]
    out = run(spec(adjustment="additive"), r)
    assert out.baseline_wh == [20, 20]
    assert out.adjustment["additive_wh"] == 0
    assert "2026-06-29" not in out.selected_days and "2026-06-15" in out.selected_days


def test_insufficient_history_and_lower_min_days():
    """Only 9 weekdays: ineligible with a zero baseline. With min_days=9 the 9 days are averaged:
    days read 10 * i (i = 1..9) -> 450 / 9 = 50."""
    r: dict[int, int] = {}
    for i, day in enumerate(W10[:9], start=1):
        put(r, day, {14: 10 * i, 15: 10 * i})
    put(r, EVENT_DAY, {14: 20, 15: 20})
    out = run(spec(), r)
    assert out.reasons[0] == "insufficient_history" and not out.eligible
    assert out.baseline_wh == [0, 0] and out.curtailed_wh == [0, 0] and out.selected_days == []
    out = run(spec(min_days=9), r)
    assert out.baseline_wh == [50, 50] and out.curtailed_wh == [30, 30]


def test_lookback_is_45_days():
    """Ten weekdays exist but the oldest lies 46 days back: insufficient."""
    r: dict[int, int] = {}
    for day in W10[:9]:
        put(r, day)
    put(r, date(2026, 5, 15))  # a Friday 47 days back, outside the look-back
    put(r, EVENT_DAY)
    assert "insufficient_history" in run(spec(), r).reasons
    r2 = dict(r)
    put(r2, date(2026, 5, 18))  # Monday, 44 days back
    assert "insufficient_history" not in run(spec(), r2).reasons


# --------------------------------------------------------------------------- high-x-of-y and ERCOT


def test_high_4_of_5_hand_example_with_ties():
    """The 5 most recent weekdays and their window totals (14h + 15h):
      06-30: 10 + 10 = 20;  06-29: 30 + 0 = 30;  06-26: 5 + 15 = 20;  06-25: 40 + 2 = 42;  06-24: 20 + 0 = 20
    Highest 4: 42 (06-25), 30 (06-29), then the tie at 20 goes to the more recent 06-30 and 06-26;
    06-24 is dropped.  14h: 40 + 30 + 10 + 5 = 85 -> floor(21.25) = 21;  15h: 2 + 0 + 10 + 15 = 27 -> 6."""
    r: dict[int, int] = {}
    values = {
        date(2026, 6, 30): (10, 10),
        date(2026, 6, 29): (30, 0),
        date(2026, 6, 26): (5, 15),
        date(2026, 6, 25): (40, 2),
        date(2026, 6, 24): (20, 0),
    }
    for day, (a, b) in values.items():
        put(r, day, {14: a, 15: b})
    for day in weekdays_before(EVENT_DAY, 12)[5:]:
        put(r, day, {14: 500, 15: 500})
    put(r, EVENT_DAY)
    out = run(spec("high-x-of-y", x=4, y=5), r)
    assert out.baseline_wh == [21, 6]
    assert out.selected_days == ["2026-06-25", "2026-06-26", "2026-06-29", "2026-06-30"]
    # 3 of 3: the three most recent, whatever their totals: 14h (10+30+5)//3 = 15, 15h (10+0+15)//3 = 8
    assert run(spec("high-x-of-y", x=3, y=3), r).baseline_wh == [15, 8]


def test_ercot_middle_8_of_10_hand_example_with_ties():
    """Day i (1 = 06-30 .. 10 = 06-17) has window total T_i = 50, 10, 50, 20, 30, 10, 40, 30, 20, 40,
    split as 15h = i mod 3 and 14h = T_i - 15h:
      14h: 49, 8, 50, 19, 28, 10, 39, 28, 20, 39;   15h: 1, 2, 0, 1, 2, 0, 1, 2, 0, 1
    Highest total 50: days 1 and 3 tie, the older (3 = 06-26) is dropped.
    Lowest total 10: days 2 and 6 tie, the older (6 = 06-23) is dropped.
    Middle 8 = days 1, 2, 4, 5, 7, 8, 9, 10:
      14h: 49+8+19+28+39+28+20+39 = 230 -> floor(28.75) = 28;  15h: 1+2+1+2+1+2+0+1 = 10 -> 1."""
    totals = [50, 10, 50, 20, 30, 10, 40, 30, 20, 40]
    r: dict[int, int] = {}
    for i, (day, total) in enumerate(zip(W10[:10], totals), start=1):
        put(r, day, {14: total - i % 3, 15: i % 3})
    put(r, W10[10], {14: 0, 15: 0})
    put(r, EVENT_DAY)
    out = run(spec("ercot-middle-8of10"), r)
    assert out.baseline_wh == [28, 1]
    assert "2026-06-26" not in out.selected_days and "2026-06-23" not in out.selected_days
    assert len(out.selected_days) == 8


# --------------------------------------------------------------------------- meter-before-after


def test_meter_before_after_hand_example():
    """Readings at 12h = 101 and 13h = 104 -> floor(205 / 2) = 102 for every event interval.
    Actual [90, 110] -> curtailed [12, 0]. With 13h missing there is no baseline."""
    r: dict[int, int] = {}
    put(r, EVENT_DAY, {12: 101, 13: 104, 14: 90, 15: 110})
    out = run(spec("meter-before-after"), r)
    assert out.baseline_wh == [102, 102] and out.curtailed_wh == [12, 0]
    assert out.adjustment == {"kind": "none"} and out.selected_days == []
    # 3 intervals before: (100 + 101 + 104) // 3 = 101
    assert run(spec("meter-before-after", before_intervals=3), r).baseline_wh == [101, 101]
    del r[ts(EVENT_DAY, 13)]
    assert run(spec("meter-before-after"), r).reasons[0] == "insufficient_history"


# --------------------------------------------------------------------------- same-day adjustment


def flat_history(window: tuple[int, int] = (100, 57), adj: int = 100) -> dict[int, int]:
    """12 weekdays reading 14h/15h = `window`, adjustment-window hours (10, 11, 12) = `adj`."""
    r: dict[int, int] = {}
    for day in weekdays_before(EVENT_DAY, 12):
        put(r, day, {14: window[0], 15: window[1], 10: adj, 11: adj, 12: adj})
    return r


def event_day(r: dict[int, int], adj_hours: tuple[int, int, int], window: tuple[int, int] = (50, 50)):
    put(r, EVENT_DAY, {10: adj_hours[0], 11: adj_hours[1], 12: adj_hours[2], 14: window[0], 15: window[1]})
    return r


def test_ratio_adjustment_within_cap():
    """Unadjusted [100, 57], U = 300, A = 110 + 110 + 111 = 331; 331/300 = 1.103 is inside [0.8, 1.2]:
    [floor(100 * 331 / 300), floor(57 * 331 / 300)] = [floor(110.33), floor(62.89)] = [110, 62]."""
    out = run(spec(adjustment="ratio"), event_day(flat_history(), (110, 110, 111)))
    assert out.baseline_wh == [110, 62]
    assert out.adjustment == {
        "kind": "ratio",
        "applied": True,
        "factor": "331/300",
        "factor_bps": 11033,
        "capped": False,
        "bound": "none",
        "cap_bps": 2000,
        "window_actual_wh": 331,
        "window_baseline_wh": 300,
    }
    assert out.flags == []


def test_ratio_adjustment_capped_up_and_flags():
    """A = 400: 400/300 = 1.33 > 1.2 -> factor 6/5: [120, floor(68.4) = 68], flag adjustment_capped_up.
    (A - U)/U = 33 % <= 50 %: no jump flag. A = 460: +53 % -> both flags."""
    out = run(spec(adjustment="ratio"), event_day(flat_history(), (130, 130, 140)))
    assert out.baseline_wh == [120, 68]
    assert out.adjustment["factor"] == "6/5" and out.adjustment["bound"] == "up" and out.adjustment["capped"]
    assert out.flags == ["adjustment_capped_up"]
    out = run(spec(adjustment="ratio"), event_day(flat_history(), (150, 150, 160)))
    assert out.flags == ["adjustment_capped_up", "pre_event_load_jump"]
    assert out.eligible is True and out.reasons == []  # flags alone do not disqualify


def test_pre_event_jump_flag_threshold_is_strict():
    """Exactly +50 % (A = 450, U = 300: 150 * 10,000 = 5,000 * 300) is not flagged; A = 451 is."""
    out = run(spec(adjustment="ratio"), event_day(flat_history(), (150, 150, 150)))
    assert out.flags == ["adjustment_capped_up"]
    out = run(spec(adjustment="additive"), event_day(flat_history(), (150, 150, 151)))
    assert out.flags == ["adjustment_capped_up", "pre_event_load_jump"]
    out = run(spec(adjustment="ratio", jump_flag_bps=10_000), event_day(flat_history(), (150, 150, 151)))
    assert out.flags == ["adjustment_capped_up"]


def test_ratio_adjustment_capped_down_and_custom_cap():
    """A = 200: 0.667 < 0.8 -> factor 4/5: [80, floor(45.6) = 45]. With cap 10 % (1,000 bps) and
    A = 331 (1.103 > 1.1) the factor is 11/10: [110, floor(62.7) = 62]."""
    out = run(spec(adjustment="ratio"), event_day(flat_history(), (60, 70, 70)))
    assert out.baseline_wh == [80, 45] and out.adjustment["factor"] == "4/5"
    assert out.adjustment["bound"] == "down" and out.flags == []
    out = run(spec(adjustment="ratio", cap_bps=1_000), event_day(flat_history(), (110, 110, 111)))
    assert out.adjustment["factor"] == "11/10" and out.baseline_wh == [110, 62]


def test_ratio_with_zero_unadjusted_window_uses_factor_one():
    """U = 0 in the adjustment window: factor 1 (never capped), A > 0 is a +infinite jump -> flagged."""
    out = run(spec(adjustment="ratio"), event_day(flat_history(adj=0), (5, 5, 5)))
    assert out.baseline_wh == [100, 57]
    assert out.adjustment["factor"] == "1/1" and out.adjustment["bound"] == "none"
    assert out.flags == ["pre_event_load_jump"]


def test_additive_adjustment_within_cap_and_rounding_toward_zero():
    """U = 300, |w| = 3, cap limit = floor(2000 * 300 / (10000 * 3)) = 20 Wh.
    A = 340: d = 40 / 3 = 13.33 -> 13: [113, 70].
    A = 293: d = -7 / 3 = -2.33 -> toward zero -2 (floor would give -3): [98, 55]."""
    out = run(spec(adjustment="additive"), event_day(flat_history(), (110, 110, 120)))
    assert out.baseline_wh == [113, 70]
    assert out.adjustment == {
        "kind": "additive",
        "applied": True,
        "additive_wh": 13,
        "uncapped_wh": 13,
        "limit_wh": 20,
        "capped": False,
        "bound": "none",
        "cap_bps": 2000,
        "window_actual_wh": 340,
        "window_baseline_wh": 300,
    }
    out = run(spec(adjustment="additive"), event_day(flat_history(), (97, 98, 98)))
    assert out.adjustment["additive_wh"] == -2 and out.baseline_wh == [98, 55]


def test_additive_adjustment_capped_both_ways_and_floored_at_zero():
    """A = 400: uncapped 100 / 3 -> 33 > 20 -> +20: [120, 77], flag capped up.
    A = 100: uncapped -200 / 3 -> -66 < -20 -> -20: [80, 37].
    With unadjusted 15h = 10: max(0, 10 - 20) = 0."""
    out = run(spec(adjustment="additive"), event_day(flat_history(), (130, 130, 140)))
    assert out.baseline_wh == [120, 77] and out.adjustment["uncapped_wh"] == 33
    assert out.adjustment["bound"] == "up" and out.flags == ["adjustment_capped_up"]
    out = run(spec(adjustment="additive"), event_day(flat_history(), (30, 30, 40)))
    assert out.baseline_wh == [80, 37] and out.adjustment["additive_wh"] == -20
    assert out.adjustment["bound"] == "down" and out.flags == []
    out = run(spec(adjustment="additive"), event_day(flat_history(window=(100, 10)), (30, 30, 40)))
    assert out.baseline_wh == [80, 0]


def test_missing_event_and_adjustment_readings():
    r = event_day(flat_history(), (100, 100, 100))
    del r[ts(EVENT_DAY, 15)]
    out = run(spec(), r)
    assert out.actual_wh == [50, -1] and out.curtailed_wh == [50, 0]
    assert "missing_event_readings" in out.reasons and not out.eligible
    r = event_day(flat_history(), (100, 100, 100))
    del r[ts(EVENT_DAY, 11)]
    out = run(spec(adjustment="ratio"), r)
    assert "missing_adjustment_readings" in out.reasons
    assert out.adjustment == {"kind": "ratio", "applied": False}
    assert out.baseline_wh == [100, 57]  # the unadjusted baseline, reported for information


# --------------------------------------------------------------------------- calendar


def test_window_crossing_midnight_uses_whole_day_shifts():
    """Event Wed 07-01 23:00 -> Thu 07-02 01:00. Prior day X's window is X 23:00 and X+1 00:00; it
    reads X.day and X.day + 100. The 10 weekdays X before Wednesday:
    30+29+26+25+24+23+22+19+18+17 = 233 -> 23 and 1233 -> 123. Weekend windows (900) must not count."""
    r: dict[int, int] = {}
    day = EVENT_DAY - timedelta(days=1)
    while day > EVENT_DAY - timedelta(days=20):
        value = day.day if day.weekday() < 5 else 900
        r[ts(day, 23)] = value
        r[ts(day + timedelta(days=1), 0)] = value + 100
        day -= timedelta(days=1)
    r[ts(EVENT_DAY, 23)] = 0
    r[ts(EVENT_DAY, 24)] = 0
    out = run(spec(), r, ts(EVENT_DAY, 23), ts(EVENT_DAY, 25))
    assert out.baseline_wh == [23, 123]
    assert out.selected_days[-1] == "2026-06-30" and out.selected_days[0] == "2026-06-17"


def test_utc_offset_decides_the_day_type():
    """Event 2026-07-04T02:00Z, one interval. Prior day k reads 10 * k.
    UTC: Saturday -> 4 most recent weekend days k = 6 (06-28 Sun), 7, 13, 14 -> (60+70+130+140)/4 = 100.
    UTC-5: Friday 07-03 21:00 local -> weekdays k = 1, 2, 3, 4, 7, 8, 9, 10, 11, 14 (k = 5, 6, 12, 13 are
    the local weekend) -> 10 * 69 / 10 = 69."""
    start = ts(date(2026, 7, 4), 2)
    r = {start - k * 86_400: 10 * k for k in range(1, 20)}
    r[start] = 0
    assert run(spec(), r, start, start + H).baseline_wh == [100]
    out = run(spec(utc_offset_seconds=-5 * H), r, start, start + H)
    assert out.baseline_wh == [69]
    assert out.selected_days[-1] == "2026-07-02"  # local date of k = 1


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "pjm-magic"}, "unknown method"),
        ({"method": "high-x-of-y", "x": 6, "y": 5}, r"x \(6\) must not exceed y \(5\)"),
        ({"method": "caiso-10in10", "cap_bps": 10_001}, "cap_bps must be <= 10000"),
        ({"method": "caiso-10in10", "cap_bps": -1}, "cap_bps must be >= 0"),
        ({"method": "caiso-10in10", "adjustment": "multiplicative"}, "unknown adjustment"),
        ({"method": "meter-before-after", "adjustment": "ratio"}, "no same-day adjustment"),
        ({"method": "caiso-10in10", "interval_seconds": 7 * 60}, "must divide 86400"),
        ({"method": "caiso-10in10", "adjustment_window_seconds": 1_000}, "multiples of interval_seconds"),
        ({"method": "caiso-10in10", "quality_days": 11}, "quality_days must be <= 10"),
        ({"method": "high-x-of-y", "min_days": 3}, "min_days must be >= 4"),
        ({"method": "caiso-10in10", "holidays": {"2026-07-03"}}, "datetime.date"),
    ],
)
def test_spec_validation(kwargs, message):
    with pytest.raises(BaselineError, match=message):
        BaselineSpec(**kwargs)


@pytest.mark.parametrize(
    "start, end, message",
    [
        (START + 60, END, "event_start .* not aligned"),
        (START, END + 1, "event_end .* not aligned"),
        (START, START, "must be after event_start"),
        (START, START - H, "must be after event_start"),
        (START, START + 2 * 86_400, "longer than one day"),
    ],
)
def test_window_validation(start, end, message):
    with pytest.raises(BaselineError, match=message):
        compute_device_baseline(spec(), {}, start, end)
    with pytest.raises(BaselineError, match=message):
        compute_baselines(spec(), START - 86_400, np.zeros((1, 48), dtype=np.int64), start, end)


def test_array_validation():
    with pytest.raises(BaselineError, match="-1 \\(missing\\)"):
        compute_baselines(spec(), START, np.full((1, 4), -2), START, END)
    with pytest.raises(BaselineError, match="signed integer"):
        compute_baselines(spec(), START, np.zeros((1, 4)), START, END)
    with pytest.raises(BaselineError, match="grid_start"):
        compute_baselines(spec(), START + 5, np.zeros((1, 4), dtype=np.int64), START, END)
    with pytest.raises(BaselineError, match="device ids"):
        compute_baselines(spec(), START, np.zeros((2, 4), dtype=np.int64), START, END, ["a"])
    with pytest.raises(BaselineError, match="integer Wh"):
        compute_device_baseline(spec(), {START: -5}, START, END)


# --------------------------------------------------------------------------- properties

GRID_DAYS = 75


@st.composite
def scenarios(draw):
    method = draw(st.sampled_from(METHODS))
    adjustment = "none" if method == "meter-before-after" else draw(st.sampled_from(ADJUSTMENTS))
    kwargs = {
        "method": method,
        "interval_seconds": H,
        "adjustment": adjustment,
        "cap_bps": draw(st.sampled_from([0, 1, 1_000, 2_000, 5_000, 10_000])),
        "jump_flag_bps": draw(st.sampled_from([0, 5_000])),
        "utc_offset_seconds": draw(st.sampled_from([0, -5 * H, 9 * H])),
        "quality_days": draw(st.integers(1, 6)),
        "max_rrmse_bps": draw(st.sampled_from([500, 2_000, 5_000])),
    }
    if method == "high-x-of-y":
        y = draw(st.integers(1, 6))
        kwargs.update(x=draw(st.integers(1, y)), y=y)
    if method != "meter-before-after" and draw(st.booleans()):
        floor = {"caiso-10in10": 1, "high-x-of-y": kwargs.get("x", 4), "ercot-middle-8of10": 3}[method]
        kwargs["min_days"] = draw(st.integers(floor, 12))
    event_day = EVENT_DAY + timedelta(days=draw(st.integers(0, 6)))
    kwargs["holidays"] = {
        event_day - timedelta(days=k) for k in draw(st.sets(st.integers(0, 60), max_size=4))
    }
    kwargs["event_days"] = {
        event_day - timedelta(days=k) for k in draw(st.sets(st.integers(1, 60), max_size=4))
    }
    start = ts(event_day, draw(st.integers(0, 23)))
    end = start + H * draw(st.integers(1, 5))
    return (
        BaselineSpec(**kwargs),
        start,
        end,
        draw(st.integers(1, 5)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.sampled_from([0.0, 0.01, 0.05, 0.3])),
        draw(st.integers(1, 4)),
    )


def synthetic(start: int, devices: int, seed: int, missing: float):
    """Noisy daily profiles with gaps, over GRID_DAYS days before the event up to a day after it."""
    rng = np.random.default_rng(seed)
    grid_start = start - start % 86_400 - GRID_DAYS * 86_400
    cols = (GRID_DAYS + 2) * 24
    shape = rng.integers(0, 400, size=24)
    level = rng.integers(1, 5, size=(devices, 1))
    loads = np.tile(shape, GRID_DAYS + 2)[None, :] * level + rng.integers(0, 120, size=(devices, cols))
    if rng.random() < 0.3:
        loads[:, rng.integers(0, cols, size=5)] = 0
    loads[rng.random((devices, cols)) < missing] = -1
    return grid_start, loads.astype(np.int64)


def as_readings(grid_start: int, row: np.ndarray) -> dict[int, int]:
    return {grid_start + j * H: int(v) for j, v in enumerate(row.tolist()) if v >= 0}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_vectorised_matches_per_device_and_invariants(scenario):
    s, start, end, n, seed, missing, chunk = scenario
    grid_start, loads = synthetic(start, n, seed, missing)
    names = [f"d{i}" for i in range(n)]
    batch = compute_baselines(s, grid_start, loads, start, end, names, chunk_size=chunk)
    records = batch.to_list()
    for i, record in enumerate(records):
        reference = compute_device_baseline(s, as_readings(grid_start, loads[i]), start, end, device=names[i])
        assert record == reference
        assert all(c >= 0 for c in record.curtailed_wh)
        assert record.curtailed_wh == [
            max(0, b - a) if a >= 0 else 0 for b, a in zip(record.baseline_wh, record.actual_wh)
        ]
        assert record.eligible == (record.reasons == [])
        if record.adjustment.get("kind") == "ratio" and record.adjustment["applied"]:
            factor = Fraction(record.adjustment["factor"])
            cap = Fraction(s.cap_bps, 10_000)
            assert 1 - cap <= factor <= 1 + cap
        if record.adjustment.get("kind") == "additive" and record.adjustment["applied"]:
            assert abs(record.adjustment["additive_wh"]) <= record.adjustment["limit_wh"]
    assert (batch.curtailed_wh >= 0).all()
    # reordering the devices (rows and ids together) changes nothing per device
    order = np.random.default_rng(seed).permutation(n)
    shuffled = compute_baselines(s, grid_start, loads[order], start, end, [names[i] for i in order])
    assert {r.device: r for r in shuffled} == {r.device: r for r in records}


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_unadjusted_baseline_lies_within_the_selected_days(scenario):
    s, start, end, n, seed, missing, _ = scenario
    if s.method == "meter-before-after":
        return
    s = replace(s, adjustment="none")
    grid_start, loads = synthetic(start, n, seed, missing)
    for i in range(n):
        readings = as_readings(grid_start, loads[i])
        record = compute_device_baseline(s, readings, start, end)
        if not record.selected_days:
            continue
        for t, value in enumerate(record.baseline_wh):
            column = []
            event_local = datetime.fromtimestamp(start + s.utc_offset_seconds, tz=UTC).date()
            for iso in record.selected_days:
                k = (event_local - date.fromisoformat(iso)).days
                column.append(readings[start + t * H - k * 86_400])
            assert min(column) <= value <= max(column)


def test_results_are_identical_across_chunk_sizes_and_dtypes():
    s = spec("high-x-of-y", adjustment="ratio")
    grid_start, loads = synthetic(START, 7, 11, 0.02)
    a = compute_baselines(s, grid_start, loads, START, END, chunk_size=1).to_list()
    b = compute_baselines(s, grid_start, loads.astype(np.int32), START, END, chunk_size=1000).to_list()
    assert a == b
