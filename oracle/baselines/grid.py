"""Laying readings out on the interval grid the vectorised engine reads.

The rule: `build_grid` is the only place readings {device: {timestamp: Wh}} become the [D, T]
loads array (-1 = missing); it keeps just the columns that can affect an event's result.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from oracle.baselines.spec import MAX_LOOKBACK_DAYS, check_int, check_reading
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
