"""Operating an oracle: GET /metrics and GET /v1/ready of a running service, over real HTTP.

A whole `oracle run` service (oracle.service.build_service: chain, keystore, SQLite file, the
attestation loop in a thread) on the module's anvil is scraped before and after meter batches are
accepted, replayed and refused, and the counters must have moved by exactly that. Readiness is
checked against the conditions it names: the follower falling behind the head, the RPC gone (anvil
stopped), a database that does not open, no signing key.
"""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from uvicorn_server import serve
from waiting import wait_for

from oracle import db
from oracle.chain_view import RequestInfo
from oracle.config import load_config
from oracle.epoch import request_input
from oracle.ingest_api import create_ingest_app
from oracle.readiness import Readiness
from oracle.report_store import report_document
from oracle.service import attestation_loop, build_service
from oracle.settlement import settle_epoch
from protocol.keys import write_keystore
from protocol.statuses import StoredReportStatus

INTERVAL = 900


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of GET /metrics as {(name, sorted labels): value}."""
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def oracle(shared_devnet, tmp_path_factory):
    """A full oracle service on the module's anvil, served over HTTP, its attestation loop running."""
    folder = tmp_path_factory.mktemp("oracle")
    keystore = folder / "oracle.json"
    write_keystore(keystore, shared_devnet.keys[6], "pw-ops", kdf="pbkdf2")
    (folder / "password").write_text("pw-ops")
    config_path = folder / "oracle.toml"
    config_path.write_text(
        f'rpc_url = "{shared_devnet.rpc_url}"\nmanifest = "{shared_devnet.manifest_path}"\n'
        f'database_url = "sqlite:///{folder}/oracle.sqlite"\nkeystore = "{keystore}"\n'
        f'password_file = "{folder / "password"}"\npassword_env = "NEGAWATT_TEST_OPS_UNSET"\npoll_seconds = 0.2\n')
    service = build_service(load_config(config_path))
    service.chain_view.sync()
    url, server, thread = serve(service.app)
    stop = threading.Event()
    loop = threading.Thread(target=attestation_loop, args=(service, stop), daemon=True)
    loop.start()
    yield SimpleNamespace(service=service, url=url)
    stop.set()
    loop.join(timeout=30)
    server.should_exit = True
    thread.join(timeout=15)
    service.attestor.http.close()
    service.attestor.engine.dispose()


def test_metrics_count_accepted_replayed_and_refused_batches(oracle, chain_ops):
    device = chain_ops.register(capacity_w=2_000)
    start = chain_ops.past_start(chain_ops.chain_time(), 10)
    first = chain_ops.batch(device, start, [100, 110, 120, 130], sequence=0)
    second = chain_ops.batch(device, start + 4 * INTERVAL, [90, 80], sequence=1)
    forged = chain_ops.batch(device, start + 6 * INTERVAL, [10], sequence=2, signer=chain_ops.register())
    before = scrape(oracle.url)

    answers = [httpx.post(f"{oracle.url}/v1/meter-batches", json=chain_ops.batch_payload(b), timeout=30).status_code
               for b in (first, second, first, forged)]
    invalid = httpx.post(f"{oracle.url}/v1/meter-batches", json={"device": "nope"}, timeout=30)
    assert answers == [201, 201, 200, 400] and invalid.status_code == 400

    after = scrape(oracle.url)
    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("negawatt_oracle_ingest_accepted_total", kind="meter_batch") == 2
    assert moved("negawatt_oracle_ingest_readings_total") == 6
    assert moved("negawatt_oracle_ingest_replays_total", kind="meter_batch") == 1
    assert moved("negawatt_oracle_ingest_rejected_total", kind="meter_batch", reason="bad_signature") == 1
    assert moved("negawatt_oracle_ingest_rejected_total", kind="meter_batch", reason="invalid_payload") == 1
    assert moved("negawatt_oracle_ingest_accepted_total", kind="commitment") == 0
    # The database calls behind them were timed: the meter store's write transactions (one per post here,
    # the replay answered inside its own: the posts came one after another) and their INSERTs.
    assert moved("negawatt_oracle_db_write_seconds_count", lock="meters") == 3
    assert moved("negawatt_oracle_db_statement_seconds_count", statement="insert") >= 2
    assert moved("negawatt_oracle_db_write_wait_seconds_count", lock="meters") == 3


def test_metrics_describe_the_chain_and_the_attestation(oracle, chain_ops):
    def ticked() -> dict | None:
        samples = scrape(oracle.url)
        return samples if value(samples, "negawatt_oracle_attestation_outcomes_total",
                                outcome="nothing_to_settle") > 0 else None

    samples = wait_for(ticked, 60, "an attestation tick", step=0.2)
    assert value(samples, "negawatt_oracle_chain_up") == 1
    head = value(samples, "negawatt_oracle_chain_head_block")
    followed = value(samples, "negawatt_oracle_chain_followed_block")
    lag = value(samples, "negawatt_oracle_chain_lag_blocks")
    assert head >= followed > 0 and lag == head - followed
    assert value(samples, "negawatt_oracle_pending_report", status="none") == 1
    assert value(samples, "negawatt_oracle_pending_report", status="pending") == 0
    assert value(samples, "negawatt_oracle_chain_epoch") == 0

    chain_ops.mine(3)  # not followed yet: the scrape reads the head itself, so the lag cannot go negative
    assert value(scrape(oracle.url), "negawatt_oracle_chain_lag_blocks") >= 0


def test_metrics_count_reports_by_state(oracle):
    store = oracle.service.attestor.store
    before = scrape(oracle.url)
    body = _report(oracle.service.attestor, epoch=41)
    store.save(body, StoredReportStatus.COMPUTED)
    middle = scrape(oracle.url)
    store.set_status(body.digest, StoredReportStatus.SUBMITTED)
    after = scrape(oracle.url)

    for state in ("computed", "submitted", "final", "discarded"):
        assert ("negawatt_oracle_reports", (("state", state),)) in after
    assert value(middle, "negawatt_oracle_reports", state="computed") == value(
        before, "negawatt_oracle_reports", state="computed") + 1
    assert value(after, "negawatt_oracle_reports", state="computed") == value(
        before, "negawatt_oracle_reports", state="computed")
    assert value(after, "negawatt_oracle_reports", state="submitted") == value(
        before, "negawatt_oracle_reports", state="submitted") + 1


def test_metrics_count_peer_errors_and_contacts(oracle):
    attestor = oracle.service.attestor
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    before = scrape(oracle.url)
    assert attestor._fetch(f"{dead}/v1/reports/1") is None
    assert attestor._fetch(f"{oracle.url}/v1/health") is not None
    after = scrape(oracle.url)
    assert value(after, "negawatt_oracle_peer_errors_total", peer=dead) == value(
        before, "negawatt_oracle_peer_errors_total", peer=dead) + 1
    assert value(after, "negawatt_oracle_peer_last_contact_timestamp_seconds", peer=oracle.url) > 0
    assert value(after, "negawatt_oracle_peer_errors_total", peer=oracle.url) == 0


# ---------------------------------------------------------------------------------------------- readiness


def test_a_running_oracle_is_ready_with_its_key_loaded(oracle):
    response = httpx.get(f"{oracle.url}/v1/ready", timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True
    assert set(body["checks"]) == {"database", "chain", "follower", "keys"}
    assert body["checks"]["keys"]["address"] == oracle.service.attestor.address
    assert body["checks"]["follower"]["lag"] <= body["checks"]["follower"]["allowedLag"] == 10
    assert httpx.get(f"{oracle.url}/v1/health", timeout=30).status_code == 200  # liveness stays separate


def test_ready_follows_the_follower_and_the_rpc(devnet, devnet_ops, make_ingest_service):
    service = make_ingest_service(devnet)  # no background poller: the view syncs only when told

    def ready() -> httpx.Response:
        return service.client.get("/v1/ready")

    never_synced = ready()
    assert never_synced.status_code == 503
    assert never_synced.headers["content-type"].startswith("application/problem+json")
    assert never_synced.json()["code"] == "not_ready" and never_synced.json()["notReady"] == ["follower"]
    assert "has not synced" in never_synced.json()["detail"]

    service.view.sync()
    assert ready().status_code == 200
    assert "keys" not in ready().json()["checks"]  # a bare ingest signs nothing

    devnet_ops.mine(11)  # allowed: confirmations (0) + 10 blocks
    behind = ready().json()
    assert behind["notReady"] == ["follower"] and behind["checks"]["follower"]["lag"] == 11
    assert "11 blocks behind" in behind["detail"]
    service.view.sync()
    assert ready().status_code == 200

    devnet.process.terminate()
    devnet.process.wait(timeout=10)
    gone = ready()
    assert gone.status_code == 503
    assert gone.json()["notReady"] == ["chain", "follower"]
    assert gone.json()["checks"]["database"]["ok"] is True
    assert gone.json()["detail"].startswith("chain: the RPC does not answer")


def test_ready_names_a_database_that_does_not_open_and_a_missing_key(shared_devnet, ingest_service, serve_app,
                                                                     tmp_path):
    ingest_service.view.sync()
    broken = db.make_engine(f"sqlite:///{tmp_path}/no-such-folder/oracle.sqlite")
    readiness = Readiness(broken, shared_devnet.rpc_url, ingest_service.view, require_key=True)
    url = serve_app(create_ingest_app(ingest_service.ingestor, readiness=readiness))
    response = httpx.get(f"{url}/v1/ready", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert body["notReady"] == ["database", "keys"]
    assert "unable to open database file" in body["checks"]["database"]["detail"]
    assert body["checks"]["keys"]["detail"] == "no signing key is loaded"
    assert body["checks"]["chain"]["ok"] is True and body["checks"]["chain"]["head"] > 0
    broken.dispose()


# ---------------------------------------------------------------------------------------------- helpers


def _report(attestor, epoch: int):
    """A real report document (one request, one device without data) with this hub's digest."""
    economics = attestor.economics
    request = RequestInfo(request_id=1, zone=1, start=1_700_000_000, end=1_700_003_600, target_w=4_000,
                          price_per_kwh=250_000, payment_token="0x" + "bb" * 20, buyer="0x" + "b0" * 20,
                          max_budget=10**9)
    request_in, records = request_input(request, [SimpleNamespace(device="0x" + "11" * 20, watts=1_000)], {}, {},
                                        economics)
    settlement = settle_epoch(epoch, bytes(32), {}, [request_in], economics.params, emission_budget=10**24)
    digest = settlement.report.digest(attestor.manifest.chainId, attestor.hub.address)
    return report_document(digest, settlement, {1: records})


def test_lag_is_not_a_number_when_the_rpc_is_unknown():
    """The chain gauges of a service without an RPC URL are NaN, not a made-up zero."""
    from oracle.metrics import OracleMetrics

    metrics = OracleMetrics()
    metrics.watch(chain=lambda: (None, 7))
    samples = {s.name: s.value for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples}
    assert samples["negawatt_oracle_chain_up"] == 0
    assert math.isnan(samples["negawatt_oracle_chain_lag_blocks"])
    assert samples["negawatt_oracle_chain_followed_block"] == 7
