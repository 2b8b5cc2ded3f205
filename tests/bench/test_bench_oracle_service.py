"""`python -m bench oracle-service` at a tiny N: a real anvil, a real `negawatt oracle run`, and a JSON
object with every figure, whose counts are exactly what was sent (not timings: those are the
bench's to report). Also: the bench's fast permit digests and batch signatures are the protocol's."""

from __future__ import annotations

import json

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.oracle_service_data import BodyMaker, PermitSigner, make_fleet, sign_digest
from protocol import eip712
from protocol.messages import decode_batch

SITES, HISTORY_DAYS, LIVE = 20, 10, 1  # the portfolio quality gate needs placebo days with history too
READINGS_PER_DAY = 96
KEYS = ("sites", "store", "register_seconds", "ingest_batches_per_s", "ingest_p50_ms", "ingest_p99_ms",
        "ingest_refused", "history_ingest_readings_per_s", "commitments_per_s", "store_bytes_per_reading",
        "store_readings", "store_readings_live", "store_readings_history", "settle_from_store_seconds",
        "load_seconds", "baseline_seconds", "settle_seconds", "merkle_seconds", "peer_sync_seconds",
        "oracle_rss_peak_mb", "settle_rss_peak_mb", "per_site_seconds")

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
uint32 = st.integers(0, 2**32 - 1)


@settings(max_examples=25, deadline=None)
@given(owner=addresses, device=addresses, site=addresses, kind=st.integers(0, 255), capacity=uint32, zone=uint32,
       nonce=st.integers(0, 2**256 - 1), deadline=st.integers(0, 2**256 - 1), chain_id=st.integers(1, 2**64))
def test_fast_permit_digests_are_eip712s(owner, device, site, kind, capacity, zone, nonce, deadline, chain_id):
    signer = PermitSigner(chain_id, "0x" + "ab" * 20)
    permit = {"owner": owner, "device": device, "kind": kind, "capacityW": capacity, "zone": zone, "nonce": nonce,
              "deadline": deadline}
    assert signer.digest("DevicePermit", permit) == eip712.digest("DevicePermit", permit, chain_id, signer.registry)
    at_site = {**{k: v for k, v in permit.items() if k != "zone"}, "site": site}
    assert signer.digest("DeviceAtSitePermit", at_site) == eip712.digest("DeviceAtSitePermit", at_site, chain_id,
                                                                         signer.registry)


def test_fast_signatures_are_the_device_keys():
    fleet = make_fleet(2, seed=b"test")
    meter = fleet.devices[1]
    assert Account.from_key(meter.key).address == meter.address
    digest = PermitSigner(31337, "0x" + "cd" * 20).digest("DevicePermit", {
        "owner": fleet.owners[1], "device": meter.address, "kind": 1, "capacityW": 3_000, "zone": 1, "nonce": 0,
        "deadline": 10})
    assert Account._recover_hash(digest, signature=sign_digest(meter.key, digest)) == meter.address
    maker = BodyMaker(31337, "0x" + "cd" * 20)
    batch = decode_batch(json.loads(maker.batch(meter, 900 * 7, [1, 2, 3], 4)))
    assert batch.readings == (1, 2, 3) and batch.sequence == 4
    assert batch.signer(31337, maker.registry) == meter.address
    tampered = decode_batch({**json.loads(maker.batch(meter, 900 * 7, [1, 2, 3], 4)), "readings": [1, 2, 4]})
    assert tampered.signer(31337, maker.registry) != meter.address


def test_tiny_run_reports_every_figure_with_exact_counts():
    from bench.oracle_service import run

    # 40 day-long batches a day in uploads of 15: three bulk uploads a day, the last one short
    figures = run(sites=SITES, store="sqlite", connections=4, live_intervals=LIVE, history_days=HISTORY_DAYS,
                  bulk_batches=15)
    json.dumps(figures)  # one JSON object
    assert not [key for key in KEYS if key not in figures]
    meters = 2 * SITES
    assert figures["sites"] == SITES and figures["store"] == "sqlite"
    assert figures["history_path"] == "POST /v1/meter-batches/bulk" and figures["history_batches_per_upload"] == 15
    # Everything sent was stored: no refusal anywhere, and the readings are exactly those sent.
    assert figures["ingest_refused"] == {} and figures["history_refused"] == {} and figures["commitments_refused"] == {}
    assert figures["ingest_batches"] == meters * LIVE
    assert figures["store_readings_live"] == meters * LIVE
    assert figures["store_readings_history"] == meters * (HISTORY_DAYS + 1) * READINGS_PER_DAY
    assert figures["store_readings"] == figures["store_readings_history"] + figures["store_readings_live"]
    # A fresh oracle took day E of every meter from the first, each batch verified.
    assert figures["peer_sync_batches"] == meters and figures["peer_sync_refused"] == 0
    # The settlement covered every site, found the curtailment and paid for it.
    assert figures["settled_units"] == SITES
    assert figures["settled_reasons"] == {}, figures["settled_reasons"]
    assert 0 < figures["settled_units_paid"] <= SITES and figures["settled_payout"] > 0
    assert figures["rewards_leaves"] > 0 and figures["load_calls"] >= 1
    # The settlement's bond book (the chain view's Staking events) is the eth_call reference's.
    assert figures["bond_owners"] == SITES and figures["bond_books_equal"] is True
    for key in ("register_seconds", "ingest_batches_per_s", "history_ingest_readings_per_s", "commitments_per_s",
                "store_bytes_per_reading", "settle_from_store_seconds", "peer_sync_seconds", "oracle_rss_peak_mb",
                "settle_rss_peak_mb"):
        assert figures[key] > 0, key
    parts = sum(figures[k] for k in ("load_seconds", "baseline_seconds", "settle_seconds", "merkle_seconds",
                                     "bond_read_seconds"))
    assert abs(parts - figures["settle_from_store_seconds"]) < 0.01
    assert figures["ingest_p50_ms"] <= figures["ingest_p99_ms"]
    assert set(figures["per_site_seconds"]) >= {"register", "ingest_live", "ingest_history", "settle", "peer_sync"}
