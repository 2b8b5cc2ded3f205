"""`python -m bench oracle --devices N`: the oracle's verification and settlement throughput.

Synthetic data: N devices, 10 prior days and the event day at 15-minute intervals (11 x 96
readings each), household-like load shapes with noise, every device committed to one 2-hour
request and curtailing in it. Figures:
  verify_batches_per_s  signer recovery of device-signed MeterBatches (one day = 96 readings per
                        batch), single process, over `--verify-batches` batches
  settle_seconds        baselines (PJM-style high 4-of-5 with a capped ratio adjustment and the
                        quality gate on 2 placebo days: what 10 prior days allow for a Wednesday
                        event) + payouts + the cumulative Merkle tree, for all N devices
  merkle_seconds        building the tree alone, timed on a second build (the same work is
                        inside settle_seconds)
  devices_per_s         N / settle_seconds
  peak_rss_mb           the process's peak resident memory (the largest of the phases below)
  peak_rss_mb_by_phase  the peak resident memory within each phase: verify (the signed batches),
                        loads (generating the array), baselines, settle (payouts and the tree of
                        settle_epoch, with the per-device inputs), merkle (the second tree); on
                        Linux each phase's high-water mark is reset at its start
                        (/proc/self/clear_refs), elsewhere the figures are cumulative
  loads_mb              the whole loads grid: int32, 4 bytes per reading, as the store delivers it
  loads_held_mb         what of it is in memory at once: the whole grid, or one block (--streamed)
  streamed, load_seconds  --streamed: compute_baselines_by_rows reads the rows one block of devices
                        at a time (8,192), generated on demand as a store would load them, so the
                        grid never exists whole; load_seconds is that generation, left out of
                        settle_seconds and baseline_seconds (null when not streamed)
`--history-days` (default 10, at most 92: what the oracle's grid holds) sets the days of readings
before the event day.
The settlement runs the same engine as the oracle (compute_baselines, settle_epoch, RewardsTree)
on arrays already in memory: loading readings from the database is not part of the figure.
The loads are generated a block of rows at a time straight into the int32 array (the same values
as one whole-array draw: one generator, rows in order), so the figures are the oracle's memory,
not the generator's float temporaries.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np

INTERVAL = 900
PER_DAY = 86_400 // INTERVAL
DAYS = 11


_GENERATE_ROWS = 1_024  # rows of loads generated at a time (float64 temporaries of this many rows)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class _PhasePeaks:
    """Peak RSS per phase: the kernel's high-water mark, read and reset at each phase boundary."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._resettable = self._reset()

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # 5: reset the peak RSS to the current RSS
            return True
        except OSError:
            return False

    @staticmethod
    def _hwm_mb() -> float:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return _peak_rss_mb()

    def end(self, phase: str) -> None:
        """Record the peak since the previous boundary as `phase`'s, and start the next phase."""
        self.phases[phase] = self._hwm_mb()
        if self._resettable:
            self._reset()

    @property
    def peak(self) -> float:
        return max([*self.phases.values(), _peak_rss_mb()])


def _day_shape(days: int) -> np.ndarray:
    """[1, days * PER_DAY] the household-like daily shape, repeated."""
    hours = np.arange(PER_DAY) / 4
    shape = 1.0 + 0.6 * np.exp(-((hours - 19) ** 2) / 6) + 0.3 * np.exp(-((hours - 8) ** 2) / 4)
    return np.tile(shape, days)[None, :]


def _synthetic_loads(devices: int, seed: int, days: int = DAYS) -> np.ndarray:
    """[devices, days * PER_DAY] int32 Wh per interval: a daily shape per device plus noise.

    Generated _GENERATE_ROWS rows at a time into the result (one generator, rows in order: the
    values of a single whole-array draw)."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(150, 450, size=(devices, 1))
    daily_shape = _day_shape(days)
    loads = np.empty((devices, days * PER_DAY), dtype=np.int32)
    for lo in range(0, devices, _GENERATE_ROWS):
        hi = min(lo + _GENERATE_ROWS, devices)
        noise = rng.normal(1.0, 0.05, size=(hi - lo, days * PER_DAY))
        loads[lo:hi] = np.maximum(0, daily_shape * scale[lo:hi] * noise)
    return loads


_STREAM_ROWS = 256  # rows per generator of the streamed data set (float64 temporaries of this many rows)


def _synthetic_block(seed: int, block: int, days: int) -> np.ndarray:
    """Rows block * _STREAM_ROWS .. + _STREAM_ROWS of the streamed data set, int32: their own
    generator (seed, block), so any block can be produced on its own, in any order."""
    rng = np.random.default_rng([seed, block])
    scale = rng.uniform(150, 450, size=(_STREAM_ROWS, 1))
    noise = rng.normal(1.0, 0.05, size=(_STREAM_ROWS, days * PER_DAY))
    noise *= _day_shape(days) * scale
    return np.maximum(noise, 0, out=noise).astype(np.int32)


class _StreamedLoads:
    """`read_rows` for compute_baselines_by_rows: rows lo..hi generated on demand, as a store would
    load one block of devices; the whole array never exists. Counts the seconds spent reading."""

    def __init__(self, seed: int, days: int, curtail: tuple[int, int]) -> None:
        self.seed, self.days, self.curtail = seed, days, curtail
        self.seconds = 0.0
        self.largest_block_bytes = 0

    def __call__(self, lo: int, hi: int) -> np.ndarray:
        started = time.perf_counter()
        out = np.empty((hi - lo, self.days * PER_DAY), dtype=np.int32)
        for block in range(lo // _STREAM_ROWS, (hi - 1) // _STREAM_ROWS + 1):
            b_lo = block * _STREAM_ROWS
            a, b = max(lo, b_lo), min(hi, b_lo + _STREAM_ROWS)
            out[a - lo : b - lo] = _synthetic_block(self.seed, block, self.days)[a - b_lo : b - b_lo]
        first, last = self.curtail
        out[:, first:last] = out[:, first:last] * 6 // 10
        self.largest_block_bytes = max(self.largest_block_bytes, out.nbytes)
        self.seconds += time.perf_counter() - started
        return out


def run(devices: int, verify_batches: int = 20_000, seed: int = 7, history_days: int = DAYS - 1,
        streamed: bool = False) -> dict:
    """Generate the data, measure verification and settlement, return the figures.

    `history_days` days of readings before the event day (the oracle's grid holds 92); `streamed`
    settles with compute_baselines_by_rows over rows generated one block at a time (the shape of
    a settlement from the store), instead of one loads array generated up front."""
    if not 1 <= history_days <= 2 * 45 + 2:
        raise ValueError(f"history_days must be within 1..92, got {history_days}")
    days = history_days + 1
    from coincurve import PrivateKey
    from eth_utils import keccak, to_checksum_address

    from oracle.baselines import BaselineSpec, compute_baselines, compute_baselines_by_rows
    from oracle.settlement import DeviceInput, RequestInput, SettlementParams, settle_epoch
    from protocol.fast_verify import RegistryDomainVerifier
    from protocol.merkle import RewardsTree
    from protocol.meter import MeterBatch

    peaks = _PhasePeaks()
    registry = "0x" + "5f" * 20
    chain_id = 31337
    verifier = RegistryDomainVerifier(chain_id, registry)

    # Signed batches: device keys sign with libsecp256k1 (fast), then the oracle's path recovers them.
    keys = [PrivateKey(os.urandom(32)) for _ in range(min(verify_batches, 2_000))]
    addresses = [to_checksum_address(keccak(k.public_key.format(compressed=False)[1:])[-20:]) for k in keys]
    # The event day is a Wednesday (1970-01-01 was a Thursday); by default the 10 prior days start
    # on a Sunday.
    today = int(time.time()) // 86_400
    event_day = today - (today - 6) % 7 - 7
    day0 = (event_day - (days - 1)) * 86_400
    batches = []
    rng = np.random.default_rng(seed)
    for i in range(verify_batches):
        k = i % len(keys)
        readings = tuple(int(v) for v in rng.integers(100, 500, PER_DAY))
        unsigned = MeterBatch(addresses[k], day0 + (i // len(keys)) * 86_400, INTERVAL, readings, i // len(keys))
        signature = keys[k].sign_recoverable(verifier.batch_digest(unsigned), hasher=None)
        batches.append(MeterBatch(unsigned.device, unsigned.start, INTERVAL, readings, unsigned.sequence,
                                  signature[:64] + bytes([signature[64] + 27])))
    started = time.perf_counter()
    for batch, k in zip(batches, range(verify_batches)):
        if verifier.batch_signer(batch) != addresses[k % len(keys)]:
            raise AssertionError("a synthetic batch did not verify")
    verify_rate = verify_batches / (time.perf_counter() - started)
    del batches, keys  # the settlement below runs without the verification's data
    peaks.end("verify")

    # Settlement data: N devices, event 17:00-19:00 UTC on the last day, devices curtail 40% in it.
    grid_start = day0
    event_start = day0 + (days - 1) * 86_400 + 17 * 3_600
    event_end = event_start + 2 * 3_600
    first, last = (event_start - grid_start) // INTERVAL, (event_end - grid_start) // INTERVAL
    columns = days * PER_DAY
    if streamed:
        loads = None
        reader = _StreamedLoads(seed, days, (first, last))
    else:
        loads = _synthetic_loads(devices, seed, days)
        loads[:, first:last] = loads[:, first:last] * 6 // 10
    peaks.end("loads")
    device_ids = [f"0x{i + 1:040x}" for i in range(devices)]
    owners = [f"0x{(i // 3) + 1 + 2**100:040x}" for i in range(devices)]  # three devices per owner
    spec = BaselineSpec("high-x-of-y", x=4, y=5, interval_seconds=INTERVAL, adjustment="ratio", quality_days=2)
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20,
                              interval_seconds=INTERVAL)

    started = time.perf_counter()
    if loads is None:
        batch = compute_baselines_by_rows(spec, grid_start, columns, device_ids, reader, event_start,
                                          event_end)
        started += reader.seconds  # generating the rows stands for the store's load: not a baseline cost
    else:
        batch = compute_baselines(spec, grid_start, loads, event_start, event_end, devices=device_ids)
    curtailed = batch.curtailed_wh.tolist()
    eligible = batch.eligible.tolist()
    baseline_seconds = time.perf_counter() - started
    peaks.end("baselines")
    inputs = tuple(
        DeviceInput(device_ids[i], owners[i], 1_000, tuple(curtailed[i]), bool(eligible[i]))
        for i in range(devices)
    )
    request = RequestInput(1, "0x" + "bb" * 20, 300_000, 10**15, last - first, inputs)
    settlement = settle_epoch(1, bytes(32), {}, [request], params, emission_budget=10**30)
    settle_seconds = time.perf_counter() - started
    peaks.end("settle")
    merkle_started = time.perf_counter()
    tree = RewardsTree(settlement.leaves())
    merkle_seconds = time.perf_counter() - merkle_started
    assert tree.root == settlement.report.rewards_root
    peaks.end("merkle")

    return {
        "devices": devices,
        "intervals": columns,
        "verify_batches_per_s": round(verify_rate),
        "settle_seconds": round(settle_seconds, 2),
        "merkle_seconds": round(merkle_seconds, 2),
        "baseline_seconds": round(baseline_seconds, 2),
        "devices_per_s": round(devices / settle_seconds),
        "eligible_devices": int(sum(eligible)),
        "leaves": len(settlement.ledger),
        "peak_rss_mb": peaks.peak,
        "peak_rss_mb_by_phase": peaks.phases,
        "loads_mb": round(devices * columns * 4 / 2**20, 1),
        "loads_held_mb": round((reader.largest_block_bytes if loads is None else loads.nbytes) / 2**20, 1),
        "streamed": streamed,
        "load_seconds": round(reader.seconds, 2) if loads is None else None,
    }
