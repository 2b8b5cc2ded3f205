"""bench.retention: its figures are the upkeep's real counts (small store, SQLite)."""

from __future__ import annotations

from bench.retention import run
from oracle.meter_retention import MIN_RETENTION_DAYS


def test_bench_retention_counts_what_the_upkeep_removed():
    meters, days = 3, MIN_RETENTION_DAYS + 6
    figures = run(meters=meters, days=days, chunk=4)
    assert figures["store"] == "sqlite"
    backlog, next_day, nothing = figures["backlog"], figures["next_day"], figures["nothing"]
    # day-long batches from today - days to yesterday; the floor keeps MIN_RETENTION_DAYS days back from today
    assert backlog["batches"] == backlog["day_rows"] == meters * (days - MIN_RETENTION_DAYS)
    assert backlog["transactions"] == backlog["write_transactions"] > 1  # chunks of 4 batches
    assert next_day["batches"] == next_day["day_rows"] == meters
    assert (nothing["batches"], nothing["write_transactions"]) == (0, 0)
    assert figures["batches_left"] == figures["day_rows_left"] == meters * (MIN_RETENTION_DAYS - 1)
