"""Laying readings out on the interval grid the vectorised engine reads.

The rule: `build_grid` is the only place readings {device: {timestamp: Wh}} become the [D, T]
loads array (-1 = missing); it keeps just the columns that can affect an event's result. Rows of
one `oracle.readings.MeterReadings` (what the store loads) are taken by slicing its array, with the
same result as reading them one by one (the tests check both ways agree).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from oracle.baselines.spec import MAX_LOOKBACK_DAYS, MAX_WH, BaselineError, check_int, check_reading
from oracle.readings import MeterReadings, MeterRow
from protocol.units import SECONDS_PER_DAY


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
    interval = check_int("interval_seconds", interval_seconds, 1)
    history = 2 * MAX_LOOKBACK_DAYS + 2 if history_days is None else check_int("history_days", history_days, 0)
    grid_start = event_start - history * SECONDS_PER_DAY
    grid_start -= grid_start % interval
    grid_end = event_end + (-event_end) % interval
    fast = _from_array(readings_by_device, interval, grid_start, grid_end)
    if fast is not None:
        return fast
    earliest = min((t for readings in readings_by_device.values() for t in readings), default=grid_start)
    grid_start = max(grid_start, earliest - earliest % interval)
    n_cols = max((grid_end - grid_start) // interval, 0)
    devices = sorted(readings_by_device)
    loads = np.full((len(devices), n_cols), -1, dtype=np.int64)
    for row, device in enumerate(devices):
        for timestamp, wh in readings_by_device[device].items():
            check_reading(device, timestamp, wh, interval)
            col = (timestamp - grid_start) // interval
            if 0 <= col < n_cols:
                loads[row, col] = wh
    return grid_start, devices, loads


def _parent_of(readings_by_device: Mapping[str, Mapping[int, int]], interval: int) -> MeterReadings | None:
    """The one MeterReadings every non-empty value is a row of (on `interval`'s grid), or None."""
    if isinstance(readings_by_device, MeterReadings):
        return readings_by_device if readings_by_device.interval_seconds == interval else None
    parent = None
    for readings in readings_by_device.values():
        if isinstance(readings, MeterRow):
            if parent is None:
                parent = readings.parent
            elif readings.parent is not parent:
                return None
        elif readings:  # a plain non-empty mapping: the general path
            return None
    if parent is None or parent.interval_seconds != interval:
        return None
    return parent


def _from_array(readings_by_device: Mapping[str, Mapping[int, int]], interval: int, grid_start: int,
                grid_end: int) -> tuple[int, list[str], np.ndarray] | None:
    """build_grid's answer by slicing a MeterReadings' array, or None when the input is not one."""
    parent = _parent_of(readings_by_device, interval)
    if parent is None:
        return None
    devices = sorted(readings_by_device)
    rows = np.array([readings.row if isinstance(readings, MeterRow) else parent.index.get(device, -1)
                     for device, readings in ((d, readings_by_device[d]) for d in devices)], dtype=np.int64)
    target = np.flatnonzero(rows >= 0)
    chosen = rows[target]
    earliest = _check_rows(parent, chosen, [d for d, r in zip(devices, rows) if r >= 0])
    if earliest is not None:
        grid_start = max(grid_start, earliest)
    n_cols = max((grid_end - grid_start) // interval, 0)
    loads = np.full((len(devices), n_cols), -1, dtype=parent.loads.dtype)
    offset = (grid_start - parent.grid_start) // interval  # parent column c is grid column c - offset
    lo, hi = max(0, offset), min(parent.loads.shape[1], offset + n_cols)
    if hi > lo and chosen.size:
        loads[target, lo - offset:hi - offset] = parent.loads[chosen, lo:hi]
    return grid_start, devices, loads


def _check_rows(parent: MeterReadings, rows: np.ndarray, names: list[str], block: int = 64) -> int | None:
    """The start of the earliest reading in `rows` of the parent (None without any), raising
    BaselineError for a reading above MAX_WH, as the general path's per-reading check does."""
    earliest = None
    for c0 in range(0, parent.loads.shape[1], block):
        part = parent.loads[rows, c0:c0 + block]
        if earliest is None:
            present = (part >= 0).any(axis=0)
            if present.any():
                earliest = parent.grid_start + (c0 + int(np.argmax(present))) * parent.interval_seconds
        if part.size and int(part.max()) > MAX_WH:
            row, col = np.argwhere(part > MAX_WH)[0]
            raise BaselineError(f"device {names[row]}: reading at {parent.grid_start + (c0 + col) * parent.interval_seconds}"
                                f" must be an integer Wh in 0..{MAX_WH}, got {int(part[row, col])}")
    return earliest
