"""oracle.meter_retention and oracle.meter_partitions: the store keeps exactly the retained days.

On SQLite and on a real PostgreSQL server (a fresh database per test), batches signed with real
secp256k1 keys are stored over 110 days, pruned, and what is left is compared with what the rule
says: the day rows of the kept days and every batch ending after the cutoff, with their readings
unchanged. On PostgreSQL the days live in day partitions that the upkeep creates (rows that arrived
first sit in the default partition and are moved) and drops. The service's upkeep step runs on a
whole `oracle run` service over anvil.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import psycopg
import pytest
from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import make_url, text
from sqlmodel import Session
from waiting import wait_for

from oracle import db, meter_partitions, meter_retention, meter_store
from oracle.config import load_config
from oracle.epoch import HISTORY_DAYS
from oracle.service import attestation_loop, build_service, upkeep_step
from protocol.config_files import ConfigError
from protocol.fast_verify import RegistryDomainVerifier
from protocol.keys import write_keystore
from protocol.meter import MeterBatch
from protocol.requests import FlexRequest
from protocol.statuses import RequestStatus

INTERVAL = 900
DAY = 86_400
HOURS_8 = 32  # readings of an 8-hour batch
VERIFIER = RegistryDomainVerifier(31337, "0x" + "5f" * 20)
KEYS = [PrivateKey(keccak(text=f"meter-retention-{i}")) for i in range(3)]
DEVICES = [to_checksum_address(keccak(k.public_key.format(compressed=False)[1:])[-20:]) for k in KEYS]
TODAY = 1_790_000_000 // DAY  # the day "now" falls in
NOW = TODAY * DAY + 12 * 3_600
SPAN_DAYS = 110


def signed(index: int, start: int, readings: list[int], sequence: int) -> meter_store.BatchToStore:
    """A batch of device `index`, signed by its key, as the ingest hands it to the store."""
    unsigned = MeterBatch(DEVICES[index], start, INTERVAL, tuple(readings), sequence, b"")
    digest = VERIFIER.batch_digest(unsigned)
    raw = KEYS[index].sign_recoverable(digest, hasher=None)
    return meter_store.BatchToStore(DEVICES[index], sequence, start, INTERVAL, tuple(readings),
                                    raw[:64] + bytes([raw[64] + 27]), digest)


def history(first_day: int, last_day: int, offset_hours: int = 2) -> list[meter_store.BatchToStore]:
    """8-hour batches of every device from `first_day` 02:00 to `last_day`: one in three crosses midnight."""
    items = []
    for index in range(len(DEVICES)):
        rng = np.random.default_rng(index)
        t, sequence = first_day * DAY + offset_hours * 3_600, 0
        while t + HOURS_8 * INTERVAL <= (last_day + 1) * DAY:
            items.append(signed(index, t, [int(v) for v in rng.integers(0, 5_000, HOURS_8)], sequence))
            t += HOURS_8 * INTERVAL
            sequence += 1
    return items


def store(engine, items) -> None:
    answers = meter_store.store_batches(engine, items, now=NOW, max_span_seconds=DAY)
    assert all(isinstance(a, meter_store.Stored) and not a.replay for a in answers)


def day_rows(engine) -> set[tuple[int, int]]:
    with Session(engine) as session:
        return {(int(m), int(d)) for m, d in session.connection().execute(text("SELECT meter, day FROM meter_days"))}


def batch_keys(engine) -> set[tuple[str, int]]:
    with Session(engine) as session:
        return {(a, int(s)) for a, s in session.connection().execute(text(
            "SELECT m.address, b.sequence FROM signed_batches b JOIN meters m ON m.id = b.meter"))}


def ids(engine) -> dict[str, int]:
    with Session(engine) as session:
        return {a: int(i) for i, a in session.connection().execute(text("SELECT id, address FROM meters"))}


def expected_after(items, first_kept_day: int, engine) -> tuple[set, set]:
    """(day rows, batch keys) the rule keeps, computed from the batches themselves."""
    meter = ids(engine)
    days, batches = set(), set()
    for item in items:
        for day in range(item.start // DAY, (item.end - 1) // DAY + 1):
            if day >= first_kept_day:
                days.add((meter[item.device], day))
        if item.end > first_kept_day * DAY:
            batches.add((item.device, item.sequence))
    return days, batches


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = db.make_engine(str(tmp_path / "store.sqlite"))
    db.init_db(engine)
    yield engine
    meter_store.forget_ids(engine)
    engine.dispose()


@pytest.fixture
def pg_engine(postgres_url):
    """A fresh database on the session's PostgreSQL server (other tests drop and recreate theirs)."""
    url = make_url(postgres_url)
    name = f"retention_{uuid.uuid4().hex[:12]}"
    admin = dict(host=url.host, port=url.port, user=url.username, dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    engine = db.make_engine(url.set(database=name).render_as_string(hide_password=False))
    yield engine
    meter_store.forget_ids(engine)
    engine.dispose()
    with psycopg.connect(**admin) as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request):
    engine = request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")
    if request.param == "postgresql":
        db.init_db(engine)
    return engine


# ------------------------------------------------------------------------------------------------
# the rule


def test_a_retention_below_the_floor_is_refused_with_the_reason(monkeypatch):
    assert meter_retention.MIN_RETENTION_DAYS == HISTORY_DAYS + 2
    assert meter_retention.check_retention_days(meter_retention.MIN_RETENTION_DAYS) == HISTORY_DAYS + 2
    with pytest.raises(meter_retention.RetentionTooShort, match=f"below the floor of {HISTORY_DAYS + 2} days"):
        meter_retention.check_retention_days(HISTORY_DAYS + 1)
    with pytest.raises(ConfigError, match="retention_days = 30 is below the floor"):
        load_config(None, {"keystore": "oracle.json", "retention_days": 30})
    monkeypatch.setenv("NEGAWATT_ORACLE_RETENTION_DAYS", "93")
    with pytest.raises(ConfigError, match="retention_days = 93 is below the floor"):
        load_config(None, {"keystore": "oracle.json"})
    monkeypatch.setenv("NEGAWATT_ORACLE_RETENTION_DAYS", "200")
    assert load_config(None, {"keystore": "oracle.json"}).retention_days == 200
    monkeypatch.delenv("NEGAWATT_ORACLE_RETENTION_DAYS")
    assert load_config(None, {"keystore": "oracle.json"}).retention_days == meter_retention.DEFAULT_RETENTION_DAYS
    with pytest.raises(meter_retention.RetentionTooShort):
        meter_retention.StoreUpkeep(None, 10, needed_day=lambda now: None)  # type: ignore[arg-type]


def request(request_id: int, start: int, status: RequestStatus, duration: int = 3_600) -> FlexRequest:
    return FlexRequest(request_id, 4, start, start + duration, 1_000, 200_000, "0x" + "bb" * 20, status=status)


def test_only_requests_that_can_still_settle_hold_days_back():
    timeout = 7 * DAY
    old = NOW - 200 * DAY
    settled = [request(1, old, RequestStatus.SETTLED), request(2, old, RequestStatus.EXPIRED),
               request(3, old, RequestStatus.CANCELLED), request(4, old, RequestStatus.OPEN)]  # 4: past its timeout
    assert meter_retention.first_needed_day(settled, NOW, timeout) is None
    settling = request(5, old, RequestStatus.SETTLING)  # challenged, it reopens: its days stay
    open_ = request(6, NOW - 5 * DAY, RequestStatus.OPEN)
    assert meter_retention.first_needed_day([*settled, open_], NOW, timeout) == (
        open_.start - HISTORY_DAYS * DAY) // DAY
    assert meter_retention.first_needed_day([*settled, open_, settling], NOW, timeout) == (
        old - HISTORY_DAYS * DAY) // DAY


@settings(max_examples=200, deadline=None)
@given(now=st.integers(4_000 * DAY, 2**40), retention=st.integers(meter_retention.MIN_RETENTION_DAYS, 3_000),
       starts=st.lists(st.tuples(st.integers(0, 400 * DAY), st.integers(60, 2 * DAY),
                                 st.sampled_from(list(RequestStatus))), max_size=6),
       timeout=st.integers(0, 30 * DAY))
def test_the_cutoff_keeps_the_retention_and_every_settleable_request_history(now, retention, starts, timeout):
    requests = [request(i, now - back, status, duration) for i, (back, duration, status) in enumerate(starts)]
    cutoff = meter_retention.cutoff_day(now, retention, meter_retention.first_needed_day(requests, now, timeout))
    assert cutoff * DAY <= now - retention * DAY
    assert cutoff >= (now - retention * DAY) // DAY - 400 - HISTORY_DAYS
    for r in requests:
        if r.status is RequestStatus.SETTLING or (r.status is RequestStatus.OPEN and r.end + timeout > now):
            assert cutoff * DAY <= r.start - HISTORY_DAYS * DAY  # the whole history a settlement reads stays


# ------------------------------------------------------------------------------------------------
# pruning, on both engines


def test_prune_keeps_exactly_the_retained_days_and_their_batches(engine):
    items = history(TODAY - SPAN_DAYS, TODAY)
    store(engine, items)
    first_kept = meter_retention.cutoff_day(NOW, meter_retention.MIN_RETENTION_DAYS, None)
    assert first_kept == TODAY - meter_retention.MIN_RETENTION_DAYS
    kept_from, kept_to = first_kept * DAY, (TODAY + 1) * DAY
    before = meter_store.readings_matrix(engine, DEVICES, kept_from, kept_to, INTERVAL)
    days, batches = expected_after(items, first_kept, engine)
    assert day_rows(engine) > days and batch_keys(engine) > batches  # something to prune

    if engine.dialect.name == "postgresql":
        assert meter_retention.ensure_partitions(engine, first_kept, TODAY + meter_retention.AHEAD_DAYS) == (
            meter_retention.MIN_RETENTION_DAYS + 1 + meter_retention.AHEAD_DAYS)
    result = meter_retention.prune_store(engine, first_kept, chunk=97)

    assert day_rows(engine) == days
    assert batch_keys(engine) == batches
    assert result.batches == len(items) - len(batches)
    after = meter_store.readings_matrix(engine, DEVICES, kept_from, kept_to, INTERVAL)
    assert after.grid_start == before.grid_start and np.array_equal(after.loads, before.loads)
    assert (after.loads >= 0).sum() == sum(1 for b in items for k in range(len(b.readings))
                                           if kept_from <= b.start + k * INTERVAL < kept_to)
    gone = meter_store.readings_matrix(engine, DEVICES, (TODAY - SPAN_DAYS) * DAY, kept_from, INTERVAL)
    assert (gone.loads == -1).all()
    crossing = [b for b in items if b.start < kept_from < b.end]  # kept whole: they end inside the retention
    assert crossing and all(meter_store.find_batch(engine, b.device, b.sequence) is not None for b in crossing)
    if engine.dialect.name == "sqlite":
        assert result.transactions > 1 and result.day_rows == len(DEVICES) * (SPAN_DAYS - meter_retention.MIN_RETENTION_DAYS)
    else:
        assert result.partitions_dropped == 0 and result.day_rows == len(DEVICES) * (
            SPAN_DAYS - meter_retention.MIN_RETENTION_DAYS)  # they sat in the default partition

    again = meter_retention.prune_store(engine, first_kept)  # nothing left to prune: no write at all
    assert (again.batches, again.day_rows, again.partitions_dropped, again.transactions) == (0, 0, 0, 0)
    assert day_rows(engine) == days and batch_keys(engine) == batches


def test_an_unsettled_request_keeps_its_history_past_the_retention(engine):
    items = history(TODAY - SPAN_DAYS, TODAY)
    store(engine, items)
    settling = request(1, (TODAY - 10) * DAY + 3_600, RequestStatus.SETTLING)
    upkeep = meter_retention.StoreUpkeep(engine, meter_retention.MIN_RETENTION_DAYS,
                                         needed_day=lambda now: meter_retention.first_needed_day([settling], now, DAY))
    result = upkeep.tick(NOW)
    first_kept = TODAY - 10 - HISTORY_DAYS
    assert result is not None and result.cutoff_day == first_kept < TODAY - meter_retention.MIN_RETENTION_DAYS
    days, batches = expected_after(items, first_kept, engine)
    assert day_rows(engine) == days and batch_keys(engine) == batches
    assert upkeep.tick(NOW + 3_600) is None  # once a day
    assert upkeep.next_due == NOW + DAY


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(1, 96), min_size=1, max_size=30), gaps=st.integers(0, 100),
       cut=st.integers(0, 12), chunk=st.integers(1, 7))
def test_pruning_random_batches_removes_exactly_what_ends_before_the_cutoff(sqlite_engine, lengths, gaps, cut, chunk):
    with db.write_transaction(sqlite_engine, "reset") as session:
        for table in (db.SignedBatchRecord, db.MeterDayRecord, db.MeterIdRecord, db.SequenceGap):
            session.execute(table.__table__.delete())
    meter_store.forget_ids(sqlite_engine)
    base = TODAY - 20
    items, t = [], base * DAY + gaps * INTERVAL
    for sequence, length in enumerate(lengths):
        items.append(signed(sequence % 2, t, [sequence] * length, sequence // 2))
        t += length * INTERVAL + (sequence % 3) * INTERVAL
    store(sqlite_engine, items)
    first_kept = base + cut
    days, batches = expected_after(items, first_kept, sqlite_engine)
    meter_retention.prune_store(sqlite_engine, first_kept, chunk=chunk)
    assert day_rows(sqlite_engine) == days and batch_keys(sqlite_engine) == batches


# ------------------------------------------------------------------------------------------------
# PostgreSQL partitions


def partition_of(engine, meter: int, day: int) -> str:
    with Session(engine) as session:
        return session.connection().execute(text(
            "SELECT tableoid::regclass::text FROM meter_days WHERE meter = :m AND day = :d"), {"m": meter, "d": day}).scalar()


def test_postgres_partitions_appear_for_new_days_and_old_ones_are_dropped(pg_engine):
    db.init_db(pg_engine)
    with Session(pg_engine) as session:
        connection = session.connection()
        assert meter_partitions.kind(connection) == "partitioned" and meter_partitions.has_default(connection)
        assert meter_partitions.partitions(connection) == []
    items = history(TODAY - SPAN_DAYS, TODAY - 1)
    store(pg_engine, items)  # before any upkeep: everything waits in the default partition
    meter = ids(pg_engine)[DEVICES[0]]
    assert partition_of(pg_engine, meter, TODAY - 5) == meter_partitions.DEFAULT_PARTITION

    upkeep = meter_retention.StoreUpkeep(pg_engine, meter_retention.MIN_RETENTION_DAYS, needed_day=lambda now: None)
    first = upkeep.tick(NOW)
    first_kept = TODAY - meter_retention.MIN_RETENTION_DAYS
    with Session(pg_engine) as session:
        lows = [p.low for p in meter_partitions.partitions(session.connection())]
    assert lows == list(range(first_kept, TODAY + meter_retention.AHEAD_DAYS + 1))
    assert first.partitions_created == len(lows)
    assert partition_of(pg_engine, meter, TODAY - 5) == meter_partitions.partition_name(TODAY - 5)  # moved out
    with Session(pg_engine) as session:
        left = session.connection().execute(text(f"SELECT COUNT(*) FROM {meter_partitions.DEFAULT_PARTITION}")).scalar()
    assert left == 0
    days, batches = expected_after(items, first_kept, pg_engine)
    assert day_rows(pg_engine) == days and batch_keys(pg_engine) == batches

    # A batch of a new day lands in that day's partition, made ahead.
    fresh = [signed(0, TODAY * DAY + 3_600, [7, 8, 9], len([i for i in items if i.device == DEVICES[0]]))]
    store(pg_engine, fresh)
    assert partition_of(pg_engine, meter, TODAY) == meter_partitions.partition_name(TODAY)

    # Three days later the three oldest partitions are dropped whole, with the batches ending in them.
    later = NOW + 3 * DAY
    kept_before = meter_store.readings_matrix(pg_engine, DEVICES, (first_kept + 3) * DAY, (TODAY + 1) * DAY, INTERVAL)
    second = upkeep.tick(later)
    assert second is not None and second.partitions_dropped == 3 and second.partitions_created == 3
    with Session(pg_engine) as session:
        lows = [p.low for p in meter_partitions.partitions(session.connection())]
    assert lows == list(range(first_kept + 3, TODAY + 3 + meter_retention.AHEAD_DAYS + 1))
    days, batches = expected_after(items + fresh, first_kept + 3, pg_engine)
    assert day_rows(pg_engine) == days and batch_keys(pg_engine) == batches
    kept_after = meter_store.readings_matrix(pg_engine, DEVICES, (first_kept + 3) * DAY, (TODAY + 1) * DAY, INTERVAL)
    assert np.array_equal(kept_after.loads, kept_before.loads)


def test_postgres_converts_an_unpartitioned_meter_days_keeping_every_row(pg_engine):
    with pg_engine.begin() as connection:  # the table as an oracle before partitioning created it
        connection.exec_driver_sql("CREATE TABLE meter_days (meter INTEGER NOT NULL, day BIGINT NOT NULL, "
                                   "interval_seconds INTEGER NOT NULL, readings BYTEA NOT NULL, present BYTEA NOT NULL, "
                                   "PRIMARY KEY (meter, day))")
    assert db.MeterDayRecord.__table__.name == "meter_days"
    with db.write_transaction(pg_engine, "schema") as session:
        connection = session.connection()
        # create_all of every table but meter_days, as init_db would find them
        db.SQLModel.metadata.create_all(connection, tables=[t for t in db.TABLES if t.name != "meter_days"])
    with pg_engine.begin() as connection:
        assert meter_partitions.kind(connection) == "plain"
    items = history(TODAY - 4, TODAY)
    store(pg_engine, items)
    before = meter_store.readings_matrix(pg_engine, DEVICES, (TODAY - 4) * DAY, (TODAY + 1) * DAY, INTERVAL)
    rows = day_rows(pg_engine)

    db.init_db(pg_engine)  # converts
    with Session(pg_engine) as session:
        connection = session.connection()
        assert meter_partitions.kind(connection) == "partitioned"
        assert [p.low for p in meter_partitions.partitions(connection)] == list(range(TODAY - 4, TODAY + 1))
    assert day_rows(pg_engine) == rows
    after = meter_store.readings_matrix(pg_engine, DEVICES, (TODAY - 4) * DAY, (TODAY + 1) * DAY, INTERVAL)
    assert np.array_equal(after.loads, before.loads)
    db.init_db(pg_engine)  # idempotent
    assert day_rows(pg_engine) == rows


# ------------------------------------------------------------------------------------------------
# the service


@pytest.fixture
def oracle_service(shared_devnet, tmp_path):
    keystore = tmp_path / "oracle.json"
    write_keystore(keystore, shared_devnet.keys[6], "pw-retention", kdf="pbkdf2")
    (tmp_path / "password").write_text("pw-retention")
    config = tmp_path / "oracle.toml"
    config.write_text(
        f'rpc_url = "{shared_devnet.rpc_url}"\nmanifest = "{shared_devnet.manifest_path}"\n'
        f'database_url = "sqlite:///{tmp_path}/oracle.sqlite"\nkeystore = "{keystore}"\n'
        f'password_file = "{tmp_path / "password"}"\npassword_env = "NEGAWATT_TEST_RETENTION_UNSET"\n'
        f'poll_seconds = 0.2\nretention_days = {meter_retention.MIN_RETENTION_DAYS}\n')
    service = build_service(load_config(config))
    yield service
    service.attestor.http.close()
    meter_store.forget_ids(service.attestor.engine)
    service.attestor.engine.dispose()


def test_the_service_upkeep_step_prunes_once_a_day(oracle_service):
    service = oracle_service
    engine = service.attestor.engine
    now = int(service.attestor.clock())
    today = now // DAY
    items = history(today - SPAN_DAYS, today - 1)
    meter_store.store_batches(engine, items, now=now, max_span_seconds=DAY)
    assert service.upkeep.retention_days == meter_retention.MIN_RETENTION_DAYS

    result = upkeep_step(service)
    ran_at = service.upkeep.next_due - service.config.upkeep_every_seconds  # the service clock's now
    assert now <= ran_at <= int(service.attestor.clock())
    first_kept = (ran_at - meter_retention.MIN_RETENTION_DAYS * DAY) // DAY
    assert result is not None and result.cutoff_day == first_kept and result.batches > 0
    days, batches = expected_after(items, first_kept, engine)
    assert day_rows(engine) == days and batch_keys(engine) == batches
    assert upkeep_step(service) is None  # not due again before a day has passed

    # The attestation loop runs the same step: due again, it prunes on the loop's next tick.
    service.upkeep.next_due = 0
    service.upkeep.last = None
    stop = threading.Event()
    loop = threading.Thread(target=attestation_loop, args=(service, stop), daemon=True)
    loop.start()
    try:
        ran = wait_for(lambda: service.upkeep.last, what="the loop's upkeep")
    finally:
        stop.set()
        loop.join(timeout=30)
    assert ran.batches == 0 and ran.day_rows == 0 and service.upkeep.next_due > 0
    assert day_rows(engine) == days and batch_keys(engine) == batches
