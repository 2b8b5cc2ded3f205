"""The vectorised baseline engine: many devices at once, numpy int64 arrays throughout.

The rule: `compute_baselines` applies exactly the rules of `reference` (see `oracle.baselines`)
to a [D, T] loads array in independent chunks of rows, so memory stays bounded and the result
does not depend on the chunk size. Results stay arrays (`BaselineBatch`) for the settlement;
per-device records are built on demand by `records`.

Memory bound (D devices, T grid columns, L event intervals, W adjustment-window intervals, K
candidate days, Q = quality_days, c = chunk_size):

    peak = loads (read in place, never copied: 4 bytes per reading as int32, 8 as int64;
           with compute_baselines_by_rows only one block of chunk_size rows of it at a time)
         + the outputs, about D * (24 L + 8 Q + K + 94) bytes (baseline, actual and curtailed
           [D, L] int64, the quality sums, the adjustment, the selected days, reason/flag bits)
         + the temporaries of one chunk, O(c * (L + W + K)) int64.

Nothing but `loads` itself grows with D * T, and nothing but the outputs with D. The chunk's
results are copied into preallocated outputs as soon as it is done (`_Outputs`), and every
per-device decision is taken in the chunk, so the figures equal those of one chunk of D rows.
The oracle's grid holds 92 days (2 x 45 look-back + 2) of 96 intervals: 8,832 columns, 3.5 GB of
int32 for 100,000 devices. That is why `compute_baselines_by_rows` exists: the store hands over
one block of devices at a time and the whole array never exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date

import numpy as np

from oracle import quality as q
from oracle.baselines.records import DeviceBaseline, adjustment_record, finish_record
from oracle.baselines.spec import (
    BOUNDS,
    CAISO,
    HIGH_X_OF_Y,
    MAX_WH,
    METER_BEFORE_AFTER,
    BaselineError,
    BaselineSpec,
    Plan,
    check_int,
    plan_event,
)
from oracle.reasons import Flag, Reason
from protocol.units import BPS

_SLOT_SPACE = 64  # > any number of candidate slots; used in integer ranking keys


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


@dataclass(frozen=True)
class AdjustmentArrays:
    """The same-day adjustment of n devices, one [n] array per quantity (zeros where not computed:
    in a BaselineBatch, every device without enough history, so the arrays do not depend on which
    other devices shared its chunk).

    a_sum / u_sum: actual and unadjusted-baseline Wh over the adjustment window; num / den: the
    ratio factor (ratio only); additive / uncapped / limit: the additive Wh per interval, before
    the cap and the cap itself (additive only); bound: 0 none, 1 up, 2 down (see BOUNDS); jump:
    the pre-event load jump flag; missing: actual readings missing in the window.
    """

    a_sum: np.ndarray
    u_sum: np.ndarray
    num: np.ndarray
    den: np.ndarray
    additive: np.ndarray
    uncapped: np.ndarray
    limit: np.ndarray
    bound: np.ndarray  # int8
    jump: np.ndarray  # bool
    missing: np.ndarray  # bool

    @classmethod
    def zeros(cls, n: int) -> AdjustmentArrays:
        """An adjustment of n devices for which nothing was computed."""
        ints = {name: np.zeros(n, dtype=np.int64) for name in _INT_FIELDS}
        return cls(**ints, bound=np.zeros(n, dtype=np.int8), jump=np.zeros(n, dtype=bool),
                   missing=np.zeros(n, dtype=bool))

    @classmethod
    def concat(cls, parts: Sequence[AdjustmentArrays]) -> AdjustmentArrays:
        """The adjustments of consecutive blocks of devices, as one."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})


_INT_FIELDS = ("a_sum", "u_sum", "num", "den", "additive", "uncapped", "limit")


@dataclass(frozen=True)
class _Prediction:
    """A chunk's prediction for per-device target days."""

    prediction: np.ndarray  # [n, L] int64
    enough: np.ndarray  # [n] bool: enough usable days to predict
    selected: np.ndarray  # [n, K] bool: the history days used
    adjustment: AdjustmentArrays | None = None  # when the spec adjusts and a prediction was made


@dataclass(frozen=True)
class _ChunkResult:
    """What one block of devices contributes to a BaselineBatch."""

    actual: np.ndarray
    enough: np.ndarray
    baseline: np.ndarray
    selected: np.ndarray
    adjustment: AdjustmentArrays | None
    quality: q.QualityAccumulator


class _Chunk:
    """Engine state for a block of devices (rows of the loads array)."""

    def __init__(self, plan: Plan, block: np.ndarray, c0: int, ks: np.ndarray) -> None:
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
        self, unadjusted: np.ndarray, unadjusted_w: np.ndarray, actual_w: np.ndarray, missing: np.ndarray
    ) -> tuple[np.ndarray, AdjustmentArrays]:
        """The adjusted prediction and the adjustment of every device (see the module docstring)."""
        spec, width = self.spec, self.plan.adj_width
        a_sum = actual_w.sum(axis=1)
        u_sum = unadjusted_w.sum(axis=1)
        cap = spec.cap_bps
        up = (a_sum - u_sum) * BPS > cap * u_sum
        down = ~up & ((u_sum - a_sum) * BPS > cap * u_sum)
        zeros = np.zeros(self.n, dtype=np.int64)
        num = den = additive = uncapped = limit = zeros
        if spec.adjustment == "ratio":
            zero = u_sum == 0
            up &= ~zero
            down &= ~zero
            num = np.where(up, BPS + cap, np.where(down, BPS - cap, a_sum))
            den = np.where(up | down, BPS, u_sum)
            num = np.where(zero, 1, num)
            den = np.where(zero, 1, den)
            prediction = unadjusted * num[:, None] // den[:, None]
        else:
            diff = a_sum - u_sum
            uncapped = np.sign(diff) * (np.abs(diff) // width)
            limit = cap * u_sum // (BPS * width)
            additive = np.where(up, limit, np.where(down, -limit, uncapped))
            prediction = np.maximum(unadjusted + additive[:, None], 0)
        return prediction, AdjustmentArrays(
            a_sum=a_sum,
            u_sum=u_sum,
            num=num,
            den=den,
            additive=additive,
            uncapped=uncapped,
            limit=limit,
            bound=np.where(up, 1, np.where(down, 2, 0)).astype(np.int8),
            jump=(a_sum - u_sum) * BPS > spec.jump_flag_bps * u_sum,
            missing=missing,
        )

    def predict(
        self,
        target_pos: np.ndarray,
        target_k: np.ndarray,
        actual_w: np.ndarray | None,
        skip: np.ndarray | None = None,
        event: bool = False,
    ) -> _Prediction:
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
            return _Prediction(
                np.repeat(value[:, None], length, axis=1), enough, np.zeros((self.n, len(self.ks)), dtype=bool)
            )
        selected, enough = self.select(target_pos, target_k)
        live = enough if skip is None else enough & ~skip
        if not live.any():
            return _Prediction(np.zeros((self.n, length), dtype=np.int64), enough, selected)
        segments = [(0, length)] + ([(plan.adj_offset, plan.adj_width)] if spec.adjusted else [])
        averages = self.accumulate(selected & live[:, None], segments)
        if not spec.adjusted:
            return _Prediction(averages[0], enough, selected)
        assert actual_w is not None
        missing = actual_w.min(axis=1) < 0
        adjusted, adjustment = self.adjust(
            averages[0], averages[1], np.where(missing[:, None], 0, actual_w), missing
        )
        return _Prediction(np.where(missing[:, None], averages[0], adjusted), enough, selected, adjustment)


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
    reason_bits: np.ndarray  # [D] uint8 of oracle.reasons.Reason members
    flag_bits: np.ndarray  # [D] uint8 of oracle.reasons.Flag members
    _plan: Plan
    _days: list[date]  # local date of each candidate column
    _selected: np.ndarray  # [D, K] bool
    _adjust: AdjustmentArrays | None  # None when the spec has no same-day adjustment
    _quality: q.QualityAccumulator

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[DeviceBaseline]:
        return (self.device(i) for i in range(len(self)))

    def reasons(self, i: int) -> list[str]:
        """Reason codes of device i, in `Reason` order."""
        return Reason.codes(int(self.reason_bits[i]))

    def flags(self, i: int) -> list[str]:
        """Flag codes of device i, in `Flag` order."""
        return Flag.codes(int(self.flag_bits[i]))

    def __post_init__(self) -> None:
        self._iso_by_k = {k: d.isoformat() for k, d in self._plan.candidates}
        self._iso_days = [d.isoformat() for d in self._days]

    def quality(self, i: int) -> q.QualityResult:
        """Row i's placebo-day quality result (the gate the engine applied)."""
        return self._quality_result(i)

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
        """The record of device i (built on demand from the arrays)."""
        spec, adj = self.spec, self._adjust
        bits = Reason(int(self.reason_bits[i]))
        applied = spec.adjusted and not bits & (Reason.INSUFFICIENT_HISTORY | Reason.MISSING_ADJUSTMENT_READINGS)
        if applied:
            assert adj is not None
            kwargs = {
                "bound": BOUNDS[int(adj.bound[i])],
                "actual": int(adj.a_sum[i]),
                "unadjusted": int(adj.u_sum[i]),
            }
            if spec.adjustment == "ratio":
                kwargs.update(num=int(adj.num[i]), den=int(adj.den[i]))
            else:
                kwargs.update(
                    additive=int(adj.additive[i]),
                    uncapped=int(adj.uncapped[i]),
                    limit=int(adj.limit[i]),
                )
            adjustment = adjustment_record(spec, True, **kwargs)  # type: ignore[arg-type]
        else:
            adjustment = adjustment_record(spec, False)
        quality = self._quality_result(i)
        baseline = None if bits & Reason.INSUFFICIENT_HISTORY else self.baseline_wh[i].tolist()
        selected = [self._iso_days[j] for j in np.flatnonzero(self._selected[i]).tolist()]
        return finish_record(
            self.devices[i],
            self._plan,
            baseline,
            self.actual_wh[i].tolist(),
            adjustment,
            bool(bits & Reason.MISSING_ADJUSTMENT_READINGS),
            self.flags(i),
            selected,
            quality,
            self.curtailed_wh[i].tolist(),
        )

    def to_list(self) -> list[DeviceBaseline]:
        """Every device's record, in row order."""
        return list(self)


def _run_chunk(plan: Plan, block: np.ndarray, c0: int, ks: np.ndarray) -> _ChunkResult:
    """The event-day results and the placebo-day quality sums of one block of devices."""
    spec = plan.spec
    chunk = _Chunk(plan, block, c0, ks)
    n, length = chunk.n, plan.length
    actual = _padded(block, c0, length)
    actual_w = _padded(block, c0 + plan.adj_offset, plan.adj_width) if spec.adjusted else None
    event = chunk.predict(np.full(n, -1), np.zeros(n, dtype=np.int64), actual_w, event=True)
    adjustment = None
    if spec.adjusted:  # every chunk reports an adjustment, zeros where nothing was computed
        adjustment = event.adjustment if event.adjustment is not None else AdjustmentArrays.zeros(n)

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
        evaluated = has & placebo.enough
        if not evaluated.any():
            continue
        accumulator.add(slot, target_k, evaluated, placebo.prediction, _gather(block, starts, length))
    return _ChunkResult(
        actual=actual,
        enough=event.enough,
        baseline=np.where(event.enough[:, None], event.prediction, 0),
        selected=event.selected & event.enough[:, None],
        adjustment=adjustment,
        quality=accumulator,
    )


class _Outputs:
    """The arrays of a BaselineBatch, allocated once for D devices and filled one chunk at a time.

    Each chunk's results are copied into their rows and the chunk's arrays dropped, so the engine
    never holds more than the outputs plus one chunk's temporaries. Every per-device decision
    (curtailment, quality gate, reason and flag bits) depends only on that device's row, so it is
    taken per chunk and does not depend on the chunk size.
    """

    def __init__(self, spec: BaselineSpec, n: int, length: int, count: int) -> None:
        self.spec = spec
        self.baseline = np.zeros((n, length), dtype=np.int64)
        self.actual = np.zeros((n, length), dtype=np.int64)
        self.curtailed = np.zeros((n, length), dtype=np.int64)
        self.selected = np.zeros((n, count), dtype=bool)
        self.reason_bits = np.zeros(n, dtype=np.uint8)
        self.flag_bits = np.zeros(n, dtype=np.uint8)
        self.quality = q.QualityAccumulator(n, spec.quality_days)
        self.adjust = AdjustmentArrays.zeros(n) if spec.adjusted else None

    def put(self, lo: int, part: _ChunkResult) -> None:
        """Copy one chunk's results into rows lo .. lo + its size, and decide its reasons and flags."""
        spec = self.spec
        hi = lo + part.actual.shape[0]
        rows = slice(lo, hi)
        self.baseline[rows] = part.baseline
        self.actual[rows] = part.actual
        self.curtailed[rows] = np.where(part.actual >= 0, np.maximum(part.baseline - part.actual, 0), 0)
        self.selected[rows] = part.selected
        for name in _QUALITY_FIELDS:
            getattr(self.quality, name)[rows] = getattr(part.quality, name)
        acc = part.quality
        evaluated_days = (acc.day_k > 0).sum(axis=1)
        passed = np.array(
            [
                days_ >= q.MIN_PLACEBO_DAYS and q.gate_passes(sse, n, s, spec.max_rrmse_bps)
                for days_, sse, n, s in zip(
                    evaluated_days.tolist(), acc.sse.tolist(), acc.points.tolist(), acc.sum_actual.tolist()
                )
            ],
            dtype=bool,
        )
        enough = part.enough
        reason_bits = np.zeros(hi - lo, dtype=np.uint8)
        flag_bits = np.zeros(hi - lo, dtype=np.uint8)

        def mark(bits: np.ndarray, member: int, where: np.ndarray) -> None:
            bits |= np.where(where, np.uint8(member), np.uint8(0))

        mark(reason_bits, Reason.INSUFFICIENT_HISTORY, ~enough)
        if self.adjust is not None:
            adjust = part.adjustment
            assert adjust is not None
            for f in fields(AdjustmentArrays):  # zeros where no baseline was computed, whatever the chunk
                getattr(self.adjust, f.name)[rows] = np.where(enough, getattr(adjust, f.name), 0)
            adj_missing = adjust.missing & enough
            mark(reason_bits, Reason.MISSING_ADJUSTMENT_READINGS, adj_missing)
            applied = enough & ~adj_missing
            mark(flag_bits, Flag.ADJUSTMENT_CAPPED_UP, applied & (adjust.bound == 1))
            mark(flag_bits, Flag.PRE_EVENT_LOAD_JUMP, applied & adjust.jump)
        mark(reason_bits, Reason.MISSING_EVENT_READINGS, (part.actual < 0).any(axis=1))
        mark(reason_bits, Reason.INSUFFICIENT_HISTORY_FOR_QUALITY, evaluated_days < q.MIN_PLACEBO_DAYS)
        mark(reason_bits, Reason.BASELINE_QUALITY, (evaluated_days >= q.MIN_PLACEBO_DAYS) & ~passed)
        self.reason_bits[rows] = reason_bits
        self.flag_bits[rows] = flag_bits


_QUALITY_FIELDS = ("sse", "sum_actual", "sum_error", "points", "day_k")


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
    plan = plan_event(spec, event_start, event_end)
    grid_start = _check_grid_start(spec, grid_start)
    loads = _check_loads(loads)
    n_devices, n_cols = loads.shape
    names = _names(devices, n_devices)
    check_int("chunk_size", chunk_size, 1)
    return _compute(plan, grid_start, n_cols, names, lambda lo, hi: loads[lo:hi], chunk_size)


def compute_baselines_by_rows(
    spec: BaselineSpec,
    grid_start: int,
    columns: int,
    devices: Sequence[str],
    read_rows: Callable[[int, int], np.ndarray],
    event_start: int,
    event_end: int,
    *,
    chunk_size: int = 8_192,
) -> BaselineBatch:
    """`compute_baselines` over a loads array that is never whole in memory.

    `read_rows(lo, hi)` returns the rows of devices[lo:hi], an integer array [hi - lo, columns]
    laid out as `compute_baselines` wants it (same grid_start); it is called once per chunk, in
    order, so a store can load one block of devices at a time. Each block is validated like
    `loads` (a BaselineError names the rows). Peak memory: one block of `chunk_size` rows, the
    outputs and one chunk's temporaries (module docstring). The result is the one
    `compute_baselines` gives on the whole array, whatever the chunk size."""
    plan = plan_event(spec, event_start, event_end)
    grid_start = _check_grid_start(spec, grid_start)
    columns = check_int("columns", columns, 0)
    names = _names(devices, len(devices))
    check_int("chunk_size", chunk_size, 1)

    def checked(lo: int, hi: int) -> np.ndarray:
        block = read_rows(lo, hi)
        where = f"rows {lo}..{hi - 1}"
        if not isinstance(block, np.ndarray):
            raise BaselineError(f"{where}: read_rows must return a numpy array, got {type(block).__name__}")
        if block.shape != (hi - lo, columns):
            raise BaselineError(f"{where}: expected shape {(hi - lo, columns)}, got {block.shape}")
        try:
            return _check_loads(block)
        except BaselineError as exc:
            raise BaselineError(f"{where}: {exc}") from None

    return _compute(plan, grid_start, columns, names, checked, chunk_size)


def _check_grid_start(spec: BaselineSpec, grid_start: int) -> int:
    grid_start = check_int("grid_start", grid_start)
    if grid_start % spec.interval_seconds:
        raise BaselineError(f"grid_start {grid_start} is not aligned to the {spec.interval_seconds} s grid")
    return grid_start


def _names(devices: Sequence[str] | None, n_devices: int) -> list[str]:
    if devices is None:
        return [str(i) for i in range(n_devices)]
    names = [str(d) for d in devices]
    if len(names) != n_devices:
        raise BaselineError(f"{len(names)} device ids for {n_devices} rows of loads")
    return names


def _compute(
    plan: Plan,
    grid_start: int,
    n_cols: int,
    names: list[str],
    rows: Callable[[int, int], np.ndarray],
    chunk_size: int,
) -> BaselineBatch:
    """The engine over len(names) rows read `chunk_size` at a time by `rows(lo, hi)`."""
    spec = plan.spec
    n_devices = len(names)
    c0 = (plan.event_start - grid_start) // spec.interval_seconds
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

    out = _Outputs(spec, n_devices, plan.length, len(ks))
    for lo in range(0, n_devices, chunk_size):
        out.put(lo, _run_chunk(plan, rows(lo, min(lo + chunk_size, n_devices)), c0, ks))
    return BaselineBatch(
        spec,
        plan.event_start,
        plan.event_end,
        names,
        out.baseline,
        out.actual,
        out.curtailed,
        out.reason_bits == 0,
        out.reason_bits,
        out.flag_bits,
        plan,
        days,
        out.selected,
        out.adjust,
        out.quality,
    )
