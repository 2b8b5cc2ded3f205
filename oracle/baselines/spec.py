"""Baseline rules: the parameters (`BaselineSpec`), their validation, and each event's plan.

The rule: everything both engines (`reference`, `vectorised`) must agree on before touching a
reading lives here: the method and adjustment names, the report codes of reasons and flags, the
input bounds, and `plan_event`, which turns a spec and an event window into the like-day
candidates and window offsets. See `oracle.baselines` for the meaning of every parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from oracle import quality as q
from oracle.reasons import Flag, Reason
from protocol.units import BPS, SECONDS_PER_DAY

MAX_WH = 10_000_000
MAX_LOOKBACK_DAYS = 45
MAX_QUALITY_DAYS = 10

CAISO = "caiso-10in10"
HIGH_X_OF_Y = "high-x-of-y"
ERCOT = "ercot-middle-8of10"
METER_BEFORE_AFTER = "meter-before-after"
METHODS = (CAISO, HIGH_X_OF_Y, ERCOT, METER_BEFORE_AFTER)
ADJUSTMENTS = ("none", "additive", "ratio")

# Report codes, derived from oracle.reasons (bit i of a reason/flag mask <=> REASONS[i]/FLAGS[i]).
REASON_INSUFFICIENT_HISTORY = Reason.INSUFFICIENT_HISTORY.code
REASON_MISSING_ADJUSTMENT = Reason.MISSING_ADJUSTMENT_READINGS.code
REASON_MISSING_EVENT = Reason.MISSING_EVENT_READINGS.code
REASONS = tuple(reason.code for reason in Reason)
FLAG_CAPPED_UP = Flag.ADJUSTMENT_CAPPED_UP.code
FLAG_JUMP = Flag.PRE_EVENT_LOAD_JUMP.code
FLAGS = tuple(flag.code for flag in Flag)

BOUNDS = ("none", "up", "down")  # adjustment bound codes, by their number in the engine


class BaselineError(ValueError):
    """Invalid baseline parameters or input data."""


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int within [low, high], or BaselineError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BaselineError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise BaselineError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise BaselineError(f"{name} must be <= {high}, got {value}")
    return value


def _dates(name: str, values: Iterable[date]) -> frozenset[date]:
    out = frozenset(values)
    for value in out:
        if isinstance(value, datetime) or not isinstance(value, date):
            raise BaselineError(f"{name} must hold datetime.date values, got {value!r}")
    return out


@dataclass(frozen=True)
class BaselineSpec:
    """How to compute a baseline. See the module docstring for the meaning of each field."""

    method: str
    interval_seconds: int = 900
    adjustment: str = "none"
    cap_bps: int = 2_000
    x: int = 4
    y: int = 5
    min_days: int | None = None
    adjustment_window_seconds: int = 3 * 3_600
    adjustment_gap_seconds: int = 3_600
    jump_flag_bps: int = 5_000
    before_intervals: int = 2
    utc_offset_seconds: int = 0
    holidays: frozenset[date] = field(default_factory=frozenset)
    event_days: frozenset[date] = field(default_factory=frozenset)
    lookback_days: int = MAX_LOOKBACK_DAYS
    quality_days: int = 5
    max_rrmse_bps: int = q.DEFAULT_MAX_RRMSE_BPS

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise BaselineError(f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.adjustment not in ADJUSTMENTS:
            raise BaselineError(
                f"unknown adjustment {self.adjustment!r}; expected one of {', '.join(ADJUSTMENTS)}"
            )
        interval = check_int("interval_seconds", self.interval_seconds, 60, SECONDS_PER_DAY)
        if SECONDS_PER_DAY % interval:
            raise BaselineError(f"interval_seconds {interval} must divide 86400")
        check_int("cap_bps", self.cap_bps, 0, BPS)
        check_int("lookback_days", self.lookback_days, 1, MAX_LOOKBACK_DAYS)
        x = check_int("x", self.x, 1)
        y = check_int("y", self.y, 1, self.lookback_days)
        if x > y:
            raise BaselineError(f"x ({x}) must not exceed y ({y})")
        window = check_int(
            "adjustment_window_seconds", self.adjustment_window_seconds, interval, SECONDS_PER_DAY
        )
        gap = check_int("adjustment_gap_seconds", self.adjustment_gap_seconds, 0, SECONDS_PER_DAY)
        if window % interval or gap % interval:
            raise BaselineError(
                f"adjustment_window_seconds ({window}) and adjustment_gap_seconds ({gap}) must be "
                f"multiples of interval_seconds ({interval})"
            )
        check_int("jump_flag_bps", self.jump_flag_bps, 0, 100 * BPS)
        check_int("before_intervals", self.before_intervals, 1, SECONDS_PER_DAY // interval)
        check_int("utc_offset_seconds", self.utc_offset_seconds, -SECONDS_PER_DAY + 1, SECONDS_PER_DAY - 1)
        check_int("quality_days", self.quality_days, 1, MAX_QUALITY_DAYS)
        check_int("max_rrmse_bps", self.max_rrmse_bps, 0)
        if self.method == METER_BEFORE_AFTER and self.adjustment != "none":
            raise BaselineError("meter-before-after takes no same-day adjustment (use adjustment='none')")
        if self.min_days is not None:
            floor = {CAISO: 1, HIGH_X_OF_Y: x, ERCOT: 3, METER_BEFORE_AFTER: 1}[self.method]
            check_int("min_days", self.min_days, floor, self.lookback_days)
        object.__setattr__(self, "holidays", _dates("holidays", self.holidays))
        object.__setattr__(self, "event_days", _dates("event_days", self.event_days))

    @property
    def day_matching(self) -> bool:
        return self.method != METER_BEFORE_AFTER

    @property
    def adjusted(self) -> bool:
        return self.day_matching and self.adjustment != "none"

    def days_wanted(self, weekend: bool) -> int:
        """How many most recent usable like-days the method looks at."""
        if self.method == CAISO:
            return 4 if weekend else 10
        if self.method == HIGH_X_OF_Y:
            return self.y
        if self.method == ERCOT:
            return 10
        return 0

    def days_required(self, weekend: bool) -> int:
        wanted = self.days_wanted(weekend)
        return wanted if self.min_days is None else min(self.min_days, wanted)

    def is_weekend(self, day: date) -> bool:
        return day.weekday() >= 5 or day in self.holidays


@dataclass(frozen=True)
class Plan:
    """Calendar and offsets of one event (shared by both implementations)."""

    spec: BaselineSpec
    event_start: int
    event_end: int
    length: int  # L, event intervals
    event_date: date
    weekend: bool
    wanted: int
    required: int
    candidates: tuple[tuple[int, date], ...]  # (k days before the event, local date), like-days, k ascending
    segments: tuple[
        tuple[int, int], ...
    ]  # (offset, width) in intervals, relative to event_start, besides the window
    adj_offset: int  # offset of the adjustment window (intervals), if adjusted
    adj_width: int  # W, 0 if not adjusted

    @property
    def per_day(self) -> int:
        return SECONDS_PER_DAY // self.spec.interval_seconds


def local_date(timestamp: int, utc_offset_seconds: int = 0) -> date:
    """Calendar date of a unix timestamp at a fixed UTC offset."""
    return datetime.fromtimestamp(timestamp + utc_offset_seconds, tz=UTC).date()


def plan_event(spec: BaselineSpec, event_start: int, event_end: int) -> Plan:
    """The calendar and window offsets of one event, shared by both engines (validates the window)."""
    interval = spec.interval_seconds
    event_start = check_int("event_start", event_start)
    event_end = check_int("event_end", event_end)
    if event_start % interval:
        raise BaselineError(f"event_start {event_start} is not aligned to the {interval} s grid")
    if event_end % interval:
        raise BaselineError(f"event_end {event_end} is not aligned to the {interval} s grid")
    if event_end <= event_start:
        raise BaselineError(f"event_end ({event_end}) must be after event_start ({event_start})")
    if event_end - event_start > SECONDS_PER_DAY:
        raise BaselineError("the event window must not be longer than one day")
    event_date = local_date(event_start, spec.utc_offset_seconds)
    weekend = spec.is_weekend(event_date)
    candidates = []
    for k in range(1, 2 * spec.lookback_days + 1):
        day = event_date - timedelta(days=k)
        if spec.is_weekend(day) == weekend and day not in spec.event_days:
            candidates.append((k, day))
    segments: tuple[tuple[int, int], ...] = ()
    adj_offset = adj_width = 0
    if spec.adjusted:
        adj_width = spec.adjustment_window_seconds // interval
        adj_offset = -(spec.adjustment_gap_seconds // interval) - adj_width
        segments = ((adj_offset, adj_width),)
    elif spec.method == METER_BEFORE_AFTER:
        segments = ((-spec.before_intervals, spec.before_intervals),)
    return Plan(
        spec,
        event_start,
        event_end,
        (event_end - event_start) // interval,
        event_date,
        weekend,
        spec.days_wanted(weekend),
        spec.days_required(weekend),
        tuple(candidates),
        segments,
        adj_offset,
        adj_width,
    )


def validate_window(spec: BaselineSpec, event_start: int, event_end: int) -> None:
    """Raise BaselineError unless [event_start, event_end) is a valid event window for `spec`."""
    plan_event(spec, event_start, event_end)


def check_reading(device: str, timestamp: object, wh: object, interval: int) -> None:
    """Raise BaselineError unless `timestamp` is on the grid and `wh` an integer in 0..MAX_WH."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, np.integer)) or timestamp % interval:
        raise BaselineError(
            f"device {device}: timestamp {timestamp!r} is not aligned to the {interval} s grid"
        )
    if isinstance(wh, bool) or not isinstance(wh, (int, np.integer)) or not 0 <= wh <= MAX_WH:
        raise BaselineError(
            f"device {device}: reading at {timestamp} must be an integer Wh in 0..{MAX_WH}, got {wh!r}"
        )
