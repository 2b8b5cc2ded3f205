"""PostgreSQL day partitions of `meter_days` (declarative range partitioning on `day`).

The rule: on PostgreSQL `meter_days` is a partitioned table, `PARTITION BY RANGE (day)`, whose
primary key (meter, day) includes the partition key. Each UTC day has its own partition
`meter_days_d<day>` holding [day, day + 1), and a DEFAULT partition `meter_days_default` catches a
row of a day that has no partition yet, so an ingest never fails for want of a partition. The
store's upkeep (oracle.meter_retention) creates the partitions of the retained days and a few days
ahead, moving any rows of such a day out of the default partition first, and removes old data by
dropping whole partitions, never by deleting rows one by one.

SQLite is not touched: its `meter_days` stays one WITHOUT ROWID table (the dialect ignores the
partitioning clause), and every function here is only called on PostgreSQL.

An oracle upgraded in place may hold an unpartitioned `meter_days` (created before this module):
`prepare` converts it once, in the schema transaction of `oracle.db.init_db`: it renames the old
table, creates the partitioned one with the partitions of every day it holds, copies the rows and
drops the old table (logged with the number of rows moved).

Every function takes a Connection inside the caller's transaction; callers serialize them with the
meter store's writers (`oracle.db.write_transaction(engine, oracle.meter_store.LOCK_KEY)`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

PARENT = "meter_days"
DEFAULT_PARTITION = "meter_days_default"
_OLD = "meter_days_unpartitioned"
_BOUND = re.compile(r"FOR VALUES FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
LOCK_TIMEOUT = "5s"  # DDL on the parent waits this long for readers, then fails (the upkeep retries later)
MAX_DAY = 10**7  # day numbers are UTC days since 1970 (about 20,000 now); anything past this is not a day


@dataclass(frozen=True)
class Partition:
    """One range partition of meter_days: days [low, high)."""

    name: str
    low: int
    high: int


def _check_day(day: int) -> int:
    if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= MAX_DAY:
        raise ValueError(f"a partition day must be an integer in [0, {MAX_DAY}], not {day!r}")
    return day


def partition_name(day: int) -> str:
    """The name of the partition of UTC day `day` (days since 1970-01-01)."""
    return f"{PARENT}_d{_check_day(day)}"


def kind(connection: Connection) -> str | None:
    """'partitioned', 'plain' or None (no meter_days table) for the meter_days the search path sees."""
    relkind = connection.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"),
                                 {"name": PARENT}).scalar()
    if relkind is None:
        return None
    return "partitioned" if relkind == "p" else "plain"


def partitions(connection: Connection) -> list[Partition]:
    """The range partitions of meter_days, by first day (the default partition is not listed)."""
    rows = connection.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:name)"), {"name": PARENT}).all()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:
            found.append(Partition(name, int(match.group(1)), int(match.group(2))))
    return sorted(found, key=lambda p: p.low)


def has_default(connection: Connection) -> bool:
    """Whether meter_days has its DEFAULT partition."""
    return connection.execute(text("SELECT to_regclass(:name)"), {"name": DEFAULT_PARTITION}).scalar() is not None


def create_day(connection: Connection, day: int) -> int:
    """Create the partition of `day` (it must not exist); returns how many rows it took over from the
    default partition. Without such rows it is one CREATE TABLE ... PARTITION OF; with them the
    new table is filled first and attached after, since PostgreSQL refuses a partition whose range
    the default partition still holds rows of."""
    name = partition_name(day)
    _bounded_wait(connection)
    waiting = int(connection.execute(text(f"SELECT COUNT(*) FROM {DEFAULT_PARTITION} WHERE day = :day"),
                                     {"day": day}).scalar() or 0) if has_default(connection) else 0
    if waiting == 0:
        connection.exec_driver_sql(f"CREATE TABLE {name} PARTITION OF {PARENT} FOR VALUES FROM ({day}) TO ({day + 1})")
        return 0
    connection.exec_driver_sql(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS)")
    # The CHECK lets ATTACH skip scanning the new table for rows outside its range.
    connection.exec_driver_sql(f"ALTER TABLE {name} ADD CONSTRAINT {name}_day CHECK (day >= {day} AND day < {day + 1})")
    connection.execute(text(f"INSERT INTO {name} SELECT * FROM {DEFAULT_PARTITION} WHERE day = :day"), {"day": day})
    connection.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE day = :day"), {"day": day})
    connection.exec_driver_sql(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ({day}) TO ({day + 1})")
    return waiting


def _bounded_wait(connection: Connection) -> None:
    """DDL on a partition locks the parent; a long read holding it must not stall the ingest behind
    the DDL's queued lock for long, so the DDL gives up after LOCK_TIMEOUT (this transaction only)."""
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def drop(connection: Connection, partition: Partition) -> None:
    """Drop one partition (its rows go with it, at the cost of a catalog change, not a scan)."""
    if not re.fullmatch(rf"{PARENT}_d\d+", partition.name):
        raise ValueError(f"{partition.name!r} is not a day partition of {PARENT}")
    _bounded_wait(connection)
    connection.exec_driver_sql(f"DROP TABLE {partition.name}")


def delete_default_before(connection: Connection, day: int) -> int:
    """Delete the rows of days before `day` that sit in the default partition; returns how many."""
    if not has_default(connection):
        return 0
    return int(connection.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE day < :day"), {"day": day}).rowcount or 0)


def prepare(connection: Connection) -> None:
    """Make meter_days a partitioned table with its default partition (idempotent; PostgreSQL only).

    A plain meter_days of an older oracle is converted here (see the module docstring); a
    partitioned one only gets its default partition if it lacks it."""
    found = kind(connection)
    if found is None:
        raise RuntimeError("meter_days does not exist: run oracle.db.init_db, which creates it")
    if found == "plain":
        _convert(connection)
    if not has_default(connection):
        connection.exec_driver_sql(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {PARENT} DEFAULT")


def _convert(connection: Connection) -> None:
    if connection.execute(text("SELECT to_regclass(:name)"), {"name": _OLD}).scalar() is not None:
        raise RuntimeError(f"both {PARENT} (unpartitioned) and {_OLD} exist: an earlier conversion stopped half way; "
                           f"check which one holds the readings, drop the other, and start the oracle again")
    connection.exec_driver_sql(f"ALTER TABLE {PARENT} RENAME TO {_OLD}")
    pkey = connection.execute(text(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:name) AND contype = 'p'"), {"name": _OLD}).scalar()
    if pkey is not None:  # the new table's primary key takes the same default name
        connection.exec_driver_sql(f'ALTER TABLE {_OLD} RENAME CONSTRAINT "{pkey}" TO {_OLD}_pkey')
    connection.exec_driver_sql(
        f"CREATE TABLE {PARENT} (meter INTEGER NOT NULL, day BIGINT NOT NULL, interval_seconds INTEGER NOT NULL, "
        f"readings BYTEA NOT NULL, present BYTEA NOT NULL, PRIMARY KEY (meter, day)) PARTITION BY RANGE (day)")
    connection.exec_driver_sql(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {PARENT} DEFAULT")
    days = [int(d) for (d,) in connection.execute(text(f"SELECT DISTINCT day FROM {_OLD} ORDER BY day"))]
    for day in days:
        if 0 <= day <= MAX_DAY:  # a day outside stays in the default partition
            connection.exec_driver_sql(
                f"CREATE TABLE {partition_name(day)} PARTITION OF {PARENT} FOR VALUES FROM ({day}) TO ({day + 1})")
    moved = connection.execute(text(
        f"INSERT INTO {PARENT} (meter, day, interval_seconds, readings, present) "
        f"SELECT meter, day, interval_seconds, readings, present FROM {_OLD}")).rowcount
    connection.exec_driver_sql(f"DROP TABLE {_OLD}")
    logger.info("meter_days is now partitioned by day: %d rows of %d days moved", moved or 0, len(days))
