"""The meter store's retention rule and its daily upkeep.

The rule: the store keeps every UTC day `d >= (now - retention_days x 86,400) // 86,400` (its
`meter_days` rows, and every signed batch that ends after that day's start); older days and the
batches that end by then are removed. Never removed, whatever the retention: the days a request that
can still settle reads, from its start minus `HISTORY_DAYS` days on (`first_needed_day`):
- an open request until its settlement timeout has passed (FlexMarket.settlementTimeout after its
  end; past it the market only refunds it, and no oracle settles it: oracle.attestation);
- a settling request whatever its age: its report may be challenged in the OracleHub's challenge
  window, which puts the request back to open, to be settled again from the same batches.
Peers pull batches (oracle.peer_sync) only for the requests they are settling, whose days are these
same days, so what this oracle keeps is also what a peer may still ask for.

Why the number. A settlement reads `oracle.epoch.HISTORY_DAYS` days before a request's start
(2 x MAX_LOOKBACK_DAYS + 2: the baseline's look-back for the placebo days of the quality gate and of
capability tests, with a margin), plus the request's own day and the partial first day of the look-
back, so `MIN_RETENTION_DAYS = HISTORY_DAYS + 2`: an operator cannot configure less
(`check_retention_days` refuses it and says why). The default adds `SETTLEMENT_MARGIN_DAYS`: the
market's default settlement timeout (7 days), the longest challenge window the OracleHub allows (30
days) and one day for the request window itself, so the data of a report stays for anyone to
re-verify until the report can no longer change; past those, the protection of unsettled requests
above holds the days that are still needed.

How it runs. `StoreUpkeep.tick` is called by the oracle service's attestation loop on every tick and
does its work once a day (the first tick after a start included): on PostgreSQL it creates the day
partitions of the kept days and `AHEAD_DAYS` ahead (oracle.meter_partitions), drops the partitions
of pruned days whole and deletes the pruned signed batches; on SQLite it deletes rows in bounded
write transactions (at most `chunk` signed batches and the day rows they cover each), so an ingest
waits for one small transaction at most. A day row exists only for days some stored batch covers
(oracle.meter_store), so the batches older than the cutoff, found by their start index, lead to
every day row to delete: when there is nothing to prune the upkeep costs one indexed query.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from oracle import db, meter_partitions, meter_store
from oracle.epoch import HISTORY_DAYS
from protocol.requests import FlexRequest
from protocol.statuses import RequestStatus
from protocol.units import SECONDS_PER_DAY

log = logging.getLogger("negawatt.oracle.retention")

MIN_RETENTION_DAYS = HISTORY_DAYS + 2  # the history, the request's own day, the partial first day
SETTLEMENT_MARGIN_DAYS = 7 + 30 + 1  # settlement timeout (default), longest challenge window, request window
DEFAULT_RETENTION_DAYS = MIN_RETENTION_DAYS + SETTLEMENT_MARGIN_DAYS
MAX_RETENTION_DAYS = 100 * 366
AHEAD_DAYS = 2  # PostgreSQL: partitions exist for today and this many days ahead
DEFAULT_CHUNK = 5_000  # signed batches per SQLite prune transaction
UPKEEP_EVERY_SECONDS = SECONDS_PER_DAY
RETRY_SECONDS = 300  # after a failed upkeep


class RetentionTooShort(ValueError):
    """A configured retention below what settlement needs (MIN_RETENTION_DAYS)."""


def check_retention_days(days: int) -> int:
    """`days` if it is a valid retention, else RetentionTooShort / ValueError saying what is wrong."""
    if isinstance(days, bool) or not isinstance(days, int):
        raise ValueError(f"retention_days must be an integer number of days, not {days!r}")
    if days < MIN_RETENTION_DAYS:
        raise RetentionTooShort(
            f"retention_days = {days} is below the floor of {MIN_RETENTION_DAYS} days: a settlement reads "
            f"{HISTORY_DAYS} days of history before a request's start (oracle.epoch.HISTORY_DAYS) plus the request's "
            f"day and the partial first day; set it to at least {MIN_RETENTION_DAYS} (default {DEFAULT_RETENTION_DAYS})")
    if days > MAX_RETENTION_DAYS:
        raise ValueError(f"retention_days = {days} is above {MAX_RETENTION_DAYS} (100 years)")
    return days


def retention_start_day(now: int, retention_days: int) -> int:
    """The first day the retention keeps at time `now`: (now - retention) // 86,400."""
    return max(0, (now - check_retention_days(retention_days) * SECONDS_PER_DAY) // SECONDS_PER_DAY)


def first_needed_day(requests: Iterable[FlexRequest], now: int, settlement_timeout: int) -> int | None:
    """The first day a request that can still settle reads (its start minus HISTORY_DAYS), or None.

    Open requests count until `end + settlement_timeout` has passed; settling ones (a report pending,
    which a challenge would reopen) always. Settled, expired and cancelled requests need nothing."""
    needed = None
    for request in requests:
        if request.status is RequestStatus.SETTLING or (
                request.status is RequestStatus.OPEN and request.end + settlement_timeout > now):
            day = max(0, request.start - HISTORY_DAYS * SECONDS_PER_DAY) // SECONDS_PER_DAY
            needed = day if needed is None else min(needed, day)
    return needed


def cutoff_day(now: int, retention_days: int, needed_day: int | None) -> int:
    """The first day kept: the retention's, or earlier when an unsettled request needs it."""
    keep = retention_start_day(now, retention_days)
    return keep if needed_day is None else min(keep, needed_day)


@dataclass
class PruneResult:
    """What one prune did: the first day kept, day rows (SQLite) or partitions (PostgreSQL) removed,
    signed batches deleted, write transactions used, partitions created, and the time it took."""

    cutoff_day: int
    day_rows: int = 0
    partitions_dropped: int = 0
    batches: int = 0
    transactions: int = 0
    partitions_created: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, int | float]:
        """The result as JSON-able data (logs, benchmarks)."""
        return {"cutoff_day": self.cutoff_day, "day_rows": self.day_rows, "partitions_dropped": self.partitions_dropped,
                "batches": self.batches, "transactions": self.transactions,
                "partitions_created": self.partitions_created, "seconds": round(self.seconds, 3)}


def is_partitioned(engine: Engine) -> bool:
    """Whether `engine`'s meter_days is PostgreSQL-partitioned (oracle.meter_partitions)."""
    if engine.dialect.name != "postgresql":
        return False
    with Session(engine) as session:
        return meter_partitions.kind(session.connection()) == "partitioned"


def ensure_partitions(engine: Engine, first_day: int, last_day: int) -> int:
    """PostgreSQL: create the missing day partitions of [first_day, last_day], one write transaction
    each (serialized with the ingest); returns how many were created. A no-op elsewhere."""
    if first_day > last_day or not is_partitioned(engine):
        return 0
    with Session(engine) as session:
        existing = meter_partitions.partitions(session.connection())
    covered = {day for p in existing for day in range(max(p.low, first_day), min(p.high, last_day + 1))}
    created = 0
    for day in range(max(0, first_day), last_day + 1):
        if day in covered:
            continue
        with db.write_transaction(engine, meter_store.LOCK_KEY) as session:
            connection = session.connection()
            if any(p.low <= day < p.high for p in meter_partitions.partitions(connection)):
                continue  # another process made it
            moved = meter_partitions.create_day(connection, day)
        created += 1
        if moved:
            log.info("partition of day %d created with %d rows from the default partition", day, moved)
    return created


def prune_store(engine: Engine, first_kept_day: int, chunk: int = DEFAULT_CHUNK) -> PruneResult:
    """Remove the days before `first_kept_day` and the signed batches ending by its start (see the
    module docstring): partitions dropped on a partitioned PostgreSQL store, rows deleted in write
    transactions of at most `chunk` batches elsewhere. The caller computes the day with `cutoff_day`."""
    if isinstance(first_kept_day, bool) or not isinstance(first_kept_day, int) or first_kept_day < 0:
        raise ValueError(f"first_kept_day must be a non-negative day number, not {first_kept_day!r}")
    if not 1 <= chunk <= 100_000:
        raise ValueError(f"chunk must be in [1, 100000], not {chunk}")
    began = time.perf_counter()
    result = PruneResult(first_kept_day)
    partitioned = is_partitioned(engine)
    if partitioned:
        _drop_partitions(engine, first_kept_day, result)
    _delete_rows(engine, first_kept_day, chunk, delete_days=not partitioned, result=result)
    result.seconds = time.perf_counter() - began
    return result


def _drop_partitions(engine: Engine, first_kept_day: int, result: PruneResult) -> None:
    with Session(engine) as session:
        old = [p for p in meter_partitions.partitions(session.connection()) if p.high <= first_kept_day]
    for partition in old:  # one short transaction each: DROP takes the parent's lock for a moment
        with db.write_transaction(engine, meter_store.LOCK_KEY) as session:
            meter_partitions.drop(session.connection(), partition)
        result.partitions_dropped += 1
        result.transactions += 1
    with Session(engine) as session:
        stray = session.connection().execute(text(
            f"SELECT 1 FROM {meter_partitions.DEFAULT_PARTITION} WHERE day < :day LIMIT 1"),
            {"day": first_kept_day}).first() if meter_partitions.has_default(session.connection()) else None
    if stray is not None:
        with db.write_transaction(engine, meter_store.LOCK_KEY) as session:
            result.day_rows += meter_partitions.delete_default_before(session.connection(), first_kept_day)
        result.transactions += 1


_OLD_BATCHES = text("SELECT id, meter, start, interval_seconds, length(readings) / 4 FROM signed_batches "
                    "WHERE start >= :start AND start < :cutoff AND (start > :start OR id > :id) "
                    "ORDER BY start, id LIMIT :limit")
_DAY_EXISTS = text("SELECT 1 FROM meter_days WHERE meter = :meter AND day = :day")
_DELETE_DAY = text("DELETE FROM meter_days WHERE meter = :meter AND day = :day")
_DELETE_BATCH = text("DELETE FROM signed_batches WHERE id = :id")


def _delete_rows(engine: Engine, first_kept_day: int, chunk: int, delete_days: bool, result: PruneResult) -> None:
    """Walk the batches starting before the cutoff (index on start), `chunk` at a time: each chunk is
    read without the write lock, and only a chunk with something to delete takes a write transaction
    (so batches that cross the cutoff, kept, cost a read per upkeep, not a write)."""
    cutoff = first_kept_day * SECONDS_PER_DAY
    position = {"cutoff": cutoff, "start": -2**62, "id": 0, "limit": chunk}
    while True:
        with Session(engine) as session:
            connection = session.connection()
            rows = connection.execute(_OLD_BATCHES, position).all()
            days, gone = set(), []
            for batch_id, meter, start, interval, count in rows:
                end = int(start) + int(count) * int(interval)
                if delete_days:
                    last = min((end - 1) // SECONDS_PER_DAY, first_kept_day - 1)
                    days.update((int(meter), day) for day in range(int(start) // SECONDS_PER_DAY, last + 1))
                if end <= cutoff:
                    gone.append({"id": int(batch_id)})
            stored_days = sorted(key for key in days if connection.execute(
                _DAY_EXISTS, {"meter": key[0], "day": key[1]}).first() is not None)
        if not rows:
            return
        if stored_days or gone:  # every row named here is past the cutoff: deleting it again is harmless
            with db.write_transaction(engine, meter_store.LOCK_KEY) as session:
                connection = session.connection()
                if stored_days:
                    result.day_rows += _deleted(connection.execute(
                        _DELETE_DAY, [{"meter": m, "day": d} for m, d in stored_days]))
                if gone:
                    result.batches += _deleted(connection.execute(_DELETE_BATCH, gone))
            result.transactions += 1
        position.update(start=int(rows[-1][2]), id=int(rows[-1][0]))
        if len(rows) < chunk:
            return


def _deleted(outcome: object) -> int:
    count = getattr(outcome, "rowcount", -1)
    return int(count) if count is not None and count >= 0 else 0


class StoreUpkeep:
    """The store's daily upkeep, ticked by the oracle service (see the module docstring).

    `needed_day(now)` gives the first day an unsettled request needs (`first_needed_day` over the
    chain view's requests), or None; if it raises (the chain is unreachable), nothing is pruned and
    the upkeep is retried after RETRY_SECONDS."""

    def __init__(self, engine: Engine, retention_days: int, needed_day: Callable[[int], int | None],
                 every_seconds: int = UPKEEP_EVERY_SECONDS, chunk: int = DEFAULT_CHUNK):
        self.engine = engine
        self.retention_days = check_retention_days(retention_days)
        self.needed_day = needed_day
        self.every_seconds = every_seconds
        self.chunk = chunk
        self.next_due: int | None = None  # None: due at the first tick
        self.last: PruneResult | None = None

    def due(self, now: int) -> bool:
        """Whether the upkeep runs at `now`."""
        return self.next_due is None or now >= self.next_due

    def tick(self, now: int) -> PruneResult | None:
        """Run the upkeep if it is due at `now` (seconds, chain time); returns what it did, or None."""
        if not self.due(now):
            return None
        self.next_due = now + RETRY_SECONDS  # until this run succeeds
        result = self.run(now)
        self.next_due = now + self.every_seconds
        return result

    def run(self, now: int) -> PruneResult:
        """Create the partitions ahead (PostgreSQL) and prune what the retention rule lets go, now."""
        first_kept = cutoff_day(now, self.retention_days, self.needed_day(now))
        created = ensure_partitions(self.engine, first_kept, now // SECONDS_PER_DAY + AHEAD_DAYS)
        result = prune_store(self.engine, first_kept, self.chunk)
        result.partitions_created = created
        self.last = result
        if result.batches or result.day_rows or result.partitions_dropped or created:
            log.info("store upkeep: kept days from %d; removed %d day rows, %d partitions, %d signed batches in %d "
                     "transactions; %d partitions created (%.3f s)", first_kept, result.day_rows,
                     result.partitions_dropped, result.batches, result.transactions, created, result.seconds)
        else:
            log.info("store upkeep: nothing to prune before day %d", first_kept)
        return result
