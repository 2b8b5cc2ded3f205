"""The oracle's store on PostgreSQL (DATABASE_URL): ingest over HTTP, replays, conflicts, gaps,
restart, and the report store, against a real PostgreSQL server started for the session."""

from __future__ import annotations

from sqlalchemy import text

from oracle import db, meter_store
from oracle.report_store import ReportStore
from oracle.settlement import DeviceInput, RequestInput, SettlementParams, settle_epoch
from oracle.report_store import report_document

INTERVAL = 900


def test_ingest_on_postgres_survives_a_restart(chain_ops, make_ingest_service, postgres_url):
    engine = db.make_engine(postgres_url)
    assert engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for table in ("meter_batches", "signed_batches", "meter_days", "meters", "commitments", "sequence_gaps"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    engine.dispose()

    service = make_ingest_service(chain_ops.devnet, database=postgres_url)
    device = chain_ops.register(capacity_w=4_000, zone=4)
    start = chain_ops.past_start(chain_ops.chain_time(), 10)
    first = chain_ops.batch(device, start, [100, 200], 0)
    created = service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(first))
    assert created.status_code == 201, created.text
    replay = service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(first))
    assert replay.status_code == 200 and replay.content == created.content

    conflict = chain_ops.batch(device, start, [100, 201], 0)
    rejected = service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(conflict))
    assert rejected.status_code == 409 and rejected.json()["code"] == "sequence_conflict"

    gapped = chain_ops.batch(device, start + 4 * INTERVAL, [300], 3)
    ack = service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(gapped)).json()
    assert ack["gap"] == {"expected": 1, "received": 3}

    request_id = chain_ops.open_request(zone=4, start_in=3_600)
    commitment = chain_ops.commitment(device, request_id, 1_500)
    assert service.client.post("/v1/commitments", json=chain_ops.commitment_payload(commitment)).status_code == 201

    # A new process on the same database: everything acknowledged is there, replays are identical.
    restarted = make_ingest_service(chain_ops.devnet, database=postgres_url)
    again = restarted.client.post("/v1/meter-batches", json=chain_ops.batch_payload(first))
    assert again.status_code == 200 and again.content == created.content
    readings = meter_store.readings_in_range(restarted.engine, [device.address], start, start + 10 * INTERVAL)
    assert readings == {device.address: {start: 100, start + INTERVAL: 200, start + 4 * INTERVAL: 300}}
    assert [(c.device, c.watts) for c in db.commitments_of_request(restarted.engine, request_id)] == [
        (device.address, 1_500)]
    gaps = db.gaps_of_device(restarted.engine, device.address)
    assert [(g.expected, g.received, missing) for g, missing in gaps] == [(1, 3, 2)]


def test_report_store_on_postgres(postgres_url):
    engine = db.make_engine(postgres_url)
    store = ReportStore(engine)
    owner, usd, nega = "0x" + "01" * 20, "0x" + "bb" * 20, "0x" + "aa" * 20
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token=nega, interval_seconds=INTERVAL)
    request = RequestInput(1, usd, 200_000, 10**9, 2, (DeviceInput("0x" + "11" * 20, owner, 4_000, (900, 1_000)),))
    settlement = settle_epoch(1, bytes(32), {}, [request], params, emission_budget=10**30)
    body = report_document(b"\x42" * 32, settlement, {})
    store.save(body, "computed")
    store.save(body, "computed")
    store.set_status(body.digest, "final")
    store.set_status(body.digest, "computed")  # never moves backwards
    assert store.get(body.digest) == (body, "final")
    assert store.final(1) == body == store.latest_final()
    engine.dispose()
