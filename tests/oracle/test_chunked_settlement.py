"""Chunked == unchunked: the baseline engine's results, records and the settlement built on them do
not depend on the chunk size (including chunks that do not divide the device count), on the
loads dtype (int32 as the store delivers it, int64), or on the rows being read block by block
(compute_baselines_by_rows); and the engine's memory stays within the bound stated in
oracle.baselines.vectorised (no copy of the loads array, outputs + one chunk).

Hourly intervals; the grid holds `grid_days` days before the event day and the event day itself.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle.baselines import (
    ADJUSTMENTS,
    METHODS,
    BaselineBatch,
    BaselineError,
    BaselineSpec,
    compute_baselines,
    compute_baselines_by_rows,
)
from oracle.settlement import DeviceInput, EpochSettlement, RequestInput, SettlementParams, settle_epoch

H = 3_600
EVENT_DAY = date(2026, 7, 1)  # a Wednesday
PARAMS = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20, interval_seconds=H)


def day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


@st.composite
def specs(draw) -> BaselineSpec:
    method = draw(st.sampled_from(METHODS))
    adjustment = "none" if method == "meter-before-after" else draw(st.sampled_from(ADJUSTMENTS))
    kwargs: dict = {
        "method": method,
        "interval_seconds": H,
        "adjustment": adjustment,
        "cap_bps": draw(st.sampled_from([0, 1_000, 2_000, 10_000])),
        "quality_days": draw(st.integers(1, 5)),
        "max_rrmse_bps": draw(st.sampled_from([500, 2_000, 5_000])),
    }
    if method == "high-x-of-y":
        y = draw(st.integers(1, 6))
        kwargs.update(x=draw(st.integers(1, y)), y=y)
    if method != "meter-before-after" and draw(st.booleans()):
        floor = {"caiso-10in10": 1, "high-x-of-y": kwargs.get("x", 4), "ercot-middle-8of10": 3}[method]
        kwargs["min_days"] = draw(st.integers(floor, 10))
    return BaselineSpec(**kwargs)


def synthetic(devices: int, grid_days: int, seed: int, missing: float) -> np.ndarray:
    """[devices, (grid_days + 1) * 24] int64: a daily shape times a level, plus noise and gaps."""
    rng = np.random.default_rng(seed)
    cols = (grid_days + 1) * 24
    shape = rng.integers(0, 400, size=24)
    level = rng.integers(1, 5, size=(devices, 1))
    loads = np.tile(shape, grid_days + 1)[None, :] * level + rng.integers(0, 120, size=(devices, cols))
    loads[rng.random((devices, cols)) < missing] = -1
    return loads.astype(np.int64)


def request_of(batch: BaselineBatch, watts: list[int], owners: list[str]) -> RequestInput:
    """The settlement's input from a batch, as oracle.epoch builds it (ineligible: no curtailment)."""
    length = batch.curtailed_wh.shape[1]
    inputs = tuple(
        DeviceInput(
            batch.devices[i],
            owners[i],
            watts[i],
            tuple(int(v) for v in batch.curtailed_wh[i]) if batch.eligible[i] else (0,) * length,
            bool(batch.eligible[i]),
            tuple(batch.reasons(i)),
            tuple(batch.flags(i)),
        )
        for i in range(len(batch))
    )
    return RequestInput(7, "0x" + "bb" * 20, 300_000, 10**12, length, inputs)


def settle(batch: BaselineBatch, watts: list[int], owners: list[str]) -> EpochSettlement:
    return settle_epoch(1, bytes(32), {}, [request_of(batch, watts, owners)], PARAMS, emission_budget=10**24)


def assert_same_batch(a: BaselineBatch, b: BaselineBatch) -> None:
    """Every array (values and dtype) and every per-device record are identical."""
    arrays = ("baseline_wh", "actual_wh", "curtailed_wh", "eligible", "reason_bits", "flag_bits", "_selected")
    for name in arrays:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name
    for name in ("sse", "sum_actual", "sum_error", "points", "day_k"):
        assert np.array_equal(getattr(a._quality, name), getattr(b._quality, name)), name
    assert (a._adjust is None) == (b._adjust is None)
    if a._adjust is not None:
        for f in fields(a._adjust):
            x, y = getattr(a._adjust, f.name), getattr(b._adjust, f.name)
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]


def assert_same_settlement(a: EpochSettlement, b: EpochSettlement) -> None:
    assert a.report == b.report
    assert a.report.as_tuple() == b.report.as_tuple()
    assert a.ledger == b.ledger
    assert a.requests == b.requests


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs(),
    devices=st.integers(1, 40),
    grid_days=st.integers(8, 40),
    hour=st.integers(0, 22),
    hours=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    missing=st.sampled_from([0.0, 0.02, 0.2]),
    data=st.data(),
)
def test_chunked_equals_unchunked(spec, devices, grid_days, hour, hours, seed, missing, data):
    start = day_start(EVENT_DAY) + hour * H
    end = min(start + hours * H, day_start(EVENT_DAY) + 24 * H)
    grid_start = day_start(EVENT_DAY) - grid_days * 86_400
    loads = synthetic(devices, grid_days, seed, missing)
    names = [f"0x{i + 1:040x}" for i in range(devices)]
    rng = np.random.default_rng(seed)
    watts = rng.integers(1, 2_000, size=devices).tolist()
    owners = [f"0x{i // 3 + 1 + 2**100:040x}" for i in range(devices)]
    whole = compute_baselines(spec, grid_start, loads, start, end, names, chunk_size=devices)
    reference = settle(whole, watts, owners)
    chunks = {1, max(devices - 1, 1), devices + 5, data.draw(st.integers(1, devices + 3), label="chunk")}
    for chunk in sorted(chunks):
        for dtype in (np.int64, np.int32):
            rows = loads.astype(dtype)
            part = compute_baselines(spec, grid_start, rows, start, end, names, chunk_size=chunk)
            assert_same_batch(whole, part)
            assert_same_settlement(reference, settle(part, watts, owners))


def test_chunks_that_do_not_divide_the_device_count():
    """A fixed case: 101 devices with gaps, chunks 1, 7, 33, 100 (101 % each != 0), 101 and 4,096."""
    spec = BaselineSpec("high-x-of-y", interval_seconds=H, adjustment="ratio", x=4, y=5, quality_days=2,
                        max_rrmse_bps=5_000)
    grid_days = 14
    start = day_start(EVENT_DAY) + 17 * H
    loads = synthetic(101, grid_days, 5, 0.01)
    loads[:, (grid_days * 24 + 17):(grid_days * 24 + 19)] //= 2  # every device curtails in the event
    grid_start = day_start(EVENT_DAY) - grid_days * 86_400
    names = [f"0x{i + 1:040x}" for i in range(101)]
    watts, owners = [50] * 101, [f"0x{i // 3 + 1 + 2**100:040x}" for i in range(101)]
    whole = compute_baselines(spec, grid_start, loads, start, start + 2 * H, names, chunk_size=101)
    reference = settle(whole, watts, owners)
    assert reference.report.rewards_root != bytes(32)  # somebody is paid: the comparison is not vacuous
    assert whole.eligible.any() and not whole.eligible.all()
    for chunk in (1, 7, 33, 100, 4_096):
        part = compute_baselines(spec, grid_start, loads.astype(np.int32), start, start + 2 * H, names,
                                 chunk_size=chunk)
        assert_same_batch(whole, part)
        assert_same_settlement(reference, settle(part, watts, owners))


def test_memory_is_outputs_plus_one_chunk_not_a_copy_of_the_loads():
    """The engine's traced peak stays within the stated bound: its outputs, about
    D * (24 L + 8 Q + K + 94) bytes, plus O(chunk * (L + W + K)) temporaries; the int32 loads
    array is read in place (an int64 copy alone would be twice its size)."""
    devices, grid_days, chunk = 6_000, 45, 500
    spec = BaselineSpec("high-x-of-y", interval_seconds=H, adjustment="ratio", x=4, y=5, quality_days=5)
    loads = synthetic(devices, grid_days, 3, 0.0).astype(np.int32)
    start = day_start(EVENT_DAY) + 17 * H
    grid_start = day_start(EVENT_DAY) - grid_days * 86_400
    tracemalloc.start()
    try:
        batch = compute_baselines(spec, grid_start, loads, start, start + 4 * H, chunk_size=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    length, width, count = 4, spec.adjustment_window_seconds // H, batch._selected.shape[1]
    outputs = devices * (24 * length + 8 * spec.quality_days + count + 94)
    names = devices * 80  # the default device names "0" .. "5999", and their list
    temporaries = 16 * 8 * chunk * (length + width + count)
    assert peak <= outputs + names + temporaries, (peak, outputs, temporaries)
    assert peak < loads.nbytes // 4


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs(),
    devices=st.integers(1, 30),
    grid_days=st.integers(8, 30),
    hour=st.integers(0, 22),
    seed=st.integers(0, 2**32 - 1),
    chunk=st.integers(1, 33),
)
def test_rows_read_block_by_block_give_the_whole_array_result(spec, devices, grid_days, hour, seed, chunk):
    start = day_start(EVENT_DAY) + hour * H
    grid_start = day_start(EVENT_DAY) - grid_days * 86_400
    loads = synthetic(devices, grid_days, seed, 0.05)
    names = [f"0x{i + 1:040x}" for i in range(devices)]
    reads: list[tuple[int, int]] = []

    def read_rows(lo: int, hi: int) -> np.ndarray:
        reads.append((lo, hi))
        return loads[lo:hi].astype(np.int32)  # a fresh block, as a store would build it

    streamed = compute_baselines_by_rows(spec, grid_start, loads.shape[1], names, read_rows, start, start + H,
                                         chunk_size=chunk)
    whole = compute_baselines(spec, grid_start, loads, start, start + H, names)
    assert_same_batch(whole, streamed)
    # every row is read exactly once, in order, at most `chunk` rows at a time
    assert reads == [(lo, min(lo + chunk, devices)) for lo in range(0, devices, chunk)]
    watts, owners = [300] * devices, [f"0x{i + 1 + 2**100:040x}" for i in range(devices)]
    assert_same_settlement(settle(whole, watts, owners), settle(streamed, watts, owners))


@pytest.mark.parametrize("block, message", [
    (lambda lo, hi: np.zeros((hi - lo, 5), dtype=np.int32), r"rows 0\.\.2: expected shape \(3, 48\)"),
    (lambda lo, hi: np.zeros((hi - lo, 48)), "rows 0..2: loads must have a signed integer dtype"),
    (lambda lo, hi: np.full((hi - lo, 48), -2, dtype=np.int64), "rows 0..2: loads must be >= 0 Wh or -1"),
    (lambda lo, hi: [[0] * 48] * (hi - lo), "rows 0..2: read_rows must return a numpy array, got list"),
])
def test_a_bad_block_is_rejected_with_its_rows(block, message):
    spec = BaselineSpec("caiso-10in10", interval_seconds=H)
    start = day_start(EVENT_DAY) + 12 * H
    with pytest.raises(BaselineError, match=message):
        compute_baselines_by_rows(spec, day_start(EVENT_DAY) - 86_400, 48, ["a", "b", "c"], block, start,
                                  start + H)
