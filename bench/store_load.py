"""`python -m bench store-load`: how fast the settlement's readings come out of the compact store.

The rule: a SQLite store is filled the way the ingest fills it (`oracle.meter_store.store_batches`,
one signed batch per meter and day, signed for real by each meter's secp256k1 key on the digest
the oracle verifies), then `readings_in_range` loads all N meters x D days into the [meters, T]
array, `repeats` times; the figure is the best time per stored meter-day row. The loaded array is
checked against the readings that were signed (a wrong fast load is an error, not a figure).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address

from oracle import db, meter_store
from protocol.fast_verify import RegistryDomainVerifier
from protocol.meter import MeterBatch
from protocol.units import SECONDS_PER_DAY

INTERVAL = 900
SLOTS = SECONDS_PER_DAY // INTERVAL
BASE_DAY = 20_700  # a UTC day number (2026-09-04)
VERIFIER = RegistryDomainVerifier(31337, "0x" + "5f" * 20)
GROUP = 2_000  # batches per store_batches call


class BenchError(RuntimeError):
    """The load did not give back what was stored."""


def _readings(meters: int, days: int, seed: int) -> np.ndarray:
    """[meters, days * SLOTS] readings in Wh, with a few slots never sent (they stay -1)."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 4_000, size=(meters, days * SLOTS), dtype=np.int64)
    values[rng.random(values.shape) < 0.01] = -1
    return values


def fill(engine, meters: int, days: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Store one signed batch per meter and day (a missing slot splits the day into batches);
    returns the meters' addresses and the [meters, days * SLOTS] readings stored (-1: none)."""
    keys = [PrivateKey(keccak(text=f"store-load-{seed}-{i}")) for i in range(meters)]
    addresses = [to_checksum_address(keccak(k.public_key.format(compressed=False)[1:])[-20:]) for k in keys]
    values = _readings(meters, days, seed)
    items: list[meter_store.BatchToStore] = []
    now = (BASE_DAY + days + 1) * SECONDS_PER_DAY
    for m, (key, address) in enumerate(zip(keys, addresses)):
        sequence = 0
        for d in range(days):
            row = values[m, d * SLOTS:(d + 1) * SLOTS]
            present = np.flatnonzero(row >= 0)
            for run in np.split(present, np.flatnonzero(np.diff(present) > 1) + 1):
                if not run.size:
                    continue
                start = (BASE_DAY + d) * SECONDS_PER_DAY + int(run[0]) * INTERVAL
                readings = tuple(int(v) for v in row[run[0]:run[-1] + 1])
                digest = VERIFIER.batch_digest(MeterBatch(address, start, INTERVAL, readings, sequence, b""))
                raw = key.sign_recoverable(digest, hasher=None)
                items.append(meter_store.BatchToStore(address, sequence, start, INTERVAL, readings,
                                                      raw[:64] + bytes([raw[64] + 27]), digest))
                sequence += 1
        if len(items) >= GROUP:
            _store(engine, items, now)
            items = []
    _store(engine, items, now)
    return addresses, values


def _store(engine, items: list[meter_store.BatchToStore], now: int) -> None:
    if not items:
        return
    answers = meter_store.store_batches(engine, items, now, SECONDS_PER_DAY)
    refused = [a for a in answers if not isinstance(a, meter_store.Stored)]
    if refused:
        raise BenchError(f"the store refused {len(refused)} batches, e.g. {refused[0]}")


def run(meters: int, days: int, repeats: int = 3) -> dict:
    """Fill a store with `meters` x `days` and time `readings_in_range` over all of it."""
    with tempfile.TemporaryDirectory(prefix="negawatt-store-load-") as folder:
        engine = db.make_engine(str(Path(folder) / "store.sqlite"))
        db.init_db(engine)
        t0 = time.perf_counter()
        addresses, values = fill(engine, meters, days)
        fill_seconds = time.perf_counter() - t0
        from_ts, to_ts = BASE_DAY * SECONDS_PER_DAY, (BASE_DAY + days) * SECONDS_PER_DAY
        best = float("inf")
        loaded = None
        for _ in range(repeats):
            meter_store.forget_ids(engine)  # each load looks the meter ids up again, as a new process would
            t0 = time.perf_counter()
            loaded = meter_store.readings_in_range(engine, addresses, from_ts, to_ts, INTERVAL)
            best = min(best, time.perf_counter() - t0)
        assert loaded is not None
        order = [loaded.index[a] for a in addresses]
        if loaded.grid_start != from_ts or not np.array_equal(loaded.loads[order], values):
            raise BenchError("the loaded array differs from the readings that were stored")
        engine.dispose()
    rows = meters * days
    return {"bench": "store_load", "meters": meters, "days": days, "meter_day_rows": rows,
            "readings": int(np.count_nonzero(values >= 0)), "fill_seconds": round(fill_seconds, 2),
            "repeats": repeats, "load_seconds": round(best, 4), "us_per_row": round(best / rows * 1e6, 2)}
