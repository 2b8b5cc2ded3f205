"""The store's upkeep (oracle.meter_retention): what a daily prune costs and how long it holds the lock.

A store (a SQLite file, or the PostgreSQL database of --database-url) is filled directly with one
day-long batch (96 readings) per meter and day over `days` days, each signed with its meter's own
key (coincurve on the EIP-712 digest). Then the upkeep runs at "now" with the floor retention
(MIN_RETENTION_DAYS), which removes the days beyond it, and once more the next day (one day to
remove, the steady state), and once more the same day (nothing to prune). Each write transaction
is timed (oracle.db.observe_writes), so the figures say how long an ingest could wait behind the
upkeep at most. Prints one JSON object.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address
from sqlalchemy import text

from oracle import db, meter_store
from oracle.meter_retention import MIN_RETENTION_DAYS, StoreUpkeep
from protocol.fast_verify import RegistryDomainVerifier
from protocol.meter import MeterBatch

DAY, INTERVAL = 86_400, 900
VERIFIER = RegistryDomainVerifier(31337, "0x" + "5f" * 20)


def _fill(engine: Any, meters: int, days: int, today: int) -> float:
    keys = [PrivateKey(keccak(text=f"bench-retention-{i}")) for i in range(meters)]
    devices = [to_checksum_address(keccak(k.public_key.format(compressed=False)[1:])[-20:]) for k in keys]
    rng = np.random.default_rng(0)
    began = time.perf_counter()
    for offset, day in enumerate(range(today - days, today)):
        items = []
        for key, device in zip(keys, devices):
            readings = tuple(int(v) for v in rng.integers(0, 5_000, 96))
            digest = VERIFIER.batch_digest(MeterBatch(device, day * DAY, INTERVAL, readings, offset, b""))
            raw = key.sign_recoverable(digest, hasher=None)
            items.append(meter_store.BatchToStore(device, offset, day * DAY, INTERVAL, readings,
                                                  raw[:64] + bytes([raw[64] + 27]), digest))
        meter_store.store_batches(engine, items, now=today * DAY, max_span_seconds=DAY)
    return time.perf_counter() - began


def run(meters: int = 500, days: int = 110, database_url: str | None = None, chunk: int = 5_000) -> dict[str, Any]:
    """Fill, then time three upkeeps (the backlog, one day, nothing); see the module docstring."""
    folder = None
    if database_url is None:
        folder = tempfile.TemporaryDirectory(prefix="bench-retention-")
        database_url = str(Path(folder.name) / "store.sqlite")
    engine = db.make_engine(database_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            for table in ("signed_batches", "meter_days", "meters", "sequence_gaps"):
                connection.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    db.init_db(engine)
    today = 1_790_000_000 // DAY
    fill_seconds = _fill(engine, meters, days, today)
    writes: list[float] = []
    db.observe_writes(engine, lambda kind, _wait, total: writes.append(total) if kind == "meters" else None)
    upkeep = StoreUpkeep(engine, MIN_RETENTION_DAYS, needed_day=lambda now: None, chunk=chunk)
    figures: dict[str, Any] = {"store": engine.dialect.name, "meters": meters, "days": days, "chunk": chunk,
                               "retention_days": MIN_RETENTION_DAYS, "fill_seconds": round(fill_seconds, 2)}
    for name, now in (("backlog", today * DAY + 3_600), ("next_day", (today + 1) * DAY + 3_600),
                      ("nothing", (today + 1) * DAY + 7_200)):
        writes.clear()
        upkeep.next_due = None
        began = time.perf_counter()
        result = upkeep.tick(now)
        seconds = time.perf_counter() - began
        figures[name] = {**result.as_dict(), "seconds": round(seconds, 4), "write_transactions": len(writes),
                         "longest_write_seconds": round(max(writes, default=0.0), 4)}
    with engine.connect() as connection:
        figures["day_rows_left"] = int(connection.execute(text("SELECT COUNT(*) FROM meter_days")).scalar())
        figures["batches_left"] = int(connection.execute(text("SELECT COUNT(*) FROM signed_batches")).scalar())
    meter_store.forget_ids(engine)
    engine.dispose()
    if folder is not None:
        folder.cleanup()
    return figures
