"""The oracle's durable store: accepted meter batches and commitments, sequence gaps, chain cursor.

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
from sqlalchemy import BigInteger, Column, Index, UniqueConstraint, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, create_engine, func, select

from protocol.meter import Commitment
from protocol.sqlite import make_durable

logger = logging.getLogger(__name__)

MAX_DB_INT = 2**63 - 1
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


class MeterBatchRecord(SQLModel, table=True):
    """One accepted, signed meter batch (readings as a JSON array of integer Wh per interval)."""

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

    Runs as one write transaction, so it can race neither another process's init nor a writer."""
    with write_transaction(engine, "schema") as session:
        connection = session.connection()
        SQLModel.metadata.create_all(
            connection, tables=[MeterBatchRecord.__table__, CommitmentRecord.__table__, SequenceGap.__table__,
                                KeyValue.__table__])
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


def find_batch(session: Session, device: str, sequence: int) -> MeterBatchRecord | None:
    """The stored batch of `device` with `sequence`, if any."""
    return session.exec(
        select(MeterBatchRecord).where(MeterBatchRecord.device == device, MeterBatchRecord.sequence == sequence)
    ).first()


def find_overlapping_batch(session: Session, device: str, start: int, end: int) -> MeterBatchRecord | None:
    """A stored batch of `device` covering any second of [start, end), if any."""
    return session.exec(
        select(MeterBatchRecord)
        .where(MeterBatchRecord.device == device, MeterBatchRecord.end > start, MeterBatchRecord.start < end)
        .order_by(MeterBatchRecord.start)
        .limit(1)
    ).first()


def last_sequence(session: Session, device: str) -> int | None:
    """The highest stored sequence of `device` (None before its first batch)."""
    return session.exec(
        select(MeterBatchRecord.sequence).where(MeterBatchRecord.device == device)
        .order_by(MeterBatchRecord.sequence.desc()).limit(1)  # type: ignore[attr-defined]
    ).first()


def count_sequences(session: Session, device: str, low: int, high: int) -> int:
    """How many of the sequences [low, high) of `device` are stored."""
    return session.exec(
        select(func.count()).select_from(MeterBatchRecord).where(
            MeterBatchRecord.device == device, MeterBatchRecord.sequence >= low, MeterBatchRecord.sequence < high)
    ).one()


def open_gap_containing(session: Session, device: str, sequence: int) -> SequenceGap | None:
    """The unfilled gap of `device` whose skipped range contains `sequence`, if any."""
    return session.exec(
        select(SequenceGap).where(
            SequenceGap.device == device, SequenceGap.filled_at.is_(None),  # type: ignore[union-attr]
            SequenceGap.expected <= sequence, SequenceGap.received > sequence)
    ).first()


def find_commitment(session: Session, request_id: int, device: str) -> CommitmentRecord | None:
    """The stored commitment of `device` to `request_id`, if any."""
    return session.exec(
        select(CommitmentRecord).where(CommitmentRecord.request_id == request_id, CommitmentRecord.device == device)
    ).first()


# ------------------------------------------------------------------------------------------------
# read helpers for the API and the settlement


def readings_in_range(engine: Engine, devices: Iterable[str], from_ts: int, to_ts: int) -> dict[str, dict[int, int]]:
    """Every stored reading of `devices` whose interval starts in [from_ts, to_ts).

    Returns {checksummed device: {interval_start: wh}}, with an (empty) entry for every requested
    device. One query per call, whatever the number of devices.
    """
    wanted = sorted({to_checksum_address(device) for device in devices})
    result: dict[str, dict[int, int]] = {device: {} for device in wanted}
    if not wanted or from_ts >= to_ts:
        return result
    statement = select(MeterBatchRecord.device, MeterBatchRecord.start, MeterBatchRecord.interval_seconds,
                       MeterBatchRecord.readings).where(
        MeterBatchRecord.device.in_(wanted),  # type: ignore[attr-defined]
        MeterBatchRecord.end > from_ts, MeterBatchRecord.start < to_ts)
    with Session(engine) as session:
        rows = session.exec(statement).all()
    for device, start, interval, readings in rows:
        per_device = result[device]
        for index, wh in enumerate(json.loads(readings)):
            interval_start = start + index * interval
            if from_ts <= interval_start < to_ts:
                per_device[interval_start] = int(wh)
    return result


def batches_of_device(engine: Engine, device: str, from_ts: int = 0, to_ts: int = MAX_DB_INT,
                      limit: int = 1000) -> list[MeterBatchRecord]:
    """Stored batches of `device` overlapping [from_ts, to_ts), oldest first, at most `limit`."""
    with Session(engine) as session:
        return list(session.exec(
            select(MeterBatchRecord)
            .where(MeterBatchRecord.device == device, MeterBatchRecord.end > from_ts, MeterBatchRecord.start < to_ts)
            .order_by(MeterBatchRecord.start).limit(limit)
        ).all())


def batches_in_range(engine: Engine, from_ts: int, to_ts: int, after: int = 0,
                     limit: int = 1000) -> list[MeterBatchRecord]:
    """Stored batches of every device overlapping [from_ts, to_ts), in the order they were stored
    (by `id`), starting after the record id `after`; at most `limit`. Peers page through a time range
    with it: the next page starts after the last id of this one."""
    with Session(engine) as session:
        return list(session.exec(
            select(MeterBatchRecord)
            .where(MeterBatchRecord.id > after, MeterBatchRecord.end > from_ts, MeterBatchRecord.start < to_ts)
            .order_by(MeterBatchRecord.id).limit(limit)  # type: ignore[arg-type]
        ).all())


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
        return [(gap, (gap.received - gap.expected) - count_sequences(session, gap.device, gap.expected, gap.received))
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
