"""oracle.meter_store: the compact store gives back exactly what was signed, by batch and by day.

Batches are signed with real secp256k1 keys; what the store returns is re-verified with
protocol.fast_verify, and the day arrays are checked against the batches they came from.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from oracle import db, meter_store
from oracle.baselines import build_grid
from oracle.group_commit import GroupCommitter
from oracle.readings import MeterReadings
from protocol.fast_verify import RegistryDomainVerifier, recover_digest
from protocol.meter import MeterBatch

INTERVAL = 900
DAY = 86_400
VERIFIER = RegistryDomainVerifier(31337, "0x" + "5f" * 20)
KEYS = [PrivateKey(keccak(text=f"meter-store-{i}")) for i in range(3)]
DEVICES = [to_checksum_address(keccak(k.public_key.format(compressed=False)[1:])[-20:]) for k in KEYS]
BASE = 1_790_000_000 // DAY * DAY


def signed(index: int, start: int, readings: list[int], sequence: int) -> meter_store.BatchToStore:
    """A batch of device `index`, signed by its key; the item the ingest would hand the store."""
    unsigned = MeterBatch(DEVICES[index], start, INTERVAL, tuple(readings), sequence, b"")
    digest = VERIFIER.batch_digest(unsigned)
    raw = KEYS[index].sign_recoverable(digest, hasher=None)
    signature = raw[:64] + bytes([raw[64] + 27])
    return meter_store.BatchToStore(DEVICES[index], sequence, start, INTERVAL, tuple(readings), signature, digest)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = db.make_engine(str(tmp_path / "store.sqlite"))
    else:  # the session's real PostgreSQL server, its tables dropped so each test starts empty
        engine = db.make_engine(request.getfixturevalue("postgres_url"))
        with engine.begin() as connection:
            db.SQLModel.metadata.drop_all(connection)
    db.init_db(engine)
    yield engine
    meter_store.forget_ids(engine)
    engine.dispose()


# Per device: consecutive batches (lengths 1..96, gaps of 0..40 intervals between them), so they never
# overlap; they start anywhere in a day, so many cross midnight.
device_plans = st.lists(st.tuples(st.integers(1, 96), st.integers(0, 40), st.integers(0, 2**32 - 1)),
                        min_size=1, max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plans=st.lists(device_plans, min_size=1, max_size=3), offset=st.integers(0, 95),
       window=st.tuples(st.integers(-2 * 96, 4 * 96), st.integers(0, 4 * 96)), lower=st.booleans())
def test_stored_batches_and_days_are_exactly_the_signed_readings(engine, plans, offset, window, lower):
    with db.write_transaction(engine, "reset") as session:
        for table in (db.SignedBatchRecord, db.MeterDayRecord, db.MeterIdRecord, db.SequenceGap):
            session.execute(table.__table__.delete())
    meter_store.forget_ids(engine)
    items, expected = [], {}
    for index, plan in enumerate(plans):
        t = BASE + offset * INTERVAL
        for sequence, (length, gap, seed) in enumerate(plan):
            t += gap * INTERVAL
            readings = [int(v) for v in np.random.default_rng(seed).integers(0, 2**32, size=length, dtype=np.uint64)]
            items.append(signed(index, t, readings, sequence))
            expected.update({(DEVICES[index], t + k * INTERVAL): wh for k, wh in enumerate(readings)})
            t += length * INTERVAL
    answers = meter_store.store_batches(engine, items, now=BASE + 500 * DAY, max_span_seconds=DAY)
    assert all(isinstance(a, meter_store.Stored) and not a.replay for a in answers)

    for index in range(len(plans)):
        stored = meter_store.batches_of_device(engine, DEVICES[index])
        mine = [item for item in items if item.device == DEVICES[index]]
        assert [(b.sequence, b.start, b.readings) for b in stored] == [(i.sequence, i.start, i.readings) for i in mine]
        for batch, answer in zip(stored, [a for a, i in zip(answers, items) if i.device == DEVICES[index]]):
            assert recover_digest(VERIFIER.batch_digest(batch.message()), batch.signature_bytes) == DEVICES[index]
            assert batch.ack == answer.ack  # the ack is rebuilt byte for byte

    matrix = meter_store.readings_matrix(engine, DEVICES[:len(plans)], BASE - DAY, BASE + 30 * DAY, INTERVAL,
                                         dtype=np.int64)
    got = {(meter, t): wh for meter in matrix for t, wh in matrix[meter].items()}
    assert got == expected
    assert matrix.count() == len(expected) == meter_store.readings_count(engine)

    # A window that cuts days (rows partly outside the grid), asked for in any letter case: exactly
    # the readings inside it, on the oracle's int32 array (what the settlement loads).
    lo, hi = BASE + window[0] * INTERVAL, BASE + (window[0] + window[1]) * INTERVAL
    asked = [d.lower() if lower else d for d in DEVICES[:len(plans)]]
    part = meter_store.readings_in_range(engine, asked, lo, hi, INTERVAL)
    assert part.meters == sorted(DEVICES[:len(plans)]) and part.loads.dtype == np.int32
    inside = {key: np.int32(np.uint32(wh)) for key, wh in expected.items() if lo <= key[1] < hi}
    assert {(meter, t): wh for meter in part for t, wh in part[meter].items() if wh >= 0} == \
        {key: wh for key, wh in inside.items() if wh >= 0}
    assert part.count() == sum(1 for wh in inside.values() if wh >= 0)


@settings(max_examples=200, deadline=None)
@given(raw=st.lists(st.tuples(st.binary(min_size=20, max_size=20), st.sampled_from(["lower", "upper", "checksum"])),
                    max_size=20), known=st.integers(0, 20))
def test_checksummed_spells_every_address_as_eth_utils_does(raw, known):
    spelled = [to_checksum_address(b) for b, _ in raw]
    asked = ["0x" + s[2:].lower() if how == "lower" else "0x" + s[2:].upper() if how == "upper" else s
             for s, (_, how) in zip(spelled, raw)]
    assert meter_store.checksummed(asked) == spelled
    assert meter_store.checksummed(asked, {s: 1 for s in spelled[:known]}) == spelled
    with pytest.raises(ValueError):
        meter_store.checksummed(["0x" + "ab" * 19])


def test_a_replay_answers_the_stored_ack_and_a_conflict_or_overlap_is_refused(engine):
    first = signed(0, BASE + 95 * INTERVAL, [1, 2, 3], 0)  # crosses midnight
    [stored] = meter_store.store_batches(engine, [first], now=BASE + 10 * DAY, max_span_seconds=DAY)
    again, other, overlap, later = meter_store.store_batches(engine, [
        first, signed(0, BASE + 95 * INTERVAL, [1, 2, 4], 0), signed(0, BASE + 97 * INTERVAL, [5], 1),
        signed(0, BASE + 98 * INTERVAL, [6], 5)], now=BASE + 11 * DAY, max_span_seconds=DAY)
    assert again == meter_store.Stored(stored.ack, replay=True)
    assert other == meter_store.Refused("sequence_conflict", f"sequence 0 of {DEVICES[0]} is stored with other content")
    assert overlap.code == "overlapping_interval" and "stored batch 0" in overlap.detail
    assert json.loads(later.ack)["gap"] == {"expected": 1, "received": 5}
    gaps = db.gaps_of_device(engine, DEVICES[0])
    assert [(g.expected, g.received, missing) for g, missing in gaps] == [(1, 5, 4)]


def test_a_group_whose_transaction_fails_stores_nothing(engine):
    good = signed(1, BASE, [7, 8], 0)
    bad = meter_store.BatchToStore(DEVICES[1], 2**63, BASE + DAY, INTERVAL, (1,), b"\x00" * 65, b"\x00" * 32)
    with pytest.raises(Exception):  # a sequence the database cannot hold fails the whole group
        meter_store.store_batches(engine, [good, bad], now=BASE + DAY * 2, max_span_seconds=DAY)
    assert meter_store.batches_of_device(engine, DEVICES[1]) == []
    assert meter_store.readings_count(engine) == 0


def test_an_old_store_moves_over_with_its_acks(tmp_path):
    engine = db.make_engine(str(tmp_path / "old.sqlite"))
    with db.write_transaction(engine, "schema") as session:
        db.SQLModel.metadata.create_all(session.connection(), tables=[db.LegacyMeterBatchRecord.__table__])
        for sequence, start, readings in ((0, BASE, [10, 20]), (3, BASE + DAY - INTERVAL, [30, 40])):
            item = signed(2, start, readings, sequence)
            gap = {"expected": 1, "received": 3} if sequence == 3 else None
            ack = meter_store.batch_ack(DEVICES[2], sequence, start, item.end, INTERVAL, "0x" + item.digest.hex(),
                                        BASE + 7, gap)
            session.add(db.LegacyMeterBatchRecord(
                device=DEVICES[2], sequence=sequence, start=start, end=item.end, interval_seconds=INTERVAL,
                readings=json.dumps(readings), readings_hash="0x", digest="0x" + item.digest.hex(),
                signature="0x" + item.signature.hex(), ack=ack, received_at=BASE + 7))
    legacy_acks = [r.ack for r in Session(engine).exec(db.select(db.LegacyMeterBatchRecord)).all()]
    db.init_db(engine)
    assert meter_store.migrate_legacy(engine) == 2
    assert meter_store.migrate_legacy(engine) == 0  # the old table is gone
    moved = meter_store.batches_of_device(engine, DEVICES[2])
    assert [b.ack for b in moved] == legacy_acks
    matrix = meter_store.readings_matrix(engine, [DEVICES[2]], BASE, BASE + 2 * DAY, INTERVAL)
    assert dict(matrix[DEVICES[2]]) == {BASE: 10, BASE + INTERVAL: 20, BASE + DAY - INTERVAL: 30, BASE + DAY: 40}
    engine.dispose()


@settings(max_examples=60, deadline=None)
@given(data=st.dictionaries(st.sampled_from(DEVICES), st.dictionaries(st.integers(-300, 300), st.integers(0, 10_000),
                                                                      max_size=30), min_size=1),
       event=st.integers(-100, 200), length=st.integers(1, 12), history=st.integers(0, 3),
       chosen=st.sets(st.sampled_from(DEVICES + ["0x" + "ab" * 20]), min_size=1))
def test_build_grid_reads_an_array_as_it_reads_the_dicts(data, event, length, history, chosen):
    readings = {d: {BASE + k * INTERVAL: wh for k, wh in per.items()} for d, per in data.items()}
    matrix = MeterReadings.from_dicts(readings, INTERVAL)
    start, end = BASE + event * INTERVAL, BASE + (event + length) * INTERVAL
    from_dicts = build_grid({d: readings.get(d, {}) for d in chosen}, INTERVAL, start, end, history_days=history)
    from_array = build_grid({d: matrix.get(d, {}) for d in chosen}, INTERVAL, start, end, history_days=history)
    assert from_array[0] == from_dicts[0] and from_array[1] == from_dicts[1]
    assert np.array_equal(from_array[2], from_dicts[2])


def test_group_commit_answers_each_caller_after_its_group():
    groups: list[list[int]] = []
    gate = threading.Event()

    def write(items):
        gate.wait(5)
        groups.append(list(items))
        if -1 in items:
            raise ValueError("refused group")
        return [item * 2 for item in items]

    committer = GroupCommitter(write, max_group=50)
    answers: dict[int, object] = {}

    def call(n):
        try:
            answers[n] = committer.submit(n)
        except ValueError as error:
            answers[n] = error

    threads = [threading.Thread(target=call, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert answers == {n: n * 2 for n in range(20)}
    assert sum(len(g) for g in groups) == 20 and len(groups) < 20  # callers shared transactions
    with pytest.raises(ValueError):
        committer.submit(-1)
    assert committer.submit(4) == 8  # a failed group does not stop the next
