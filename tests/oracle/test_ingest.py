"""oracle.ingest (without HTTP) against a real anvil devnet: rule boundaries in integer arithmetic,
configurable rules, gaps, idempotent replays under concurrency, and the settlement's query helpers."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from eth_account import Account

from oracle import db, meter_store
from oracle.chain_view import ChainView
from oracle.ingest import REASONS, Ingestor, IngestSettings, Rejected
from protocol.fast_verify import RegistryDomainVerifier
from protocol.meter import MeterBatch


@pytest.fixture
def ingest(tmp_path, shared_devnet, chain_ops):
    """An Ingestor on a fresh SQLite file, its ChainView on the shared devnet; `make(rules)` for others."""
    manifest = shared_devnet.manifest()
    web3 = shared_devnet.web3()
    engines = []

    def make(**rules) -> Ingestor:
        engine = db.make_engine(str(tmp_path / f"ingest-{len(engines)}.sqlite"))
        engines.append(engine)
        db.init_db(engine)
        view = ChainView(web3, manifest, engine)
        verifier = RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry"))
        return Ingestor(engine, view, verifier, IngestSettings(_env_file=None, **rules))

    yield SimpleNamespace(default=make(), make=make)
    for engine in engines:
        engine.dispose()


@pytest.fixture(scope="module")
def odd_device(chain_ops):
    """A 1001 W device: 1001 * 900 / 3600 = 250.25 Wh per interval, x 1.2 = 300.3 Wh."""
    return chain_ops.register(capacity_w=1_001, zone=4)


NOW = (int(time.time()) // 900) * 900 + 100


def code_of(call) -> str:
    with pytest.raises(Rejected) as error:
        call()
    return error.value.code


def test_the_capacity_limit_is_exact_integer_arithmetic(ingest, chain_ops, odd_device):
    start = chain_ops.past_start(NOW, 4)
    ingestor = ingest.default
    assert code_of(lambda: ingestor.accept_batch(chain_ops.batch(odd_device, start, [301], 0), NOW)) == \
        "reading_out_of_range"
    assert ingestor.accept_batch(chain_ops.batch(odd_device, start, [300, 0], 0), NOW).replay is False
    strict = ingest.make(reading_tolerance_bps=10_000)  # exactly capacity: 250.25 Wh -> 250 allowed, 251 not
    assert code_of(lambda: strict.accept_batch(chain_ops.batch(odd_device, start, [251], 0), NOW)) == \
        "reading_out_of_range"
    strict.accept_batch(chain_ops.batch(odd_device, start, [250], 0), NOW)


def test_the_clock_skew_tolerance_is_inclusive(ingest, chain_ops, odd_device):
    now = 1_000 * 900 + 840  # the batch [1000*900, 1001*900) ends 60 s from now
    batch = chain_ops.batch(odd_device, 1_000 * 900, [1], 0)
    assert ingest.default.accept_batch(batch, now).body["end"] == now + 60
    later = chain_ops.batch(odd_device, 1_001 * 900, [1], 1)
    assert code_of(lambda: ingest.default.accept_batch(later, now)) == "future_interval"
    tolerant = ingest.make(clock_skew_seconds=960)
    tolerant.accept_batch(later, now)


def test_interval_and_batch_size_are_configurable(ingest, chain_ops, odd_device):
    five_minutes = ingest.make(interval_seconds=300, max_readings=4)
    start = (NOW // 300 - 10) * 300
    assert code_of(lambda: five_minutes.accept_batch(chain_ops.batch(odd_device, start, [1], 0), NOW)) == \
        "interval_not_allowed"
    assert code_of(lambda: five_minutes.accept_batch(
        chain_ops.batch(odd_device, start, [1] * 5, 0, interval=300), NOW)) == "too_many_readings"
    ack = five_minutes.accept_batch(chain_ops.batch(odd_device, start, [100] * 4, 0, interval=300), NOW).body
    assert ack["interval_seconds"] == 300 and ack["end"] == start + 1_200
    # 100 Wh in 5 min is 1.2 kW: within 1001 W x 1.2; 101 Wh is not
    assert code_of(lambda: five_minutes.accept_batch(
        chain_ops.batch(odd_device, start + 1_200, [101], 1, interval=300), NOW)) == "reading_out_of_range"


def test_every_rejection_stores_nothing_and_has_a_known_code(ingest, chain_ops, odd_device):
    ingestor = ingest.default
    start = chain_ops.past_start(NOW, 8)
    stranger = Account.create()
    attempts = [
        chain_ops.batch(odd_device, start, [1], 0, signer=stranger),
        MeterBatch(odd_device.address, start, 900, (1,), 0, b"\x01" * 65),
        chain_ops.batch(stranger, start, [1], 0),
        chain_ops.batch(odd_device, start + 1, [1], 0),
        chain_ops.batch(odd_device, start, [], 0),
        chain_ops.batch(odd_device, start, [1] * 97, 0),
        chain_ops.batch(odd_device, start, [10**6], 0),
        MeterBatch(odd_device.address, start, 900, (1,), 2**63),  # cannot be stored
    ]
    for batch in attempts:
        with pytest.raises(Rejected) as error:
            ingestor.accept_batch(batch, NOW)
        assert error.value.code in REASONS and error.value.status == REASONS[error.value.code][0]
    assert meter_store.batches_of_device(ingestor.engine, odd_device.address) == []
    assert meter_store.batches_of_device(ingestor.engine, stranger.address) == []


def test_a_replay_after_deactivation_still_returns_the_stored_ack(ingest, chain_ops):
    device = chain_ops.register()
    batch = chain_ops.batch(device, chain_ops.past_start(NOW, 3), [5], 0)
    first = ingest.default.accept_batch(batch, NOW)
    chain_ops.deactivate(device.address)
    ingest.default.chain_view.sync()
    again = ingest.default.accept_batch(batch, NOW + 3_600)
    assert again.replay and again.json == first.json
    nxt = chain_ops.batch(device, chain_ops.past_start(NOW, 2), [5], 1)
    assert code_of(lambda: ingest.default.accept_batch(nxt, NOW)) == "device_inactive"


def test_several_gaps_are_tracked_until_each_is_filled(ingest, chain_ops):
    device = chain_ops.register()
    base = chain_ops.past_start(NOW, 30)
    ingestor = ingest.default

    def accept(sequence):
        return ingestor.accept_batch(chain_ops.batch(device, base + sequence * 900, [1], sequence), NOW).body["gap"]

    assert accept(2) == {"expected": 0, "received": 2}  # the first batch seen skipped 0 and 1
    assert accept(3) is None
    assert accept(7) == {"expected": 4, "received": 7}
    assert accept(5) is None
    assert accept(0) is None

    def state():
        return [(g.expected, g.received, missing, g.filled_at is not None)
                for g, missing in db.gaps_of_device(ingestor.engine, device.address)]

    assert state() == [(0, 2, 1, False), (4, 7, 2, False)]
    accept(1)
    assert state() == [(0, 2, 0, True), (4, 7, 2, False)]
    accept(4)
    accept(6)
    assert state() == [(0, 2, 0, True), (4, 7, 0, True)]
    assert db.gaps_of_device(ingestor.engine, device.address, open_only=True) == []


def _deliver_at_once(ingestor, batches) -> list:
    """Deliver every batch from its own thread at the same moment; acks or rejection codes."""
    results: list = []
    barrier = threading.Barrier(len(batches))

    def deliver(batch):
        barrier.wait()
        try:
            results.append(ingestor.accept_batch(batch, NOW))
        except Rejected as error:
            results.append(error.code)

    threads = [threading.Thread(target=deliver, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_deliveries_of_one_batch_store_it_once_with_one_ack(ingest, chain_ops):
    device = chain_ops.register()
    batch = chain_ops.batch(device, chain_ops.past_start(NOW, 5), [7, 8], 0)
    acks = _deliver_at_once(ingest.default, [batch] * 16)
    assert len({ack.json for ack in acks}) == 1
    assert sorted(ack.replay for ack in acks) == [False] + [True] * 15
    assert [b.sequence for b in meter_store.batches_of_device(ingest.default.engine, device.address)] == [0]


def test_concurrent_batches_covering_one_interval_store_exactly_one(ingest, chain_ops):
    device = chain_ops.register()
    start = chain_ops.past_start(NOW, 5)
    results = _deliver_at_once(ingest.default, [chain_ops.batch(device, start, [1], seq) for seq in range(8)])
    accepted = [r for r in results if not isinstance(r, str)]
    assert len(accepted) == 1 and results.count("overlapping_interval") == 7
    stored = meter_store.batches_of_device(ingest.default.engine, device.address)
    assert [b.sequence for b in stored] == [accepted[0].body["sequence"]]


def test_readings_in_range_is_one_map_per_device(ingest, chain_ops):
    a, b = chain_ops.register(), chain_ops.register()
    ingestor = ingest.default
    base = chain_ops.past_start(NOW, 20)
    ingestor.accept_batch(chain_ops.batch(a, base, [1, 2, 3, 4], 0), NOW)
    ingestor.accept_batch(chain_ops.batch(a, base + 3_600, [5], 1), NOW)
    ingestor.accept_batch(chain_ops.batch(b, base + 1_800, [9, 9], 0), NOW)
    silent = Account.create().address
    window = meter_store.readings_in_range(ingestor.engine, [a.address, b.address, silent], base + 900, base + 3_600)
    assert window[a.address] == {base + 900: 2, base + 1_800: 3, base + 2_700: 4}
    assert window[b.address] == {base + 1_800: 9, base + 2_700: 9}
    assert window[silent] == {}
    everything = meter_store.readings_in_range(ingestor.engine, [a.address], 0, 2**62)
    assert sorted(everything[a.address].values()) == [1, 2, 3, 4, 5]
    record = meter_store.batches_of_device(ingestor.engine, a.address)[0]
    assert record.readings_list() == [1, 2, 3, 4] and json.loads(record.ack)["sequence"] == 0


def test_commitments_of_a_request_are_listed_for_the_settlement(ingest, chain_ops):
    first, second = chain_ops.register(capacity_w=3_000), chain_ops.register(capacity_w=4_000)
    request_id = chain_ops.open_request(zone=4)
    now = chain_ops.chain_time()
    ingestor = ingest.default
    ingestor.accept_commitment(chain_ops.commitment(second, request_id, 4_000), now)
    ingestor.accept_commitment(chain_ops.commitment(first, request_id, 2_500), now)
    assert ingestor.accept_commitment(chain_ops.commitment(first, request_id, 2_500), now + 5).replay
    records = db.commitments_of_request(ingestor.engine, request_id)
    assert sorted((r.device, r.watts) for r in records) == sorted([(first.address, 2_500), (second.address, 4_000)])
    assert db.commitments_of_request(ingestor.engine, request_id + 1) == []
    assert db.commitments_of_request(ingestor.engine, 2**80) == []


def test_a_request_opened_after_start_is_found_and_a_cancellation_is_seen_after_sync(ingest, chain_ops):
    device = chain_ops.register()
    ingestor = ingest.default
    ingestor.chain_view.sync()
    request_id = chain_ops.open_request(zone=4)
    now = chain_ops.chain_time()
    ingestor.accept_commitment(chain_ops.commitment(device, request_id, 100), now)  # unknown -> sync -> found
    other = chain_ops.register()
    chain_ops.cancel(request_id)
    ingestor.chain_view.sync()
    assert code_of(lambda: ingestor.accept_commitment(chain_ops.commitment(other, request_id, 100), now)) == \
        "request_not_open"


def test_an_offer_asking_more_availability_than_the_request_pays_is_refused(ingest, chain_ops):
    device = chain_ops.register(capacity_w=3_000)
    ingestor = ingest.default
    plain = chain_ops.open_request(zone=4)  # pays no availability: only offers asking none can clear
    now = chain_ops.chain_time()
    with pytest.raises(Rejected) as refused:
        ingestor.accept_commitment(chain_ops.commitment(device, plain, 1_000, availability=1), now)
    assert refused.value.code == "offer_above_ceiling" and "pays no availability" in str(refused.value)
    start = chain_ops.chain_time() + 3_600
    chain_ops.buyer.send(chain_ops.stablecoin.functions.mint(chain_ops.buyer.address, 10**9))
    chain_ops.buyer.send(chain_ops.stablecoin.functions.approve(chain_ops.market.address, 10**9))
    chain_ops.buyer.send(chain_ops.market.functions.openRequestWithAvailability(
        4, start, start + 900, 5_000, 200_000, 40_000, chain_ops.stablecoin.address, 10**9))
    paying = chain_ops.market.functions.requestCount().call()
    ingestor.chain_view.sync()
    assert code_of(lambda: ingestor.accept_commitment(
        chain_ops.commitment(device, paying, 1_000, availability=40_001), now)) == "offer_above_ceiling"
    assert db.commitments_of_request(ingestor.engine, paying) == []  # a refusal stores nothing
    ingestor.accept_commitment(chain_ops.commitment(device, paying, 1_000, availability=40_000), now)
    stored = db.commitments_of_request(ingestor.engine, paying)
    assert [(r.watts, r.min_availability_price) for r in stored] == [(1_000, "40000")]
    assert stored[0].to_commitment().signer(chain_ops.chain_id, chain_ops.registry.address) == device.address


def test_an_offer_past_its_sites_tested_capability_is_refused(ingest, chain_ops):
    # issue 14's bad input: a site's offers to one request may not exceed its capability cap (the
    # tested W, or the probationary cap); the second device of the site would take it past 3,000 W
    site = chain_ops.register_site()
    heater = chain_ops.register_at_site(site.address, capacity_w=3_000)
    pump = chain_ops.register_at_site(site.address, capacity_w=3_000)
    lone = chain_ops.register(capacity_w=4_000)  # metered on its own: no site, no site cap
    request_id = chain_ops.open_request(zone=4)
    now = chain_ops.chain_time()
    ingestor = ingest.default
    asked = []
    ingestor.site_cap = lambda s: asked.append(s) or 3_000
    try:
        ingestor.accept_commitment(chain_ops.commitment(heater, request_id, 2_000), now)
        with pytest.raises(Rejected) as refused:
            ingestor.accept_commitment(chain_ops.commitment(pump, request_id, 1_500), now)
        assert refused.value.code == "above_tested_capability" and refused.value.status == 422
        assert "at most 3000 W" in str(refused.value) and "already offer 2000 W" in str(refused.value)
        assert [r.device for r in db.commitments_of_request(ingestor.engine, request_id)] == [heater.address]
        ingestor.accept_commitment(chain_ops.commitment(pump, request_id, 1_000), now)  # exactly the cap
        ingestor.accept_commitment(chain_ops.commitment(lone, request_id, 4_000), now)
        assert {a.lower() for a in asked} == {site.address.lower()}
    finally:
        ingestor.site_cap = lambda s: None
    assert sorted(r.watts for r in db.commitments_of_request(ingestor.engine, request_id)) == [1_000, 2_000, 4_000]
