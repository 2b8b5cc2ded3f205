"""The oracle's durable store: its tables (meter readings, commitments, sequence gaps, chain cursor),
the engine and the write transactions. `oracle.meter_store` writes and reads the meter readings.

SQLite by default, in WAL mode with `synchronous=FULL`, so a committed row survives a kill -9 or a
power cut; PostgreSQL when the URL says so (postgresql://..., a driver such as psycopg must be
installed). Every write that decides something (is this sequence new? does this interval overlap?)
runs in `write_transaction`, which serializes writers: a process-wide lock plus `BEGIN IMMEDIATE`
on SQLite, a transaction-scoped advisory lock per key on PostgreSQL. Unique constraints on
(device, sequence) and (request_id, device) are the last line of defence.

The rule that keeps SQLite from answering `database is locked`: every write, of every module, goes
through `write_transaction`. A transaction that begins deferred, reads, then writes (a plain
`Session.commit()`) fails at once in WAL mode when another writer committed after its read — the
busy timeout does not apply to it. Writers that take the write lock first (`BEGIN IMMEDIATE`) only
ever wait: for one another inside the process (the process lock), for other processes up to the
busy timeout. If the lock is still not free then, `DatabaseBusy` is raised with nothing written, so
a caller (an HTTP client, the next tick) may retry the whole decision. `observe_writes` lets the
metrics time each write transaction (lock wait and total).

Integers are stored as signed 64-bit columns; callers keep sequence numbers, timestamps and request
ids below 2**63 (the ingest rejects larger ones before they reach this module).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from eth_utils import keccak, to_checksum_address
from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, UniqueConstraint, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, create_engine, func, select

from oracle import meter_partitions
from protocol.meter import Commitment
from protocol.sqlite import make_durable

logger = logging.getLogger(__name__)

MAX_DB_INT = 2**63 - 1
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


class MeterIdRecord(SQLModel, table=True):
    """A meter's small integer id (assigned at its first accepted batch, never changed)."""

    __tablename__ = "meters"

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=42, unique=True)


class SignedBatchRecord(SQLModel, table=True):
    """One accepted meter batch exactly as signed (oracle.meter_store)."""

    __tablename__ = "signed_batches"
    __table_args__ = (
        UniqueConstraint("meter", "sequence", name="uq_signed_batches_meter_sequence"),
        Index("ix_signed_batches_start", "start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    meter: int = Field(sa_column=Column(Integer, nullable=False))
    sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    start: int = Field(sa_column=Column(BigInteger, nullable=False))
    interval_seconds: int = Field(sa_column=Column(Integer, nullable=False))
    readings: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    digest: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    gap_expected: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class MeterDayRecord(SQLModel, table=True):
    """One meter's readings of one UTC day, packed (oracle.meter_store)."""

    __tablename__ = "meter_days"
    # PostgreSQL: partitioned by day (oracle.meter_partitions); SQLite ignores the clause.
    __table_args__ = {"sqlite_with_rowid": False, "postgresql_partition_by": "RANGE (day)"}

    meter: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    day: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    interval_seconds: int = Field(sa_column=Column(Integer, nullable=False))
    readings: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    present: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LegacyMeterBatchRecord(SQLModel, table=True):
    """A batch as stored before the compact store (readings as JSON text): read once, by `init_db`,
    to move an upgraded oracle's data to `signed_batches` and `meter_days`."""

    __tablename__ = "meter_batches"
    __table_args__ = (
        UniqueConstraint("device", "sequence", name="uq_meter_batches_device_sequence"),
        # Overlap checks and the settlement's range query scan a device's batches ending after a time.
        Index("ix_meter_batches_device_end", "device", "end"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device: str = Field(max_length=42)
    sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    start: int = Field(sa_column=Column(BigInteger, nullable=False))
    end: int = Field(sa_column=Column(BigInteger, nullable=False))
    interval_seconds: int = Field(sa_column=Column(BigInteger, nullable=False))
    readings: str
    readings_hash: str = Field(max_length=66)
    digest: str = Field(max_length=66)
    signature: str
    ack: str
    received_at: int = Field(sa_column=Column(BigInteger, nullable=False))

    def readings_list(self) -> list[int]:
        """The readings as integers (Wh per interval, in order)."""
        return [int(value) for value in json.loads(self.readings)]


class CommitmentRecord(SQLModel, table=True):
    """One accepted, signed commitment of a device to a request."""

    __tablename__ = "commitments"
    __table_args__ = (UniqueConstraint("request_id", "device", name="uq_commitments_request_device"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    device: str = Field(max_length=42)
    watts: int = Field(sa_column=Column(BigInteger, nullable=False))
    digest: str = Field(max_length=66)
    signature: str
    ack: str
    received_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The offer (issue 14): prices per kWh as decimal strings (uint128 does not fit a SQL integer).
    min_price: str = Field(default="0", max_length=40)
    extra_watts: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    extra_min_price: str = Field(default="0", max_length=40)
    min_availability_price: str = Field(default="0", max_length=40)

    def to_commitment(self) -> Commitment:
        """The signed protocol message this record stores (re-verifiable)."""
        return Commitment(self.request_id, self.device, self.watts, int(self.min_price), self.extra_watts,
                          int(self.extra_min_price), int(self.min_availability_price),
                          signature=bytes.fromhex(self.signature.removeprefix("0x")))


# Columns added after a table was first created: (table, column, SQL type and default); init_db adds
# the missing ones to an existing database, so an oracle upgraded in place keeps its data.
_ADDED_COLUMNS = (
    ("commitments", "min_price", "VARCHAR(40) NOT NULL DEFAULT '0'"),
    ("commitments", "extra_watts", "BIGINT NOT NULL DEFAULT 0"),
    ("commitments", "extra_min_price", "VARCHAR(40) NOT NULL DEFAULT '0'"),
    ("commitments", "min_availability_price", "VARCHAR(40) NOT NULL DEFAULT '0'"),
)


class SequenceGap(SQLModel, table=True):
    """Sequences [expected, received) of a device that were skipped when `received` arrived.

    `filled_at` is set once every skipped sequence has been stored (late deliveries).
    """

    __tablename__ = "sequence_gaps"
    __table_args__ = (
        UniqueConstraint("device", "expected", name="uq_sequence_gaps_device_expected"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device: str = Field(max_length=42, index=True)
    expected: int = Field(sa_column=Column(BigInteger, nullable=False))
    received: int = Field(sa_column=Column(BigInteger, nullable=False))
    detected_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    filled_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class KeyValue(SQLModel, table=True):
    """Small pieces of service state (the chain view's cursor), as JSON text."""

    __tablename__ = "key_values"

    key: str = Field(primary_key=True, max_length=200)
    value: str


# The oracle's tables (the legacy batch table is only read, when an upgraded oracle has one).
TABLES = (MeterIdRecord.__table__, SignedBatchRecord.__table__, MeterDayRecord.__table__, CommitmentRecord.__table__,
          SequenceGap.__table__, KeyValue.__table__)


# ------------------------------------------------------------------------------------------------
# engine


def _normalize_url(url: str) -> str:
    if "://" not in url:  # a bare file path
        return f"sqlite:///{url}"
    for prefix in ("postgres://", "postgresql://"):  # psycopg 3 is the PostgreSQL driver
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def make_engine(url: str) -> Engine:
    """An engine for `url`: a SQLite URL or bare file path (WAL, synchronous=FULL), or PostgreSQL.

    SQLite connections are put in driver autocommit mode so this module issues BEGIN itself
    (`BEGIN IMMEDIATE` for writers, see `write_transaction`); every COMMIT is fsynced.
    """
    url = _normalize_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        make_durable(dbapi_connection, in_memory=in_memory, busy_timeout_seconds=SQLITE_BUSY_TIMEOUT_SECONDS)

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def init_db(engine: Engine) -> None:
    """Create the tables and indexes that do not exist yet, and add missing columns (idempotent).
    On PostgreSQL, meter_days is partitioned by day (oracle.meter_partitions.prepare).

    Runs as one write transaction, so it can race neither another process's init nor a writer."""
    with write_transaction(engine, "schema") as session:
        connection = session.connection()
        SQLModel.metadata.create_all(connection, tables=list(TABLES))
        if connection.dialect.name == "postgresql":
            meter_partitions.prepare(connection)  # meter_days by day, its default partition; converts an old table
        inspector = inspect(connection)
        for table, column, ddl in _ADDED_COLUMNS:
            if column not in {c["name"] for c in inspector.get_columns(table)}:
                connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")


class DatabaseBusy(Exception):
    """The database's write lock stayed taken (by another process) past the busy timeout; nothing
    was written, and the same write may be retried later."""


# (lock kind, seconds waited for the lock, seconds in all) -> None; see observe_writes.
WriteObserver = Callable[[str, float, float], None]

_process_locks: dict[int, threading.Lock] = {}
_process_locks_guard = threading.Lock()
_observers: dict[int, list[WriteObserver]] = {}
_in_write = threading.local()


def _engine_lock(engine: Engine) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(id(engine), threading.Lock())


def _advisory_key(lock_key: str) -> int:
    return int.from_bytes(keccak(text=lock_key)[:8], "big", signed=True)


def observe_writes(engine: Engine, observer: WriteObserver) -> None:
    """Call `observer(kind, wait_seconds, total_seconds)` after each write transaction on `engine`
    (kind: the lock key up to its first colon, e.g. "device", "request", "kv", "report")."""
    with _process_locks_guard:
        _observers.setdefault(id(engine), []).append(observer)


def is_locked_error(error: BaseException) -> bool:
    """Whether `error` is SQLite's "database is locked" / "database table is locked" / busy."""
    text_ = str(getattr(error, "orig", error)).lower()
    return isinstance(error, OperationalError) and ("locked" in text_ or "busy" in text_)


@contextmanager
def write_transaction(engine: Engine, lock_key: str) -> Iterator[Session]:
    """A session in one write transaction, serialized with other writers of `lock_key`.

    Commits when the block exits normally (the data is durable when this returns) and rolls back
    on an exception. Use it for check-then-insert decisions so two requests cannot both pass a
    check, and for every other write (see the module docstring): SQLite serializes all writers
    (process lock and BEGIN IMMEDIATE); PostgreSQL takes `pg_advisory_xact_lock` on a hash of
    `lock_key`. Raises DatabaseBusy when SQLite's lock stays taken past the busy timeout, and
    RuntimeError when called inside another write transaction of the same thread (it would wait
    for itself).
    """
    if getattr(_in_write, "active", False):
        raise RuntimeError(f"write_transaction({lock_key!r}) inside another write transaction of this thread")
    kind = lock_key.split(":", 1)[0]
    asked = time.perf_counter()
    waited = 0.0
    _in_write.active = True
    try:
        if engine.dialect.name == "sqlite":
            immediate = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with _engine_lock(engine):
                try:
                    with Session(immediate) as session, session.begin():
                        session.connection()  # BEGIN IMMEDIATE now, before the first read
                        waited = time.perf_counter() - asked
                        yield session
                except OperationalError as error:
                    if is_locked_error(error):
                        raise DatabaseBusy(f"the database stayed locked for {SQLITE_BUSY_TIMEOUT_SECONDS:g} s "
                                           "(another process is writing); nothing was written") from error
                    raise
        else:
            with Session(engine) as session, session.begin():
                if engine.dialect.name == "postgresql":
                    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _advisory_key(lock_key)})
                waited = time.perf_counter() - asked
                yield session
    finally:
        _in_write.active = False
    total = time.perf_counter() - asked
    for observer in _observers.get(id(engine), ()):
        observer(kind, waited, total)


# ------------------------------------------------------------------------------------------------
# queries the ingest uses inside its write transaction


def find_commitment(session: Session, request_id: int, device: str) -> CommitmentRecord | None:
    """The stored commitment of `device` to `request_id`, if any."""
    return session.exec(
        select(CommitmentRecord).where(CommitmentRecord.request_id == request_id, CommitmentRecord.device == device)
    ).first()


# ------------------------------------------------------------------------------------------------
# read helpers for the API and the settlement


def commitments_of_request(engine: Engine, request_id: int) -> list[CommitmentRecord]:
    """Every stored commitment to `request_id`, ordered by device address."""
    if not 0 <= request_id <= MAX_DB_INT:
        return []
    with Session(engine) as session:
        return list(session.exec(
            select(CommitmentRecord).where(CommitmentRecord.request_id == request_id).order_by(CommitmentRecord.device)
        ).all())


def gaps_of_device(engine: Engine, device: str | None = None, open_only: bool = False,
                   limit: int = 1000) -> list[tuple[SequenceGap, int]]:
    """Recorded sequence gaps (of one device, or all) with how many sequences are still missing."""
    with Session(engine) as session:
        statement = select(SequenceGap)
        if device is not None:
            statement = statement.where(SequenceGap.device == device)
        if open_only:
            statement = statement.where(SequenceGap.filled_at.is_(None))  # type: ignore[union-attr]
        gaps = list(session.exec(statement.order_by(SequenceGap.device, SequenceGap.expected).limit(limit)).all())
        count = text("SELECT COUNT(*) FROM signed_batches b JOIN meters m ON m.id = b.meter WHERE m.address = :device "
                     "AND b.sequence >= :low AND b.sequence < :high")
        return [(gap, (gap.received - gap.expected) - int(session.connection().execute(
            count, {"device": gap.device, "low": gap.expected, "high": gap.received}).scalar()))
            for gap in gaps]


def get_value(engine: Engine, key: str) -> Any | None:
    """The JSON value stored under `key`, or None."""
    with Session(engine) as session:
        row = session.get(KeyValue, key)
        return None if row is None else json.loads(row.value)


def put_value(engine: Engine, key: str, value: Any) -> None:
    """Store `value` (JSON-able) under `key`, durably, replacing what was there."""
    with write_transaction(engine, f"kv:{key}") as session:
        row = session.get(KeyValue, key)
        encoded = json.dumps(value, sort_keys=True, separators=(",", ":"))
        if row is None:
            session.add(KeyValue(key=key, value=encoded))
        else:
            row.value = encoded
            session.add(row)
