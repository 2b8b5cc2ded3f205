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

    compute_baselines_by_rows(spec, grid_start, columns, devices, read_rows, event_start, event_end,
                              *, chunk_size=8_192) -> BaselineBatch
        The same engine and result, without the whole loads array in memory: `read_rows(lo, hi)`
        gives the [hi - lo, columns] rows of devices[lo:hi] (one call per chunk, in order), so a
        store can hand over one block of devices at a time. Memory: one block + the outputs + one
        chunk's temporaries (the bound is stated in `vectorised`).

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
REASONS order, i.e. oracle.reasons.Reason order), flags, selected_days (ISO dates, oldest
first). When no baseline can be computed
(insufficient_history) baseline_wh is all zeros.

Bounds that keep int64 exact: readings are 0..MAX_WH (10^7 Wh per interval), interval_seconds
>= 60, quality_days <= 10.

Modules
-------
spec (BaselineSpec, names, validation, the event plan), reference (the plain-Python engine:
compute_device_baseline), vectorised (the numpy engine: compute_baselines, BaselineBatch,
AdjustmentArrays), grid (build_grid), records (DeviceBaseline and how a record is assembled).
Reason and flag codes and their bits come from `oracle.reasons`. This package re-exports the
public names, so `from oracle.baselines import X` is the way to use it.
"""

from __future__ import annotations

from oracle.baselines.grid import build_grid
from oracle.baselines.records import DeviceBaseline
from oracle.baselines.reference import compute_device_baseline
from oracle.baselines.spec import (
    ADJUSTMENTS,
    BOUNDS,
    CAISO,
    ERCOT,
    FLAG_CAPPED_UP,
    FLAG_JUMP,
    FLAGS,
    HIGH_X_OF_Y,
    MAX_LOOKBACK_DAYS,
    MAX_QUALITY_DAYS,
    MAX_WH,
    METER_BEFORE_AFTER,
    METHODS,
    REASON_INSUFFICIENT_HISTORY,
    REASON_MISSING_ADJUSTMENT,
    REASON_MISSING_EVENT,
    REASONS,
    BaselineError,
    BaselineSpec,
    local_date,
    validate_window,
)
from oracle.baselines.vectorised import (
    AdjustmentArrays,
    BaselineBatch,
    compute_baselines,
    compute_baselines_by_rows,
)

__all__ = [
    "ADJUSTMENTS",
    "BOUNDS",
    "CAISO",
    "ERCOT",
    "FLAG_CAPPED_UP",
    "FLAG_JUMP",
    "FLAGS",
    "HIGH_X_OF_Y",
    "MAX_LOOKBACK_DAYS",
    "MAX_QUALITY_DAYS",
    "MAX_WH",
    "METER_BEFORE_AFTER",
    "METHODS",
    "REASON_INSUFFICIENT_HISTORY",
    "REASON_MISSING_ADJUSTMENT",
    "REASON_MISSING_EVENT",
    "REASONS",
    "BaselineError",
    "BaselineSpec",
    "local_date",
    "validate_window",
    "AdjustmentArrays",
    "BaselineBatch",
    "DeviceBaseline",
    "build_grid",
    "compute_baselines",
    "compute_baselines_by_rows",
    "compute_device_baseline",
]
