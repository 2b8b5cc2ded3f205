"""Demand-response baselines in integer Wh per interval, computed the same way on every oracle.

Public API
----------
    BaselineSpec(method, interval_seconds=900, adjustment="none", cap_bps=2_000, x=4, y=5,
                 min_days=None, adjustment_window_seconds=10_800, adjustment_gap_seconds=3_600,
                 jump_flag_bps=5_000, before_intervals=2, utc_offset_seconds=0,
                 holidays=frozenset(), event_days=frozenset(), lookback_days=45,
                 quality_days=5, max_rrmse_bps=2_000)
        Frozen dataclass, validated on construction (BaselineError, a ValueError, with a clear
        message: unknown method, x > y, cap outside 0..10,000 bps, ...).

    compute_baselines(spec, grid_start, loads, event_start, event_end, devices=None,
                      *, chunk_size=8_192) -> BaselineBatch
        Vectorised engine. `loads` is an integer array [D, T] (int64; int32 accepted), -1 = missing;
        column j is the interval starting at grid_start + j * interval_seconds (unix seconds, UTC).
        BaselineBatch keeps the results as arrays (`baseline_wh`, `actual_wh`, `curtailed_wh`
        [D, L] int64; `eligible` [D] bool) for the settlement, and builds per-device records on
        demand: `batch.device(i)`, `batch.to_list()`, `iter(batch)`.

    compute_device_baseline(spec, readings, event_start, event_end, device="device") -> DeviceBaseline
        Per-device convenience API, `readings` maps interval start (unix s) -> Wh. It is a separate,
        plain-Python implementation of the same rules; the tests check that both agree.

    build_grid(readings_by_device, interval_seconds, event_start, event_end, history_days=None)
        -> (grid_start, devices, loads): lays {device: {timestamp: wh}} out for compute_baselines.

    validate_window(spec, event_start, event_end) -> None: raises BaselineError for a bad window.

    DeviceBaseline: device, baseline_wh, actual_wh, curtailed_wh, adjustment, quality, eligible,
        reasons, flags, selected_days; `to_dict()` gives the JSON record.

Rounding (the one rule)
-----------------------
Every division of non-negative integers rounds down (floor): the day average
floor(sum / count), the ratio adjustment floor(unadjusted * num / den), the additive cap
floor(cap_bps * U / (10_000 * |w|)), meter-before-after floor(sum / before_intervals).
The one signed quotient, the additive adjustment d = (A - U) / |w|, rounds toward zero: its
magnitude is floored and the sign put back (trunc), so a device is never credited an extra
fractional Wh in either direction. Floats appear only in reported quality metrics.

Time and days
-------------
The grid step is `interval_seconds` (must divide 86,400). The event window [event_start,
event_end) is aligned to the grid, non-empty and at most one day long; it may cross midnight.
"The same intervals on prior day k" are the window's intervals shifted by k * 86,400 s. A day's
date is the calendar date of its window start at `utc_offset_seconds` (fixed offset, no DST);
its type is weekend/holiday (Saturday, Sunday or a date in `holidays`) or weekday. Like-days are
prior days of the event's type, looked back at most `lookback_days` (45) days, never a date in
`event_days`. A prior day is *usable* for a device when the device has every reading of that day's
window intervals and, if an adjustment is used, of that day's adjustment-window intervals
(for meter-before-after: of its `before_intervals` before the window).

Methods
-------
* caiso-10in10: the 10 most recent usable like-days (weekend/holiday events: the 4 most recent,
  i.e. CAISO's 4-in-4), baseline[t] = floor(sum of load[t] / count).
* high-x-of-y: the y most recent usable like-days (both day types), keep the x with the highest
  event-window total (ties: the more recent day wins), average them.
* ercot-middle-8of10: the 10 most recent usable like-days (both day types), drop the single
  highest and the single lowest event-window total (ties: the older day is dropped), average 8.
* meter-before-after: every event interval gets floor(mean of the `before_intervals` readings just
  before event_start); no history and no same-day adjustment.
Fewer usable days than `min_days` (default: the number the method wants, i.e. 10 / 4 / y / 10)
makes the device ineligible with `insufficient_history`. A smaller `min_days` lets the method run
on the days it has (min_days >= x for high-x-of-y, >= 3 for the ERCOT method).

Same-day adjustment (day-matching methods)
-----------------------------------------
Window w: `adjustment_window_seconds` (3 h) ending `adjustment_gap_seconds` (1 h) before
event_start. A = sum of the event day's actual readings in w, U = sum of the unadjusted baseline
over w computed from the same selected days, cap in bps (default 2,000).
  bound "up"   iff (A - U) * 10_000 > cap_bps * U      (the exact uncapped adjustment exceeds the cap)
  bound "down" iff (U - A) * 10_000 > cap_bps * U
* ratio: factor = A / U, or (10_000 + cap) / 10_000 if bound up, (10_000 - cap) / 10_000 if bound
  down, 1 if U = 0 (then never bound); baseline[t] = floor(unadjusted[t] * num / den).
* additive: d = trunc((A - U) / |w|), or +/- floor(cap_bps * U / (10_000 * |w|)) when bound;
  baseline[t] = max(0, unadjusted[t] + d).
Missing actual readings in w make the device ineligible (`missing_adjustment_readings`); the
reported baseline is then the unadjusted one and the adjustment is marked not applied.
Flags (reported, not disqualifying by themselves): `adjustment_capped_up` when bound up,
`pre_event_load_jump` when (A - U) * 10_000 > jump_flag_bps * U.

Result per device
-----------------
baseline_wh, actual_wh (-1 where a reading is missing), curtailed_wh[t] = max(0, baseline - actual)
(0 where actual is missing), adjustment, quality (see oracle.quality), eligible, reasons (codes in
REASONS order), flags, selected_days (ISO dates, oldest first). When no baseline can be computed
(insufficient_history) baseline_wh is all zeros.

Bounds that keep int64 exact: readings are 0..MAX_WH (10^7 Wh per interval), interval_seconds
>= 60, quality_days <= 10.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from oracle import quality as q

BPS = 10_000
SECONDS_PER_DAY = 86_400
MAX_WH = 10_000_000
MAX_LOOKBACK_DAYS = 45
MAX_QUALITY_DAYS = 10
_SLOT_SPACE = 64  # > any number of candidate slots; used in integer ranking keys

CAISO = "caiso-10in10"
HIGH_X_OF_Y = "high-x-of-y"
ERCOT = "ercot-middle-8of10"
METER_BEFORE_AFTER = "meter-before-after"
METHODS = (CAISO, HIGH_X_OF_Y, ERCOT, METER_BEFORE_AFTER)
ADJUSTMENTS = ("none", "additive", "ratio")

REASON_INSUFFICIENT_HISTORY = "insufficient_history"
REASON_MISSING_ADJUSTMENT = "missing_adjustment_readings"
REASON_MISSING_EVENT = "missing_event_readings"
REASONS = (
    REASON_INSUFFICIENT_HISTORY,
    REASON_MISSING_ADJUSTMENT,
    REASON_MISSING_EVENT,
    q.REASON_INSUFFICIENT_HISTORY_FOR_QUALITY,
    q.REASON_BASELINE_QUALITY,
)
FLAG_CAPPED_UP = "adjustment_capped_up"
FLAG_JUMP = "pre_event_load_jump"
FLAGS = (FLAG_CAPPED_UP, FLAG_JUMP)

_BOUNDS = ("none", "up", "down")


class BaselineError(ValueError):
    """Invalid baseline parameters or input data."""


def _int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
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
        interval = _int("interval_seconds", self.interval_seconds, 60, SECONDS_PER_DAY)
        if SECONDS_PER_DAY % interval:
            raise BaselineError(f"interval_seconds {interval} must divide 86400")
        _int("cap_bps", self.cap_bps, 0, BPS)
        _int("lookback_days", self.lookback_days, 1, MAX_LOOKBACK_DAYS)
        x = _int("x", self.x, 1)
        y = _int("y", self.y, 1, self.lookback_days)
        if x > y:
            raise BaselineError(f"x ({x}) must not exceed y ({y})")
        window = _int("adjustment_window_seconds", self.adjustment_window_seconds, interval, SECONDS_PER_DAY)
        gap = _int("adjustment_gap_seconds", self.adjustment_gap_seconds, 0, SECONDS_PER_DAY)
        if window % interval or gap % interval:
            raise BaselineError(
                f"adjustment_window_seconds ({window}) and adjustment_gap_seconds ({gap}) must be "
                f"multiples of interval_seconds ({interval})"
            )
        _int("jump_flag_bps", self.jump_flag_bps, 0, 100 * BPS)
        _int("before_intervals", self.before_intervals, 1, SECONDS_PER_DAY // interval)
        _int("utc_offset_seconds", self.utc_offset_seconds, -SECONDS_PER_DAY + 1, SECONDS_PER_DAY - 1)
        _int("quality_days", self.quality_days, 1, MAX_QUALITY_DAYS)
        _int("max_rrmse_bps", self.max_rrmse_bps, 0)
        if self.method == METER_BEFORE_AFTER and self.adjustment != "none":
            raise BaselineError("meter-before-after takes no same-day adjustment (use adjustment='none')")
        if self.min_days is not None:
            floor = {CAISO: 1, HIGH_X_OF_Y: x, ERCOT: 3, METER_BEFORE_AFTER: 1}[self.method]
            _int("min_days", self.min_days, floor, self.lookback_days)
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
class _Plan:
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


def _plan(spec: BaselineSpec, event_start: int, event_end: int) -> _Plan:
    interval = spec.interval_seconds
    event_start = _int("event_start", event_start)
    event_end = _int("event_end", event_end)
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
    return _Plan(
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
    _plan(spec, event_start, event_end)


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class DeviceBaseline:
    """The baseline engine's verdict for one device over the event intervals."""

    device: str
    baseline_wh: list[int]
    actual_wh: list[int]
    curtailed_wh: list[int]
    adjustment: dict
    quality: dict
    eligible: bool
    reasons: list[str]
    flags: list[str]
    selected_days: list[str]

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "baseline_wh": list(self.baseline_wh),
            "actual_wh": list(self.actual_wh),
            "curtailed_wh": list(self.curtailed_wh),
            "adjustment": dict(self.adjustment),
            "quality": dict(self.quality),
            "eligible": self.eligible,
            "reasons": list(self.reasons),
            "flags": list(self.flags),
            "selected_days": list(self.selected_days),
        }


def _adjustment_dict(
    spec: BaselineSpec,
    applied: bool,
    *,
    num: int = 1,
    den: int = 1,
    additive: int = 0,
    uncapped: int = 0,
    limit: int = 0,
    bound: str = "none",
    actual: int = 0,
    unadjusted: int = 0,
) -> dict:
    if not spec.adjusted:
        return {"kind": "none"}
    if not applied:
        return {"kind": spec.adjustment, "applied": False}
    out: dict = {"kind": spec.adjustment, "applied": True}
    if spec.adjustment == "ratio":
        g = math.gcd(num, den) or 1
        out.update({"factor": f"{num // g}/{den // g}", "factor_bps": num * BPS // den})
    else:
        out.update({"additive_wh": additive, "uncapped_wh": uncapped, "limit_wh": limit})
    out.update(
        {
            "capped": bound != "none",
            "bound": bound,
            "cap_bps": spec.cap_bps,
            "window_actual_wh": actual,
            "window_baseline_wh": unadjusted,
        }
    )
    return out


def _finish(
    device: str,
    plan: _Plan,
    baseline: list[int] | None,
    actual: list[int],
    adjustment: dict,
    adj_missing: bool,
    flags: list[str],
    selected: list[str],
    quality: q.QualityResult,
    curtailed: list[int] | None = None,
) -> DeviceBaseline:
    """Assemble the record; `selected` holds ISO dates, `curtailed` may be passed in precomputed."""
    reasons = []
    if baseline is None:
        reasons.append(REASON_INSUFFICIENT_HISTORY)
        baseline = [0] * plan.length
    if adj_missing:
        reasons.append(REASON_MISSING_ADJUSTMENT)
    if min(actual) < 0:
        reasons.append(REASON_MISSING_EVENT)
    if quality.reason is not None:
        reasons.append(quality.reason)
    if curtailed is None:
        curtailed = [max(0, b - a) if a >= 0 else 0 for b, a in zip(baseline, actual)]
    return DeviceBaseline(
        device,
        baseline,
        actual,
        curtailed,
        adjustment,
        quality.to_dict(),
        not reasons,
        reasons,
        flags,
        sorted(selected),
    )


# ---------------------------------------------------------------------------------------------
# Per-device implementation (plain Python integers)


def _check_reading(device: str, timestamp: object, wh: object, interval: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, np.integer)) or timestamp % interval:
        raise BaselineError(
            f"device {device}: timestamp {timestamp!r} is not aligned to the {interval} s grid"
        )
    if isinstance(wh, bool) or not isinstance(wh, (int, np.integer)) or not 0 <= wh <= MAX_WH:
        raise BaselineError(
            f"device {device}: reading at {timestamp} must be an integer Wh in 0..{MAX_WH}, got {wh!r}"
        )


def _trunc_div(numerator: int, divisor: int) -> int:
    """Signed quotient rounded toward zero (divisor > 0)."""
    return numerator // divisor if numerator >= 0 else -((-numerator) // divisor)


def _bound(actual: int, unadjusted: int, cap_bps: int) -> str:
    if (actual - unadjusted) * BPS > cap_bps * unadjusted:
        return "up"
    if (unadjusted - actual) * BPS > cap_bps * unadjusted:
        return "down"
    return "none"


def compute_device_baseline(
    spec: BaselineSpec, readings: Mapping[int, int], event_start: int, event_end: int, device: str = "device"
) -> DeviceBaseline:
    """Baseline of one device from `readings` {interval start (unix s): Wh}; see the module docstring."""
    plan = _plan(spec, event_start, event_end)
    interval = spec.interval_seconds
    for timestamp, wh in readings.items():
        _check_reading(device, timestamp, wh, interval)
    length = plan.length

    def times(offset: int, width: int, k: int) -> list[int]:
        first = event_start + offset * interval - k * SECONDS_PER_DAY
        return [first + i * interval for i in range(width)]

    def values(offset: int, width: int, k: int) -> list[int] | None:
        out = [readings.get(t) for t in times(offset, width, k)]
        return None if any(v is None for v in out) else out  # type: ignore[return-value]

    def usable(k: int) -> bool:
        return all(values(off, w, k) is not None for off, w in ((0, length),) + plan.segments)

    usable_days = [(k, day) for k, day in plan.candidates if usable(k)]
    day_of = dict(plan.candidates)

    def predict(target_k: int):
        """(prediction or None, adjustment dict, adj_missing, flags, selected ks) for the day target_k."""
        if spec.method == METER_BEFORE_AFTER:
            before = values(-spec.before_intervals, spec.before_intervals, target_k)
            if before is None:
                return None, _adjustment_dict(spec, False), False, [], []
            return (
                [sum(before) // spec.before_intervals] * length,
                _adjustment_dict(spec, False),
                False,
                [],
                [],
            )
        pool = [k for k, _ in usable_days if target_k < k <= target_k + spec.lookback_days][: plan.wanted]
        if len(pool) < plan.required:
            return None, _adjustment_dict(spec, False), False, [], []
        total = {k: sum(values(0, length, k)) for k in pool}  # type: ignore[arg-type]
        if spec.method == CAISO:
            chosen = list(pool)
        elif spec.method == HIGH_X_OF_Y:
            chosen = sorted(pool, key=lambda k: (-total[k], k))[: spec.x]
        else:
            lowest = min(pool, key=lambda k: (total[k], -k))
            rest = [k for k in pool if k != lowest]
            highest = max(rest, key=lambda k: (total[k], k))
            chosen = [k for k in rest if k != highest]

        def unadjusted(offset: int, width: int) -> list[int]:
            columns = [values(offset, width, k) for k in chosen]
            return [sum(col[i] for col in columns) // len(chosen) for i in range(width)]  # type: ignore[index]

        base = unadjusted(0, length)
        if not spec.adjusted:
            return base, _adjustment_dict(spec, False), False, [], chosen
        actual_w = values(plan.adj_offset, plan.adj_width, target_k)
        if actual_w is None:
            return base, _adjustment_dict(spec, False), True, [], chosen
        a_sum, u_sum = sum(actual_w), sum(unadjusted(plan.adj_offset, plan.adj_width))
        bound = _bound(a_sum, u_sum, spec.cap_bps)
        if spec.adjustment == "ratio":
            if u_sum == 0:
                num, den, bound = 1, 1, "none"
            elif bound == "up":
                num, den = BPS + spec.cap_bps, BPS
            elif bound == "down":
                num, den = BPS - spec.cap_bps, BPS
            else:
                num, den = a_sum, u_sum
            prediction = [b * num // den for b in base]
            adjustment = _adjustment_dict(
                spec, True, num=num, den=den, bound=bound, actual=a_sum, unadjusted=u_sum
            )
        else:
            uncapped = _trunc_div(a_sum - u_sum, plan.adj_width)
            limit = spec.cap_bps * u_sum // (BPS * plan.adj_width)
            d = limit if bound == "up" else -limit if bound == "down" else uncapped
            prediction = [max(0, b + d) for b in base]
            adjustment = _adjustment_dict(
                spec,
                True,
                additive=d,
                uncapped=uncapped,
                limit=limit,
                bound=bound,
                actual=a_sum,
                unadjusted=u_sum,
            )
        flags = []
        if bound == "up":
            flags.append(FLAG_CAPPED_UP)
        if (a_sum - u_sum) * BPS > spec.jump_flag_bps * u_sum:
            flags.append(FLAG_JUMP)
        return prediction, adjustment, False, flags, chosen

    baseline, adjustment, adj_missing, flags, chosen = predict(0)
    actual = [readings.get(t, -1) for t in times(0, length, 0)]

    pairs = []
    for k, day in [(k, d) for k, d in usable_days if k <= spec.lookback_days][: spec.quality_days]:
        prediction = predict(k)[0]
        if prediction is not None:
            pairs.append((day.isoformat(), prediction, values(0, length, k)))
    quality = q.assess(pairs, spec.max_rrmse_bps)  # type: ignore[arg-type]
    return _finish(
        device,
        plan,
        baseline,
        actual,
        adjustment,
        adj_missing,
        flags,
        [day_of[k].isoformat() for k in chosen],
        quality,
    )


# ---------------------------------------------------------------------------------------------
# Vectorised implementation (numpy int64)


def _check_loads(loads: np.ndarray) -> np.ndarray:
    loads = np.asarray(loads)
    if loads.ndim != 2:
        raise BaselineError(f"loads must be a 2-D array [devices, intervals], got shape {loads.shape}")
    if not np.issubdtype(loads.dtype, np.signedinteger):
        raise BaselineError(f"loads must have a signed integer dtype (int64 or int32), got {loads.dtype}")
    if loads.size:
        low, high = int(loads.min()), int(loads.max())
        if low < -1:
            raise BaselineError(f"loads must be >= 0 Wh or -1 (missing), found {low}")
        if high > MAX_WH:
            raise BaselineError(f"loads must be <= {MAX_WH} Wh per interval, found {high}")
    return loads


def _padded(block: np.ndarray, start: int, width: int) -> np.ndarray:
    """block[:, start:start + width] as int64, with -1 for columns outside the grid."""
    n, total = block.shape
    if 0 <= start and start + width <= total:
        return block[:, start : start + width].astype(np.int64, copy=False)
    out = np.full((n, width), -1, dtype=np.int64)
    lo, hi = max(start, 0), min(start + width, total)
    if lo < hi:
        out[:, lo - start : hi - start] = block[:, lo:hi]
    return out


def _gather(block: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Per-row windows block[i, starts[i]:starts[i] + width] (starts clipped into the grid)."""
    n, total = block.shape
    starts = np.clip(starts, 0, max(total - width, 0))
    cols = starts[:, None] + np.arange(width)
    return block[np.arange(n)[:, None], cols].astype(np.int64, copy=False)


class _Chunk:
    """Engine state for a block of devices (rows of the loads array)."""

    def __init__(self, plan: _Plan, block: np.ndarray, c0: int, ks: np.ndarray) -> None:
        self.plan, self.spec, self.block, self.c0, self.ks = plan, plan.spec, block, c0, ks
        self.n = block.shape[0]
        self.per_day = plan.per_day
        length = plan.length
        count = len(ks)
        self.usable = np.zeros((self.n, count), dtype=bool)
        self.totals = np.zeros((self.n, count), dtype=np.int64)
        for j, k in enumerate(ks.tolist()):
            base = c0 - k * self.per_day
            window = block[:, base : base + length]
            ok = window.min(axis=1) >= 0
            for off, width in plan.segments:
                ok &= block[:, base + off : base + off + width].min(axis=1) >= 0
            self.usable[:, j] = ok
            self.totals[:, j] = window.sum(axis=1, dtype=np.int64)

    def select(self, target_pos: np.ndarray, target_k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Selected history days [n, K] and whether there were enough, for per-device targets."""
        spec, plan, ks = self.spec, self.plan, self.ks
        count = len(ks)
        positions = np.arange(count)
        allowed = (
            self.usable
            & (positions[None, :] > target_pos[:, None])
            & (ks[None, :] <= target_k[:, None] + spec.lookback_days)
        )
        rank = np.cumsum(allowed, axis=1)
        cand = allowed & (rank <= plan.wanted)
        avail = cand.sum(axis=1)
        enough = avail >= plan.required
        if spec.method == CAISO or count == 0:
            return cand, enough
        order = np.argsort(~cand, axis=1, kind="stable")[:, : plan.wanted]
        slots = np.arange(order.shape[1])[None, :]
        valid = slots < avail[:, None]
        totals = np.take_along_axis(self.totals, order, axis=1)
        rows = np.arange(self.n)
        if spec.method == HIGH_X_OF_Y:
            key = np.where(valid, totals * _SLOT_SPACE + (_SLOT_SPACE - 1 - slots), -1)
            top = np.argsort(-key, axis=1, kind="stable")[:, : spec.x]
            keep_pos = np.take_along_axis(order, top, axis=1)
            keep = np.take_along_axis(valid, top, axis=1)
        else:
            low_key = np.where(
                valid, totals * _SLOT_SPACE + (_SLOT_SPACE - 1 - slots), np.iinfo(np.int64).max
            )
            low = low_key.argmin(axis=1)
            high_key = np.where(valid, totals * _SLOT_SPACE + slots, -1)
            high_key[rows, low] = -1
            high = high_key.argmax(axis=1)
            keep = valid.copy()
            keep[rows, low] = False
            keep[rows, high] = False
            keep_pos = order
        selected = np.zeros_like(cand)
        np.put_along_axis(selected, keep_pos, keep, axis=1)
        return selected, enough

    def accumulate(self, selected: np.ndarray, segments: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """Per-interval floor averages over the selected days for each (offset, width) segment."""
        out = [np.zeros((self.n, width), dtype=np.int64) for _, width in segments]
        for j, k in enumerate(self.ks.tolist()):
            mask = selected[:, j]
            if not mask.any():
                continue
            everyone = bool(mask.all())
            base = self.c0 - k * self.per_day
            for (off, width), acc in zip(segments, out):
                part = self.block[:, base + off : base + off + width]
                if everyone:
                    np.add(acc, part, out=acc)
                else:
                    np.add(acc, part, out=acc, where=mask[:, None])
        count = np.maximum(selected.sum(axis=1), 1).astype(np.int64)[:, None]
        return [acc // count for acc in out]

    def adjust(
        self, unadjusted: np.ndarray, unadjusted_w: np.ndarray, actual_w: np.ndarray
    ) -> dict[str, np.ndarray]:
        spec, width = self.spec, self.plan.adj_width
        a_sum = actual_w.sum(axis=1)
        u_sum = unadjusted_w.sum(axis=1)
        cap = spec.cap_bps
        up = (a_sum - u_sum) * BPS > cap * u_sum
        down = ~up & ((u_sum - a_sum) * BPS > cap * u_sum)
        out = {"a_sum": a_sum, "u_sum": u_sum}
        if spec.adjustment == "ratio":
            zero = u_sum == 0
            up &= ~zero
            down &= ~zero
            num = np.where(up, BPS + cap, np.where(down, BPS - cap, a_sum))
            den = np.where(up | down, BPS, u_sum)
            num = np.where(zero, 1, num)
            den = np.where(zero, 1, den)
            out["prediction"] = unadjusted * num[:, None] // den[:, None]
            out.update(num=num, den=den)
        else:
            diff = a_sum - u_sum
            uncapped = np.sign(diff) * (np.abs(diff) // width)
            limit = cap * u_sum // (BPS * width)
            d = np.where(up, limit, np.where(down, -limit, uncapped))
            out["prediction"] = np.maximum(unadjusted + d[:, None], 0)
            out.update(additive=d, uncapped=uncapped, limit=limit)
        out["bound"] = np.where(up, 1, np.where(down, 2, 0)).astype(np.int8)
        out["jump"] = (a_sum - u_sum) * BPS > spec.jump_flag_bps * u_sum
        return out

    def predict(
        self,
        target_pos: np.ndarray,
        target_k: np.ndarray,
        actual_w: np.ndarray | None,
        skip: np.ndarray | None = None,
        event: bool = False,
    ) -> dict[str, np.ndarray]:
        """Prediction for per-device target days (k = 0 is the event day, target_pos its candidate index)."""
        plan, spec = self.plan, self.spec
        length = plan.length
        if spec.method == METER_BEFORE_AFTER:
            width = spec.before_intervals
            if event:  # the event day's own intervals may lie partly outside the grid
                before = _padded(self.block, self.c0 - width, width)
            else:
                before = _gather(self.block, self.c0 - target_k * self.per_day - width, width)
            enough = before.min(axis=1) >= 0
            value = before.sum(axis=1) // width
            return {
                "prediction": np.repeat(value[:, None], length, axis=1),
                "enough": enough,
                "selected": np.zeros((self.n, len(self.ks)), dtype=bool),
            }
        selected, enough = self.select(target_pos, target_k)
        live = enough if skip is None else enough & ~skip
        if not live.any():
            return {
                "prediction": np.zeros((self.n, length), dtype=np.int64),
                "enough": enough,
                "selected": selected,
            }
        segments = [(0, length)] + ([(plan.adj_offset, plan.adj_width)] if spec.adjusted else [])
        averages = self.accumulate(selected & live[:, None], segments)
        out = {"prediction": averages[0], "unadjusted": averages[0], "enough": enough, "selected": selected}
        if spec.adjusted:
            assert actual_w is not None
            missing = actual_w.min(axis=1) < 0
            adj = self.adjust(averages[0], averages[1], np.where(missing[:, None], 0, actual_w))
            adj["prediction"] = np.where(missing[:, None], averages[0], adj["prediction"])
            out.update({f"adj_{name}": value for name, value in adj.items() if name != "prediction"})
            out["prediction"] = adj["prediction"]
            out["adj_missing"] = missing
        return out


@dataclass(eq=False)
class BaselineBatch:
    """Results of compute_baselines for D devices, as arrays plus per-device records on demand."""

    spec: BaselineSpec
    event_start: int
    event_end: int
    devices: list[str]
    baseline_wh: np.ndarray  # [D, L] int64 (zeros where no baseline could be computed)
    actual_wh: np.ndarray  # [D, L] int64, -1 = missing
    curtailed_wh: np.ndarray  # [D, L] int64
    eligible: np.ndarray  # [D] bool
    reason_bits: np.ndarray  # [D] uint8, bit i <=> REASONS[i]
    flag_bits: np.ndarray  # [D] uint8, bit i <=> FLAGS[i]
    _plan: _Plan
    _days: list[date]  # local date of each candidate column
    _selected: np.ndarray  # [D, K] bool
    _adjust: dict[str, np.ndarray]
    _quality: q.QualityAccumulator

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[DeviceBaseline]:
        return (self.device(i) for i in range(len(self)))

    def reasons(self, i: int) -> list[str]:
        bits = int(self.reason_bits[i])
        return [name for b, name in enumerate(REASONS) if bits >> b & 1]

    def flags(self, i: int) -> list[str]:
        bits = int(self.flag_bits[i])
        return [name for b, name in enumerate(FLAGS) if bits >> b & 1]

    def __post_init__(self) -> None:
        self._iso_by_k = {k: d.isoformat() for k, d in self._plan.candidates}
        self._iso_days = [d.isoformat() for d in self._days]

    def _quality_result(self, i: int) -> q.QualityResult:
        acc = self._quality
        days = tuple(self._iso_by_k[k] for k in acc.day_k[i].tolist() if k)
        return q.QualityResult(
            days,
            int(acc.points[i]),
            int(acc.sse[i]),
            int(acc.sum_actual[i]),
            int(acc.sum_error[i]),
            self.spec.max_rrmse_bps,
        )

    def device(self, i: int) -> DeviceBaseline:
        spec, adj = self.spec, self._adjust
        reasons = self.reasons(i)
        applied = (
            spec.adjusted
            and REASON_INSUFFICIENT_HISTORY not in reasons
            and REASON_MISSING_ADJUSTMENT not in reasons
        )
        if applied:
            kwargs = {
                "bound": _BOUNDS[int(adj["bound"][i])],
                "actual": int(adj["a_sum"][i]),
                "unadjusted": int(adj["u_sum"][i]),
            }
            if spec.adjustment == "ratio":
                kwargs.update(num=int(adj["num"][i]), den=int(adj["den"][i]))
            else:
                kwargs.update(
                    additive=int(adj["additive"][i]),
                    uncapped=int(adj["uncapped"][i]),
                    limit=int(adj["limit"][i]),
                )
            adjustment = _adjustment_dict(spec, True, **kwargs)  # type: ignore[arg-type]
        else:
            adjustment = _adjustment_dict(spec, False)
        quality = self._quality_result(i)
        baseline = None if REASON_INSUFFICIENT_HISTORY in reasons else self.baseline_wh[i].tolist()
        selected = [self._iso_days[j] for j in np.flatnonzero(self._selected[i]).tolist()]
        return _finish(
            self.devices[i],
            self._plan,
            baseline,
            self.actual_wh[i].tolist(),
            adjustment,
            REASON_MISSING_ADJUSTMENT in reasons,
            self.flags(i),
            selected,
            quality,
            self.curtailed_wh[i].tolist(),
        )

    def to_list(self) -> list[DeviceBaseline]:
        return list(self)


_ADJ_FIELDS: dict[str, type] = {
    "adj_a_sum": np.int64,
    "adj_u_sum": np.int64,
    "adj_num": np.int64,
    "adj_den": np.int64,
    "adj_additive": np.int64,
    "adj_uncapped": np.int64,
    "adj_limit": np.int64,
    "adj_bound": np.int8,
    "adj_jump": np.bool_,
    "adj_missing": np.bool_,
}


def _run_chunk(plan: _Plan, block: np.ndarray, c0: int, ks: np.ndarray) -> dict[str, np.ndarray]:
    spec = plan.spec
    chunk = _Chunk(plan, block, c0, ks)
    n, length = chunk.n, plan.length
    actual = _padded(block, c0, length)
    actual_w = _padded(block, c0 + plan.adj_offset, plan.adj_width) if spec.adjusted else None
    event = chunk.predict(np.full(n, -1), np.zeros(n, dtype=np.int64), actual_w, event=True)
    out: dict[str, np.ndarray] = {
        "actual": actual,
        "enough": event["enough"],
        "baseline": np.where(event["enough"][:, None], event["prediction"], 0),
        "selected": event["selected"] & event["enough"][:, None],
    }
    if spec.adjusted:  # every chunk reports the same fields, zeros where nothing was computed
        for name, dtype in _ADJ_FIELDS.items():
            out[name] = event[name] if name in event else np.zeros(n, dtype=dtype)

    # placebo days: the quality_days most recent usable like-days within the look-back
    accumulator = q.QualityAccumulator(n, spec.quality_days)
    in_lookback = chunk.usable & (ks <= spec.lookback_days)[None, :]
    rank = np.cumsum(in_lookback, axis=1)
    for slot in range(spec.quality_days):
        hit = in_lookback & (rank == slot + 1)
        has = hit.any(axis=1)
        if not has.any():
            break
        pos = np.where(has, hit.argmax(axis=1), len(ks))
        target_k = (
            np.where(has, ks[np.minimum(pos, len(ks) - 1)], 0) if len(ks) else np.zeros(n, dtype=np.int64)
        )
        starts = c0 - target_k * plan.per_day
        target_w = _gather(block, starts + plan.adj_offset, plan.adj_width) if spec.adjusted else None
        placebo = chunk.predict(pos, target_k, target_w, skip=~has)
        evaluated = has & placebo["enough"]
        if not evaluated.any():
            continue
        accumulator.add(slot, target_k, evaluated, placebo["prediction"], _gather(block, starts, length))
    out["quality"] = accumulator  # type: ignore[assignment]
    return out


def compute_baselines(
    spec: BaselineSpec,
    grid_start: int,
    loads: np.ndarray,
    event_start: int,
    event_end: int,
    devices: Sequence[str] | None = None,
    *,
    chunk_size: int = 8_192,
) -> BaselineBatch:
    """Baselines of many devices at once; see the module docstring for the array layout.

    Devices are processed in independent chunks of `chunk_size` rows (bounded memory); the result
    does not depend on the chunk size."""
    plan = _plan(spec, event_start, event_end)
    interval = spec.interval_seconds
    grid_start = _int("grid_start", grid_start)
    if grid_start % interval:
        raise BaselineError(f"grid_start {grid_start} is not aligned to the {interval} s grid")
    loads = _check_loads(loads)
    n_devices, n_cols = loads.shape
    if devices is None:
        names = [str(i) for i in range(n_devices)]
    else:
        names = [str(d) for d in devices]
        if len(names) != n_devices:
            raise BaselineError(f"{len(names)} device ids for {n_devices} rows of loads")
    _int("chunk_size", chunk_size, 1)
    c0 = (event_start - grid_start) // interval
    # Candidate like-days whose required intervals all lie inside the grid (any other day is
    # unusable for every device, so dropping it changes no selection).
    spans = [(0, plan.length)] + list(plan.segments)
    keep = []
    for k, day in plan.candidates:
        base = c0 - k * plan.per_day
        if all(0 <= base + off and base + off + width <= n_cols for off, width in spans):
            keep.append((k, day))
    ks = np.array([k for k, _ in keep], dtype=np.int64)
    days = [day for _, day in keep]

    parts = [_run_chunk(plan, loads[lo : lo + chunk_size], c0, ks) for lo in range(0, n_devices, chunk_size)]
    if not parts:
        parts = [_run_chunk(plan, loads[:0], c0, ks)]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([p[name] for p in parts])

    baseline, actual = cat("baseline"), cat("actual")
    enough = cat("enough")
    curtailed = np.where(actual >= 0, np.maximum(baseline - actual, 0), 0)
    accumulator = q.QualityAccumulator(n_devices, spec.quality_days)
    for name in ("sse", "sum_actual", "sum_error", "points", "day_k"):
        setattr(accumulator, name, np.concatenate([getattr(p["quality"], name) for p in parts]))
    evaluated_days = (accumulator.day_k > 0).sum(axis=1)
    passed = np.array(
        [
            days_ >= q.MIN_PLACEBO_DAYS and q.gate_passes(sse, n, s, spec.max_rrmse_bps)
            for days_, sse, n, s in zip(
                evaluated_days.tolist(),
                accumulator.sse.tolist(),
                accumulator.points.tolist(),
                accumulator.sum_actual.tolist(),
            )
        ],
        dtype=bool,
    )
    adjust = {name[4:]: cat(name) for name in parts[0] if name.startswith("adj_")}
    reason_bits = np.zeros(n_devices, dtype=np.uint8)
    flag_bits = np.zeros(n_devices, dtype=np.uint8)
    reason_bits |= (~enough).astype(np.uint8) << 0
    if spec.adjusted:
        adj_missing = adjust["missing"] & enough
        reason_bits |= adj_missing.astype(np.uint8) << 1
        applied = enough & ~adj_missing
        flag_bits |= (applied & (adjust["bound"] == 1)).astype(np.uint8) << 0
        flag_bits |= (applied & adjust["jump"]).astype(np.uint8) << 1
    reason_bits |= (actual < 0).any(axis=1).astype(np.uint8) << 2
    reason_bits |= (evaluated_days < q.MIN_PLACEBO_DAYS).astype(np.uint8) << 3
    reason_bits |= ((evaluated_days >= q.MIN_PLACEBO_DAYS) & ~passed).astype(np.uint8) << 4
    return BaselineBatch(
        spec,
        event_start,
        event_end,
        names,
        baseline,
        actual,
        curtailed,
        reason_bits == 0,
        reason_bits,
        flag_bits,
        plan,
        days,
        cat("selected"),
        adjust,
        accumulator,
    )


def build_grid(
    readings_by_device: Mapping[str, Mapping[int, int]],
    interval_seconds: int,
    event_start: int,
    event_end: int,
    history_days: int | None = None,
) -> tuple[int, list[str], np.ndarray]:
    """Lay readings {device: {interval start: Wh}} out as (grid_start, devices sorted, loads [D, T]).

    The grid runs from `history_days` (default 2 * 45 + 2, enough for the look-back of the placebo
    days and their adjustment windows) days before event_start up to event_end; readings outside
    it cannot affect the result and are left out. Devices are sorted by id.
    """
    interval = _int("interval_seconds", interval_seconds, 1)
    history = 2 * MAX_LOOKBACK_DAYS + 2 if history_days is None else _int("history_days", history_days, 0)
    grid_start = event_start - history * SECONDS_PER_DAY
    grid_start -= grid_start % interval
    grid_end = event_end + (-event_end) % interval
    earliest = min((t for readings in readings_by_device.values() for t in readings), default=grid_start)
    grid_start = max(grid_start, earliest - earliest % interval)
    n_cols = max((grid_end - grid_start) // interval, 0)
    devices = sorted(readings_by_device)
    loads = np.full((len(devices), n_cols), -1, dtype=np.int64)
    for row, device in enumerate(devices):
        for timestamp, wh in readings_by_device[device].items():
            _check_reading(device, timestamp, wh, interval)
            col = (timestamp - grid_start) // interval
            if 0 <= col < n_cols:
                loads[row, col] = wh
    return grid_start, devices, loads
