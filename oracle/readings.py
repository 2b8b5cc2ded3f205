"""Meter readings as one numpy array: what the store loads and the settlement reads.

The rule: a request's readings travel from the store to the baseline grid as one [meters, T]
integer array (-1 = no reading), column j being the interval that starts at
`grid_start + j * interval_seconds`, never as one Python object per reading. `MeterReadings` is
also a read-only `Mapping[str, Mapping[int, int]]` ({meter: {interval start: Wh}}), so code written
for the dict form reads it unchanged (a row's lookups are arithmetic, not dict builds), and
`oracle.baselines.build_grid` takes rows of it by slicing the array.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np


class MeterReadings(Mapping[str, "MeterRow"]):
    """Readings of `meters` (sorted addresses) on one interval grid; see the module docstring."""

    def __init__(self, meters: Sequence[str], grid_start: int, interval_seconds: int, loads: np.ndarray):
        if loads.ndim != 2 or loads.shape[0] != len(meters):
            raise ValueError(f"loads has shape {loads.shape} for {len(meters)} meters")
        if interval_seconds <= 0 or grid_start % interval_seconds:
            raise ValueError(f"grid_start {grid_start} is not on the {interval_seconds} s grid")
        self.meters = list(meters)
        self.index = {meter: row for row, meter in enumerate(self.meters)}
        self.grid_start = int(grid_start)
        self.interval_seconds = int(interval_seconds)
        self.loads = loads

    @classmethod
    def from_dicts(cls, readings: Mapping[str, Mapping[int, int]], interval_seconds: int) -> MeterReadings:
        """The array form of {meter: {interval start: Wh}} (for tests and small inputs)."""
        meters = sorted(readings)
        stamps = [t for per_meter in readings.values() for t in per_meter]
        start = min(stamps, default=0)
        start -= start % interval_seconds
        end = max(stamps, default=start - interval_seconds) + interval_seconds
        loads = np.full((len(meters), max(0, (end - start) // interval_seconds)), -1, dtype=np.int64)
        for row, meter in enumerate(meters):
            for t, wh in readings[meter].items():
                if t % interval_seconds:
                    raise ValueError(f"{meter}: {t} is not on the {interval_seconds} s grid")
                loads[row, (t - start) // interval_seconds] = wh
        return cls(meters, start, interval_seconds, loads)

    @property
    def grid_end(self) -> int:
        """The end of the last column (exclusive)."""
        return self.grid_start + self.loads.shape[1] * self.interval_seconds

    def __getitem__(self, meter: str) -> MeterRow:
        return MeterRow(self, self.index[meter])

    def __iter__(self) -> Iterator[str]:
        return iter(self.meters)

    def __len__(self) -> int:
        return len(self.meters)

    def __contains__(self, meter: object) -> bool:
        return meter in self.index

    def count(self) -> int:
        """How many readings are present in all."""
        return int(np.count_nonzero(self.loads >= 0))


class MeterRow(Mapping[int, int]):
    """One meter's readings {interval start: Wh}, a view of its row of a MeterReadings."""

    def __init__(self, parent: MeterReadings, row: int):
        self.parent = parent
        self.row = row

    def _column(self, timestamp: int) -> int | None:
        parent = self.parent
        if not isinstance(timestamp, (int, np.integer)) or isinstance(timestamp, bool):
            return None
        offset = int(timestamp) - parent.grid_start
        if offset < 0 or offset % parent.interval_seconds:
            return None
        column = offset // parent.interval_seconds
        return column if column < parent.loads.shape[1] else None

    def __getitem__(self, timestamp: int) -> int:
        column = self._column(timestamp)
        value = -1 if column is None else int(self.parent.loads[self.row, column])
        if value < 0:
            raise KeyError(timestamp)
        return value

    def __contains__(self, timestamp: object) -> bool:
        column = self._column(timestamp)  # type: ignore[arg-type]
        return column is not None and self.parent.loads[self.row, column] >= 0

    def columns(self) -> np.ndarray:
        """The indices of the columns with a reading."""
        return np.flatnonzero(self.parent.loads[self.row] >= 0)

    def __iter__(self) -> Iterator[int]:
        parent = self.parent
        return (parent.grid_start + int(c) * parent.interval_seconds for c in self.columns())

    def __len__(self) -> int:
        return int(np.count_nonzero(self.parent.loads[self.row] >= 0))
