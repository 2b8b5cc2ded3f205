"""Baselines of many meters straight from the store, one block of meters at a time.

The rule: the settlement of a request with N committed meters never holds the [N, T] readings
array. `baselines_from_store` loads `block` meters' readings (`meter_store.readings_in_range`,
the same range the whole-request load reads) and hands them to
`oracle.baselines.compute_baselines_by_rows`, which computes each block as it arrives; peak memory
is one block of readings plus the per-meter outputs. The result is the one `build_grid` +
`compute_baselines` give on the whole request (tests/oracle/test_epoch_blocks.py settles the same
store with blocks of 1, 7 and all meters and compares the documents).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy.engine import Engine

from oracle import meter_store
from oracle.baselines import BaselineBatch, BaselineSpec, compute_baselines_by_rows
from protocol.units import SECONDS_PER_DAY


def store_grid(event_start: int, event_end: int, interval: int, history_days: int) -> tuple[int, int]:
    """(grid_start, columns) of the history grid of an event: `history_days` before its start, on
    the interval grid, up to its end rounded up (the range `build_grid` lays out)."""
    grid_start = event_start - history_days * SECONDS_PER_DAY
    grid_start -= grid_start % interval
    grid_end = event_end + (-event_end) % interval
    return grid_start, max(0, (grid_end - grid_start) // interval)


def baselines_from_store(engine: Engine, spec: BaselineSpec, meters: Sequence[str], event_start: int,
                         event_end: int, history_days: int, block: int) -> BaselineBatch:
    """Baselines of `meters` (in this order) for [event_start, event_end), their readings read from
    the store `block` meters at a time (module docstring)."""
    if block < 1:
        raise ValueError(f"block must be at least 1 meter, got {block}")
    interval = spec.interval_seconds
    grid_start, columns = store_grid(event_start, event_end, interval, history_days)

    def read_rows(lo: int, hi: int) -> np.ndarray:
        names = list(meters[lo:hi])
        part = meter_store.readings_in_range(engine, names, grid_start, grid_start + columns * interval, interval)
        rows = np.array([part.index[m] for m in meter_store.checksummed(names, part.index)], dtype=np.int64)
        offset = (part.grid_start - grid_start) // interval  # part's column c is the grid's column c + offset
        if offset == 0 and part.loads.shape[1] == columns:
            return part.loads if np.array_equal(rows, np.arange(len(names))) else part.loads[rows]
        out = np.full((len(names), columns), -1, dtype=part.loads.dtype)
        width = min(part.loads.shape[1], columns - offset)
        if width > 0:
            out[:, offset:offset + width] = part.loads[rows, :width]
        return out

    return compute_baselines_by_rows(spec, grid_start, columns, list(meters), read_rows, event_start, event_end,
                                     chunk_size=block)
