"""Settlement from the store, in blocks of meters: compute_epoch on a real store (signed batches in
SQLite through meter_store.store_batches) gives the same EpochSettlement and report document
whether it loads each request whole or `block_meters` meters at a time (1, 7, all), and both equal
the in-memory settlement (settle_input + settle_epoch) of the very readings that were signed
(the done-criterion of issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address

from oracle import db, meter_store
from oracle.baselines import CAISO, HIGH_X_OF_Y, BaselineSpec
from oracle.chain_view import DeviceInfo, RequestInfo
from oracle.epoch import OracleEconomics, compute_epoch, settle_input
from oracle.report_store import report_document
from oracle.settlement import SettlementParams, settle_epoch
from protocol.fast_verify import RegistryDomainVerifier
from protocol.meter import MeterBatch
from protocol.units import SECONDS_PER_DAY as DAY

INTERVAL = 900
SLOTS = DAY // INTERVAL
VERIFIER = RegistryDomainVerifier(31337, "0x" + "5f" * 20)
EVENT_DAY = 1_790_000_000 // DAY  # day number of the event (a weekday)
HISTORY = 30  # days of readings before the event day
KEYS = [PrivateKey(keccak(text=f"epoch-blocks-{i}")) for i in range(15)]
METERS = [to_checksum_address(keccak(k.public_key.format(compressed=False)[1:])[-20:]) for k in KEYS]
UNSTORED = to_checksum_address("0x" + "77" * 20)  # committed, registered, never sent a reading
TOKEN = "0x" + "bb" * 20


def readings_of(seed: int) -> np.ndarray:
    """[meters, (HISTORY + 1) * SLOTS] Wh (-1: not sent): a daily shape, noise, missing slots and
    days, and curtailment during the events of some meters."""
    rng = np.random.default_rng(seed)
    t = np.arange((HISTORY + 1) * SLOTS)
    shape = 300 + 200 * np.sin(2 * np.pi * (t % SLOTS) / SLOTS)
    values = (shape[None, :] + rng.integers(0, 15, size=(len(METERS), t.size))).astype(np.int64)
    values[rng.random(values.shape) < 0.02] = -1
    for m in rng.choice(len(METERS), size=3, replace=False):  # a few meters miss whole days
        values[m, int(rng.integers(0, HISTORY)) * SLOTS:][:SLOTS] = -1
    event = HISTORY * SLOTS + 72  # 18:00 on the event day
    values[: len(METERS) // 2, event:event + 8] //= 4  # half of them curtail
    return values


def store(engine, values: np.ndarray) -> None:
    """Every run of present slots of each meter, as a batch signed by the meter's key."""
    items = []
    for m, (key, meter) in enumerate(zip(KEYS, METERS)):
        present = np.flatnonzero(values[m] >= 0)
        for sequence, run in enumerate(np.split(present, np.flatnonzero(np.diff(present) > 1) + 1)):
            start = (EVENT_DAY - HISTORY) * DAY + int(run[0]) * INTERVAL
            readings = tuple(int(v) for v in values[m, run[0]:run[-1] + 1])
            digest = VERIFIER.batch_digest(MeterBatch(meter, start, INTERVAL, readings, sequence, b""))
            raw = key.sign_recoverable(digest, hasher=None)
            items.append(meter_store.BatchToStore(meter, sequence, start, INTERVAL, readings,
                                                  raw[:64] + bytes([raw[64] + 27]), digest))
    answers = meter_store.store_batches(engine, items, (EVENT_DAY + 2) * DAY, 2 * DAY)
    assert all(isinstance(a, meter_store.Stored) for a in answers)


def as_dicts(values: np.ndarray) -> dict[str, dict[int, int]]:
    base = (EVENT_DAY - HISTORY) * DAY
    return {meter: {base + int(c) * INTERVAL: int(values[m, c]) for c in np.flatnonzero(values[m] >= 0)}
            for m, meter in enumerate(METERS)}


def commit(engine, request_id: int, watts: dict[str, int]) -> None:
    """Accepted commitments as the ingest stores them (their signatures are not what this test reads)."""
    with db.write_transaction(engine, "commitments") as session:
        for device, w in watts.items():
            session.add(db.CommitmentRecord(request_id=request_id, device=device, watts=w, digest="0x" + "00" * 32,
                                            signature="0x" + "00" * 65, ack="{}", received_at=EVENT_DAY * DAY))


@pytest.fixture
def engine(tmp_path):
    engine = db.make_engine(str(tmp_path / "store.sqlite"))
    db.init_db(engine)
    yield engine
    meter_store.forget_ids(engine)
    engine.dispose()


def request(request_id: int, start: int, end: int, zone: int) -> RequestInfo:
    return RequestInfo(request_id=request_id, zone=zone, start=start, end=end, target_w=40_000, price_per_kwh=250_000,
                       payment_token=TOKEN, buyer="0x" + "b0" * 20, max_budget=10**12)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_settlement_from_the_store_in_blocks_equals_the_in_memory_settlement(engine, seed):
    values = readings_of(seed)
    store(engine, values)
    event = EVENT_DAY * DAY + 18 * 3_600
    requests = [request(1, event, event + 7_200, zone=1),  # 8 whole intervals
                request(2, event + 450, event + 3_600, zone=2)]  # misaligned: 3 whole intervals
    devices = {m: DeviceInfo(address=m, owner="0x" + f"{i % 3 + 1:02x}" * 20, kind=1, capacity_w=7_400,
                             zone=1, active=i != 4) for i, m in enumerate(METERS + [UNSTORED])}
    watts = {1: {m: 500 + 10 * i for i, m in enumerate(METERS[:12] + [UNSTORED])},
             2: {m: 800 for m in METERS[5:]}}
    for request_id, committed in watts.items():
        commit(engine, request_id, committed)
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20, interval_seconds=INTERVAL)
    economics = OracleEconomics(params=params, baseline=BaselineSpec(HIGH_X_OF_Y, adjustment="ratio"),
                                zone_methods={2: BaselineSpec(CAISO, min_days=5)})

    def settle(block: int | None):
        settlement, details = compute_epoch(engine, requests, devices, economics, 3, b"\x01" * 32, {}, 10**24,
                                            block_meters=block)
        return settlement, details, report_document(b"\x02" * 32, settlement, details).model_dump()

    whole = settle(None)
    # the in-memory settlement of the readings that were signed
    readings = as_dicts(values)
    inputs, details = [], {}
    for r in requests:
        commitments = db.commitments_of_request(engine, r.request_id)
        request_in, records, _ = settle_input(r, commitments, devices, readings, economics)
        inputs.append(request_in)
        details[r.request_id] = records
    memory = settle_epoch(3, b"\x01" * 32, {}, inputs, params, 10**24)
    assert whole[0].report == memory.report and whole[0].requests == memory.requests
    assert whole[1] == details
    assert whole[2] == report_document(b"\x02" * 32, memory, details).model_dump()
    paid = [d for r in whole[0].requests for d in r.devices if d.payout > 0]
    assert paid and any(not d.eligible for r in whole[0].requests for d in r.devices)  # the data tests both sides

    for block in (1, 7, len(METERS) + 1):
        settlement, block_details, document = settle(block)
        assert settlement.report == whole[0].report and settlement.requests == whole[0].requests
        assert settlement.ledger == whole[0].ledger
        assert block_details == whole[1]
        assert document == whole[2]


def test_a_block_of_no_meters_is_refused(engine):
    from oracle.block_baselines import baselines_from_store

    with pytest.raises(ValueError, match="at least 1 meter"):
        baselines_from_store(engine, BaselineSpec(HIGH_X_OF_Y), METERS, EVENT_DAY * DAY, EVENT_DAY * DAY + 900, 92, 0)
