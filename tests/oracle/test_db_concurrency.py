"""`database is locked` cannot happen inside one oracle, and outside writers make a 503, never a 500.

The devnet's oracles logged `sqlite3.OperationalError: database is locked`: the report store wrote
in a deferred transaction (read, then write, then commit), which SQLite in WAL mode refuses at once
when the ingest committed in between. Here nodes post meter batches over real HTTP, from several
threads, to an ingest on a real SQLite file, while the attestation's writers (reports computed,
submitted and finalized; allocations and the chain view's cursor) write to the same file from
other threads. Every post must be answered 201 and stored, and every attestation write must land.
"""

from __future__ import annotations

import sqlite3
import threading
from types import SimpleNamespace

import httpx
import pytest

from oracle import db, meter_store
from oracle.chain_view import RequestInfo
from oracle.epoch import OracleEconomics, request_input
from oracle.baselines import HIGH_X_OF_Y, BaselineSpec
from oracle.report_store import ReportStore, report_document
from oracle.settlement import SettlementParams, settle_epoch
from protocol.statuses import StoredReportStatus

DEVICES, BATCHES, REPORTS = 4, 12, 12
ECONOMICS = OracleEconomics(params=SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20,
                                                    interval_seconds=900), baseline=BaselineSpec(HIGH_X_OF_Y))


def report(epoch: int):
    """A real report document for `epoch` (its digest differs per epoch)."""
    request = RequestInfo(request_id=1, zone=1, start=1_700_000_000, end=1_700_003_600, target_w=4_000,
                          price_per_kwh=250_000, payment_token="0x" + "bb" * 20, buyer="0x" + "b0" * 20,
                          max_budget=10**9)
    request_in, records = request_input(request, [SimpleNamespace(device="0x" + "11" * 20, watts=1_000)], {}, {},
                                        ECONOMICS)
    settlement = settle_epoch(epoch, bytes(32), {}, [request_in], ECONOMICS.params, emission_budget=10**24)
    return report_document(settlement.report.digest(31337, "0x" + "cc" * 20), settlement, {1: records})


def test_concurrent_ingest_and_attestation_lose_nothing(shared_devnet, chain_ops, make_ingest_service):
    service = make_ingest_service(shared_devnet)
    devices = [chain_ops.register(capacity_w=2_000) for _ in range(DEVICES)]
    service.view.sync()
    first = chain_ops.past_start(chain_ops.chain_time(), 2 * BATCHES)
    payloads = {d.address: [chain_ops.batch_payload(chain_ops.batch(d, first + i * 2 * 900, [50, 60], sequence=i))
                            for i in range(BATCHES)] for d in devices}
    documents = [report(epoch) for epoch in range(1, REPORTS + 1)]
    store = ReportStore(service.engine)
    answers: list[tuple[int, str]] = []
    failures: list[str] = []
    go = threading.Barrier(DEVICES + 3)

    def node(address: str) -> None:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            go.wait()
            for payload in payloads[address]:
                response = client.post("/v1/meter-batches", json=payload)
                answers.append((response.status_code, response.text[:200]))

    def attestation() -> None:  # what the attestation loop writes: computed, then submitted, then final
        go.wait()
        try:
            for body in documents:
                store.save(body, StoredReportStatus.COMPUTED)
                store.set_status(body.digest, StoredReportStatus.SUBMITTED)
                store.save(body, StoredReportStatus.FINAL)
        except Exception as error:  # the failure this test exists for
            failures.append(f"report store: {error!r}"[:300])

    def clearing() -> None:  # the clearer's allocations and the chain view's cursor
        go.wait()
        try:
            for i in range(3 * REPORTS):
                db.put_value(service.engine, f"allocation:{i}", {"sites": list(range(i))})
                if i % 6 == 0:
                    chain_ops.mine()
                    service.view.sync()
        except Exception as error:
            failures.append(f"clearing: {error!r}"[:300])

    threads = [threading.Thread(target=node, args=(d.address,)) for d in devices]
    threads += [threading.Thread(target=attestation), threading.Thread(target=clearing)]
    for thread in threads:
        thread.start()
    go.wait()
    for thread in threads:
        thread.join(timeout=300)

    assert failures == []
    assert sorted(status for status, _ in answers) == [201] * (DEVICES * BATCHES), answers
    assert service.counts() == (DEVICES * BATCHES, 0, 0)
    for address in payloads:
        assert [b.sequence for b in meter_store.batches_of_device(service.engine, address)] == list(range(BATCHES))
    assert store.counts()["final"] == REPORTS
    assert [db.get_value(service.engine, f"allocation:{i}") for i in (0, 35)] == [{"sites": []},
                                                                                {"sites": list(range(35))}]


def test_a_writer_in_another_process_makes_a_503_and_nothing_is_half_stored(shared_devnet, chain_ops,
                                                                           make_ingest_service, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.3)  # the engine below waits 0.3 s, not 30 s
    database = tmp_path / "busy.sqlite"
    service = make_ingest_service(shared_devnet, database=database)
    device = chain_ops.register()
    service.view.sync()
    payload = chain_ops.batch_payload(chain_ops.batch(device, chain_ops.past_start(chain_ops.chain_time(), 4),
                                                      [10, 20], sequence=0))
    other = sqlite3.connect(database, isolation_level=None)  # another process's writer, holding the lock
    other.execute("BEGIN IMMEDIATE")
    try:
        busy = service.client.post("/v1/meter-batches", json=payload)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert busy.status_code == 503, busy.text
    assert busy.json()["code"] == "database_busy" and busy.headers["retry-after"] == "2"
    assert service.counts() == (0, 0, 0)

    retried = service.client.post("/v1/meter-batches", json=payload)  # what the node's outbox does next
    assert retried.status_code == 201
    assert service.counts() == (1, 0, 0)


def test_a_write_transaction_inside_another_is_refused(tmp_path):
    engine = db.make_engine(str(tmp_path / "nested.sqlite"))
    db.init_db(engine)
    with db.write_transaction(engine, "kv:a"):
        with pytest.raises(RuntimeError, match="inside another write transaction"):
            with db.write_transaction(engine, "kv:b"):
                pass
    db.put_value(engine, "a", 1)  # the guard was released
    assert db.get_value(engine, "a") == 1
    engine.dispose()
