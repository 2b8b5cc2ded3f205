"""oracle.peer_sync.pull_range between two real oracles (ingest apps with the range route, served by
uvicorn, SQLite stores, devices registered on anvil): a fresh oracle ends with exactly the peer's
batches; tampered rows in the peer's store are refused and counted while the rest is stored; pages
smaller than the data; batches held already are skipped; a peer that cuts a page, answers garbage or
goes down stops the pull, and the next pull resumes from the stored cursor."""

from __future__ import annotations

import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import text

from oracle import db, meter_store
from oracle.chain_view import ChainView
from oracle.ingest import Ack, Ingestor, IngestSettings
from oracle.ingest_api import create_ingest_app
from oracle.peer_sync import cursor_key, pull_range
from oracle.peer_sync_api import add_peer_sync_routes
from protocol.fast_verify import RegistryDomainVerifier
from protocol.meter import MeterBatch

DAY = 96 * 900


@pytest.fixture
def make_oracle(shared_devnet, tmp_path, serve_app):
    """Start oracles (ingest app + range route, own SQLite file) on the shared devnet: (url, ingestor)."""
    engines = []

    def make():
        web3, manifest = shared_devnet.web3(), shared_devnet.manifest()
        engine = db.make_engine(str(tmp_path / f"oracle-{len(engines)}.sqlite"))
        engines.append(engine)
        db.init_db(engine)
        verifier = RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry"))
        ingestor = Ingestor(engine, ChainView(web3, manifest, engine), verifier, IngestSettings(_env_file=None))
        app = create_ingest_app(ingestor)
        add_peer_sync_routes(app)
        return serve_app(app), ingestor

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def http():
    with httpx.Client(timeout=30) as client:
        yield client


def fill(chain_ops, ingestor, devices: int = 3, days: int = 2) -> tuple[list[MeterBatch], tuple[int, int]]:
    """`devices` fresh registered devices with `days` day-long batches each, stored at `ingestor`;
    returns them and the time range they span."""
    rng = random.Random(11)
    now = chain_ops.chain_time()
    first = chain_ops.past_start(now, 96 * days + 1)
    batches = []
    for _ in range(devices):
        key = chain_ops.register()
        batches += [chain_ops.batch(key, first + day * DAY, [rng.randrange(0, 400) for _ in range(96)], day)
                    for day in range(days)]
    answers = ingestor.accept_batches(batches, now)
    assert all(isinstance(a, Ack) and not a.replay for a in answers), answers
    return batches, (first, first + days * DAY)


def held(ingestor, span) -> dict[tuple[str, int], tuple]:
    """What a store holds in `span`: (device, sequence) -> (start, interval, readings, signature)."""
    return {(r.device, r.sequence): (r.start, r.interval_seconds, r.readings_list(), r.signature)
            for r in meter_store.batches_in_range(ingestor.engine, *span, limit=10_000)}


def test_a_fresh_oracle_ends_with_exactly_the_peers_batches(make_oracle, chain_ops, http):
    (peer_url, peer), (_, fresh) = make_oracle(), make_oracle()
    batches, span = fill(chain_ops, peer, devices=3, days=3)
    result = pull_range(fresh.engine, fresh, peer_url, *span, http)
    assert result.complete and result.stopped is None
    assert (result.received, result.stored, result.replays, sum(result.refused.values())) == (9, 9, 0, 0)
    assert held(fresh, span) == held(peer, span) and len(held(fresh, span)) == 9
    # Pulled again: the cursor is at the end, so nothing is listed; a new batch at the peer is the only one.
    assert pull_range(fresh.engine, fresh, peer_url, *span, http).received == 0
    late = chain_ops.batch(chain_ops.register(), span[0], [3] * 96, 0)
    assert isinstance(peer.accept_batch(late, chain_ops.chain_time()), Ack)
    again = pull_range(fresh.engine, fresh, peer_url, *span, http)
    assert (again.received, again.stored, again.complete) == (1, 1, True)
    assert held(fresh, span) == held(peer, span)


def test_pages_smaller_than_the_data_copy_all_of_it(make_oracle, chain_ops, http):
    (peer_url, peer), (_, fresh) = make_oracle(), make_oracle()
    _, span = fill(chain_ops, peer, devices=4, days=2)
    result = pull_range(fresh.engine, fresh, peer_url, *span, http, limit=3)
    assert (result.pages, result.received, result.stored, result.complete) == (3, 8, 8, True)
    assert held(fresh, span) == held(peer, span)


def test_batches_held_already_are_skipped_before_any_check(make_oracle, chain_ops, http):
    (peer_url, peer), (_, fresh) = make_oracle(), make_oracle()
    batches, span = fill(chain_ops, peer, devices=2, days=2)
    fresh.accept_batches(batches[:3], chain_ops.chain_time())  # as the nodes delivered them here too
    result = pull_range(fresh.engine, fresh, peer_url, *span, http)
    assert (result.received, result.skipped, result.stored, result.replays) == (4, 3, 1, 0)
    assert held(fresh, span) == held(peer, span)


def test_tampered_rows_of_the_peer_are_refused_and_the_rest_is_stored(make_oracle, chain_ops, http):
    (peer_url, peer), (_, fresh) = make_oracle(), make_oracle()
    batches, span = fill(chain_ops, peer, devices=3, days=2)
    records = meter_store.batches_in_range(peer.engine, *span)
    intruder = chain_ops.register()
    foreign = chain_ops.batch(intruder, records[2].start, records[2].readings_list(), records[2].sequence,
                              signer=intruder)  # a valid signature, of another key than the row's device
    swapped_to = chain_ops.register()
    with db.write_transaction(peer.engine, "tamper") as session:
        readings = records[0].readings_list()
        readings[5] += 1
        session.execute(text("UPDATE signed_batches SET readings = :r WHERE id = :id"),
                        {"r": meter_store.pack(readings), "id": records[0].id})
        swapped_id = session.execute(text("INSERT INTO meters (address) VALUES (:a) RETURNING id"),
                                     {"a": swapped_to.address}).scalar_one()
        session.execute(text("UPDATE signed_batches SET meter = :m WHERE id = :id"),
                        {"m": swapped_id, "id": records[1].id})
        session.execute(text("UPDATE signed_batches SET signature = :s WHERE id = :id"),
                        {"s": foreign.signature, "id": records[2].id})
    result = pull_range(fresh.engine, fresh, peer_url, *span, http)
    assert result.complete and result.received == 6
    assert dict(result.refused) == {"bad_signature": 3} and result.stored == 3
    got = held(fresh, span)
    assert set(got) == {(r.device, r.sequence) for r in records[3:]}
    assert all(got[key] == value for key, value in held(peer, span).items() if key in got)


class FlakyPeer:
    """A real HTTP server in front of a peer: relays its answers, or (by `mode`) cuts the body of a
    page in the middle, answers garbage, or is down (closed)."""

    def __init__(self, upstream: str):
        self.mode = "relay"
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.calls += 1
                answer = httpx.get(upstream + self.path, timeout=30)
                body = answer.content
                if outer.mode == "garbage":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-ndjson")
                    self.send_header("Content-Length", "11")
                    self.end_headers()
                    self.wfile.write(b"<html>oops\n")
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers["content-type"])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if outer.mode == "cut" else body)
                self.wfile.flush()
                if outer.mode == "cut":
                    self.close_connection = True

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("failure, reason", [("cut", "connection dropped"), ("garbage", "refused")])
def test_a_peer_failing_mid_pull_stops_it_and_the_next_pull_resumes(make_oracle, chain_ops, http, failure, reason):
    (peer_url, peer), (_, fresh) = make_oracle(), make_oracle()
    _, span = fill(chain_ops, peer, devices=4, days=2)
    flaky = FlakyPeer(peer_url)
    try:
        first = pull_range(fresh.engine, fresh, flaky.url, *span, http, limit=3, max_pages=1)
        assert (first.stored, first.complete, first.stopped) == (3, False, None)
        flaky.mode = failure
        stopped = pull_range(fresh.engine, fresh, flaky.url, *span, http, limit=3)
        assert stopped.stopped is not None and reason in stopped.stopped and not stopped.complete
        assert stopped.stored == 0 and len(held(fresh, span)) == 3  # nothing accepted is lost
        assert db.get_value(fresh.engine, cursor_key(flaky.url, *span)) == {"after": first.cursor}
        flaky.mode = "relay"
        calls = flaky.calls
        resumed = pull_range(fresh.engine, fresh, flaky.url, *span, http, limit=3)
        assert (resumed.stored, resumed.received, resumed.complete) == (5, 5, True)  # from the cursor, not the start
        assert flaky.calls - calls == 2
        assert held(fresh, span) == held(peer, span)
    finally:
        flaky.close()


def test_a_peer_that_is_down_stops_the_pull_with_the_reason(make_oracle, chain_ops, http):
    (peer_url, peer), (_, fresh) = make_oracle(), make_oracle()
    _, span = fill(chain_ops, peer, devices=1, days=2)
    flaky = FlakyPeer(peer_url)
    flaky.close()
    result = pull_range(fresh.engine, fresh, flaky.url, *span, http)
    assert result.stopped is not None and "unreachable" in result.stopped
    assert (result.pages, result.stored, result.complete) == (0, 0, False)


def test_an_attestor_pulls_the_requests_range_from_each_peer_once(make_oracle, chain_ops, http, shared_devnet):
    from eth_account import Account

    from oracle.attestation import Attestor, ChainState
    from oracle.baselines import HIGH_X_OF_Y, BaselineSpec
    from oracle.chain_view import RequestInfo, RequestStatus
    from oracle.epoch import OracleEconomics
    from oracle.settlement import SettlementParams
    from protocol.statuses import ReportStatus

    (peer_url, peer), (_, fresh) = make_oracle(), make_oracle()
    batches, span = fill(chain_ops, peer, devices=2, days=2)
    flaky = FlakyPeer(peer_url)  # counts the calls
    end = span[1] + 3_600
    request = RequestInfo(request_id=1, zone=4, start=end - 3_600, end=end, target_w=4_000, price_per_kwh=250_000,
                          payment_token="0x" + "bb" * 20, buyer="0x" + "b0" * 20, max_budget=10**9,
                          status=RequestStatus.OPEN)
    economics = OracleEconomics(params=SettlementParams(fee_account="0x" + "fe" * 20,
                                                        protocol_token="0x" + "aa" * 20, interval_seconds=900),
                                baseline=BaselineSpec(HIGH_X_OF_Y))
    attestor = Attestor(web3=shared_devnet.web3(), manifest=shared_devnet.manifest(), key=shared_devnet.keys[5],
                        engine=fresh.engine, chain_view=None, ingestor=fresh, economics=economics,  # type: ignore[arg-type]
                        clock=lambda: chain_ops.chain_time())
    state = ChainState(epoch=0, root=bytes(32), pending_digest=bytes(32), pending_status=ReportStatus.NONE,
                       pending_deadline=0, threshold=2, emission_budget=0,
                       oracles=((Account.create().address, flaky.url), (attestor.address, "http://me")),
                       timestamp=end)
    try:
        assert attestor.pull_missing_data(state, [request, request]) == 4
        assert flaky.calls == 1  # one page of the whole range, not one call per device
        assert held(fresh, span) == held(peer, span)
        assert attestor.pull_missing_data(state, [request]) == 0
    finally:
        attestor.http.close()
        flaky.close()
