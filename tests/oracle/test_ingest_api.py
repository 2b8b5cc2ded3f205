"""oracle.ingest_api over real HTTP (uvicorn on loopback, httpx) against a real anvil devnet:
every reason code from a request that should produce it (with nothing stored), replays, gaps,
malformed input never producing a 5xx, and durability across a SIGKILL of the service process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from oracle import db, meter_store
from oracle.chain_view import ChainView
from oracle.ingest import Ingestor
from oracle.ingest_api import create_ingest_app
from protocol.fast_verify import RegistryDomainVerifier
from protocol.problems import ProblemNamespace, Reason

REPO = Path(__file__).resolve().parents[2]
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


@pytest.fixture(scope="module")
def world(chain_ops):
    """Devices and requests on the shared devnet, used by the tests of this module."""
    active = chain_ops.register(capacity_w=2_000, zone=4)        # 500 Wh per 15 min; 600 Wh with 1.2 tolerance
    zone7 = chain_ops.register(capacity_w=2_000, zone=7)
    inactive = chain_ops.register(capacity_w=2_000, zone=4)
    chain_ops.deactivate(inactive.address)
    open_request = chain_ops.open_request(zone=4, start_in=3_600)
    cancelled_request = chain_ops.open_request(zone=4, start_in=3_600)
    chain_ops.cancel(cancelled_request)
    return SimpleNamespace(
        active=active, zone7=zone7, inactive=inactive, stranger=Account.create(),
        open_request=open_request, cancelled_request=cancelled_request,
        request_start=chain_ops.market.functions.getRequest(open_request).call()[1],
    )


def assert_problem(response: httpx.Response, code: str, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert PROBLEM_KEYS <= body.keys()
    assert body["code"] == code and body["status"] == status
    assert body["type"] == ProblemNamespace.INGEST.value.format(code=code)
    Reason(code)  # every served code is one of protocol.problems' reasons
    return body


# ------------------------------------------------------------------------------------------------
# meter batches


def test_a_valid_batch_is_acknowledged_after_it_is_stored_and_served_for_re_verification(
        ingest_service, chain_ops, world):
    now = time.time()
    batch = chain_ops.batch(world.active, chain_ops.past_start(now, 4), [120, 0, 600], 0)
    response = ingest_service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(batch))
    assert response.status_code == 201, response.text
    ack = response.json()
    verifier = RegistryDomainVerifier(chain_ops.chain_id, chain_ops.registry.address)
    assert ack["status"] == "accepted" and ack["device"] == world.active.address and ack["sequence"] == 0
    assert ack["digest"] == "0x" + verifier.batch_digest(batch).hex()
    assert ack["gap"] is None and abs(ack["received_at"] - now) < 5
    assert ingest_service.counts() == (1, 0, 0)

    served = ingest_service.client.get("/v1/meter-batches", params={"device": world.active.address.lower()}).json()
    assert served == [{**chain_ops.batch_payload(batch), "readingsHash": served[0]["readingsHash"],
                       "digest": ack["digest"], "receivedAt": ack["received_at"]}]
    assert meter_store.readings_in_range(ingest_service.engine, [world.active.address], batch.start, batch.end) == {
        world.active.address: {batch.start: 120, batch.start + 900: 0, batch.start + 1800: 600}}


def test_a_replay_returns_the_identical_ack_and_stores_nothing(ingest_service, chain_ops, world):
    batch = chain_ops.batch(world.active, chain_ops.past_start(time.time(), 3), [10, 20], 0)
    first = ingest_service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(batch))
    ingest_service.clock.fixed = time.time() + 600  # a later delivery of the same batch
    again = ingest_service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(batch))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.content == first.content
    assert ingest_service.counts() == (1, 0, 0)


def _bad_signer(ops, w, now):
    batch = ops.batch(w.active, ops.past_start(now, 2), [1], 0, signer=w.stranger)
    return ops.batch_payload(batch)


def _truncated_signature(ops, w, now):
    payload = ops.batch_payload(ops.batch(w.active, ops.past_start(now, 2), [1], 0))
    return {**payload, "signature": payload["signature"][:-2]}


def _tampered(ops, w, now):
    payload = ops.batch_payload(ops.batch(w.active, ops.past_start(now, 2), [1], 0))
    return {**payload, "readings": [2]}


def _batch(device_of, readings=(1,), back=2, interval=900, offset=0, sequence=0):
    def build(ops, w, now):
        start = (int(now) // interval - back) * interval + offset
        return ops.batch_payload(ops.batch(device_of(w), start, list(readings), sequence, interval=interval))
    return build


BATCH_REJECTIONS = {
    "bad_signature: signed by another key": (_bad_signer, "bad_signature", 400),
    "bad_signature: 64-byte signature": (_truncated_signature, "bad_signature", 400),
    "bad_signature: readings changed after signing": (_tampered, "bad_signature", 400),
    "unknown_device": (_batch(lambda w: w.stranger), "unknown_device", 403),
    "device_inactive": (_batch(lambda w: w.inactive), "device_inactive", 403),
    "interval_not_allowed": (_batch(lambda w: w.active, interval=300), "interval_not_allowed", 422),
    "misaligned_interval": (_batch(lambda w: w.active, offset=60), "misaligned_interval", 422),
    "empty_batch": (_batch(lambda w: w.active, readings=()), "empty_batch", 422),
    "too_many_readings": (_batch(lambda w: w.active, readings=[1] * 97, back=100), "too_many_readings", 422),
    "future_interval": (_batch(lambda w: w.active, back=0), "future_interval", 422),
    "reading_out_of_range": (_batch(lambda w: w.active, readings=(600, 601)), "reading_out_of_range", 422),
}


@pytest.mark.parametrize("case", list(BATCH_REJECTIONS))
def test_a_batch_breaking_a_rule_is_rejected_with_its_code_and_not_stored(case, ingest_service, chain_ops, world):
    build, code, status = BATCH_REJECTIONS[case]
    now = time.time()
    ingest_service.clock.fixed = (int(now) // 900) * 900 + 100  # 100 s into the current interval
    response = ingest_service.client.post("/v1/meter-batches", json=build(chain_ops, world, ingest_service.clock()))
    body = assert_problem(response, code, status)
    assert body["detail"]
    assert ingest_service.counts() == (0, 0, 0)


def test_a_negative_reading_is_an_invalid_payload(ingest_service, chain_ops, world):
    payload = chain_ops.batch_payload(chain_ops.batch(world.active, chain_ops.past_start(time.time(), 2), [1], 0))
    body = assert_problem(ingest_service.client.post("/v1/meter-batches", json={**payload, "readings": [-1]}),
                          "invalid_payload", 400)
    assert body["errors"][0]["loc"] == ["readings", 0]
    assert ingest_service.counts() == (0, 0, 0)


def test_a_different_batch_under_a_stored_sequence_is_a_conflict(ingest_service, chain_ops, world):
    start = chain_ops.past_start(time.time(), 4)
    stored = chain_ops.batch(world.active, start, [100], 5)
    assert ingest_service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(stored)).status_code == 201
    counts = ingest_service.counts()
    other = chain_ops.batch(world.active, start, [101], 5)
    assert_problem(ingest_service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(other)),
                   "sequence_conflict", 409)
    assert ingest_service.counts() == counts
    served = ingest_service.client.get("/v1/meter-batches", params={"device": world.active.address}).json()
    assert [b["readings"] for b in served] == [[100]]


def test_a_batch_overlapping_a_stored_one_is_rejected(ingest_service, chain_ops, world):
    start = chain_ops.past_start(time.time(), 6)
    assert ingest_service.client.post(
        "/v1/meter-batches", json=chain_ops.batch_payload(chain_ops.batch(world.active, start, [1, 2], 0))
    ).status_code == 201
    overlapping = chain_ops.batch(world.active, start + 900, [3, 4], 1)
    assert_problem(ingest_service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(overlapping)),
                   "overlapping_interval", 409)
    assert ingest_service.counts() == (1, 0, 0)
    adjacent = chain_ops.batch(world.active, start + 1800, [3, 4], 1)
    assert ingest_service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(adjacent)).status_code == 201


def test_a_gap_is_recorded_reported_and_filled_by_late_batches(ingest_service, chain_ops, world):
    client, device = ingest_service.client, world.active
    base = chain_ops.past_start(time.time(), 10)

    def post(sequence):
        batch = chain_ops.batch(device, base + sequence * 900, [sequence], sequence)
        response = client.post("/v1/meter-batches", json=chain_ops.batch_payload(batch))
        assert response.status_code == 201, response.text
        return response.json()

    assert post(0)["gap"] is None
    assert post(3)["gap"] == {"expected": 1, "received": 3}
    gaps = client.get("/v1/gaps", params={"device": device.address}).json()
    assert [(g["expected"], g["received"], g["missing"], g["filledAt"]) for g in gaps] == [(1, 3, 2, None)]
    assert post(1)["gap"] is None  # late delivery of an earlier batch
    assert client.get("/v1/gaps", params={"device": device.address}).json()[0]["missing"] == 1
    assert post(2)["gap"] is None
    (gap,) = client.get("/v1/gaps", params={"device": device.address}).json()
    assert gap["missing"] == 0 and gap["filledAt"] is not None
    assert client.get("/v1/gaps", params={"device": device.address, "open": "true"}).json() == []
    assert post(4)["gap"] is None
    assert ingest_service.counts() == (5, 0, 1)


# ------------------------------------------------------------------------------------------------
# commitments


def test_a_valid_commitment_is_acknowledged_replayed_and_listed(ingest_service, chain_ops, world):
    commitment = chain_ops.commitment(world.active, world.open_request, 1_500)
    first = ingest_service.client.post("/v1/commitments", json=chain_ops.commitment_payload(commitment))
    assert first.status_code == 201, first.text
    ack = first.json()
    assert ack["status"] == "accepted" and ack["request_id"] == world.open_request and ack["gap"] is None
    assert ack["device"] == world.active.address and ack["watts"] == 1_500
    again = ingest_service.client.post("/v1/commitments", json=chain_ops.commitment_payload(commitment))
    assert again.status_code == 200 and again.content == first.content
    listed = ingest_service.client.get("/v1/commitments", params={"request_id": world.open_request}).json()
    assert listed == [{**chain_ops.commitment_payload(commitment), "digest": ack["digest"],
                       "receivedAt": ack["received_at"]}]
    assert ingest_service.counts() == (0, 1, 0)


def _commit(device_of, request_of=lambda w: w.open_request, watts=1_000, signer_of=None):
    def build(ops, w):
        signer = signer_of(w) if signer_of else None
        return ops.commitment_payload(ops.commitment(device_of(w), request_of(w), watts, signer=signer))
    return build


COMMITMENT_REJECTIONS = {
    "bad_signature": (_commit(lambda w: w.active, signer_of=lambda w: w.stranger), "bad_signature", 400),
    "unknown_device": (_commit(lambda w: w.stranger), "unknown_device", 403),
    "device_inactive": (_commit(lambda w: w.inactive), "device_inactive", 403),
    "unknown_request": (_commit(lambda w: w.active, request_of=lambda w: 1_000_000), "unknown_request", 422),
    "request_not_open": (_commit(lambda w: w.active, request_of=lambda w: w.cancelled_request),
                         "request_not_open", 422),
    "zone_mismatch": (_commit(lambda w: w.zone7), "zone_mismatch", 422),
    "watts_out_of_range: zero": (_commit(lambda w: w.active, watts=0), "watts_out_of_range", 422),
    "watts_out_of_range: above capacity": (_commit(lambda w: w.active, watts=2_001), "watts_out_of_range", 422),
}


@pytest.mark.parametrize("case", list(COMMITMENT_REJECTIONS))
def test_a_commitment_breaking_a_rule_is_rejected_with_its_code_and_not_stored(
        case, ingest_service, chain_ops, world):
    build, code, status = COMMITMENT_REJECTIONS[case]
    assert_problem(ingest_service.client.post("/v1/commitments", json=build(chain_ops, world)), code, status)
    assert ingest_service.counts() == (0, 0, 0)


def test_a_commitment_after_the_request_started_is_rejected(ingest_service, chain_ops, world):
    payload = chain_ops.commitment_payload(chain_ops.commitment(world.active, world.open_request, 1_000))
    ingest_service.clock.fixed = world.request_start
    assert_problem(ingest_service.client.post("/v1/commitments", json=payload), "request_started", 422)
    ingest_service.clock.fixed = world.request_start - 1
    assert ingest_service.client.post("/v1/commitments", json=payload).status_code == 201


def test_different_watts_for_the_same_request_is_a_conflict(ingest_service, chain_ops, world):
    first = chain_ops.commitment(world.active, world.open_request, 1_000)
    assert ingest_service.client.post("/v1/commitments", json=chain_ops.commitment_payload(first)).status_code == 201
    second = chain_ops.commitment(world.active, world.open_request, 1_500)
    assert_problem(ingest_service.client.post("/v1/commitments", json=chain_ops.commitment_payload(second)),
                   "commitment_conflict", 409)
    listed = ingest_service.client.get("/v1/commitments", params={"request_id": world.open_request}).json()
    assert [c["watts"] for c in listed] == [1_000]


# ------------------------------------------------------------------------------------------------
# malformed input never produces a 5xx


GOOD_BATCH = {"device": "0x" + "11" * 20, "start": 900, "intervalSeconds": 900, "readings": [1], "sequence": 0,
              "signature": "0x" + "22" * 65}


def _json(**changes):
    import json

    return json.dumps({**GOOD_BATCH, **changes}).encode()


MALFORMED_BATCHES = {
    "not JSON": b"readings please",
    "empty body": b"",
    "invalid UTF-8": b"\xff\xfe{}",
    "an array": b"[1, 2]",
    "null": b"null",
    "an empty object": b"{}",
    "a missing field": _json(sequence=None).replace(b', "sequence": null', b""),
    "an extra field": _json(extra=1),
    "a string number": _json(start="900"),
    "a float": _json(start=900.0),
    "a boolean": _json(sequence=True),
    "readings not a list": _json(readings="1,2"),
    "a fractional reading": _json(readings=[1.5]),
    "a reading above uint32": _json(readings=[2**32]),
    "a start above uint64": _json(start=2**64),
    "a sequence above int64": _json(sequence=2**63),
    "a negative sequence": _json(sequence=-1),
    "a 5000-digit integer": b'{"device": "0x' + b"11" * 20 + b'", "start": ' + b"9" * 5000 + b"}",
    "a short address": _json(device="0x1234"),
    "a bad checksum": _json(device="0x" + "aB" * 20),
    "a non-hex signature": _json(signature="0xzz"),
    "an odd-length signature": _json(signature="0x123"),
    "a signature without 0x": _json(signature="22" * 65),
    "deep nesting": b"[" * 30_000 + b"]" * 30_000,
}


@pytest.mark.parametrize("case", list(MALFORMED_BATCHES))
def test_a_malformed_batch_body_is_a_400_problem(case, ingest_service):
    response = ingest_service.client.post("/v1/meter-batches", content=MALFORMED_BATCHES[case],
                                          headers={"content-type": "application/json"})
    body = assert_problem(response, "invalid_payload", 400)
    assert isinstance(body["errors"], list) and body["errors"]
    assert ingest_service.counts() == (0, 0, 0)


@pytest.mark.parametrize("body", [
    {"requestId": 2**256, "device": "0x" + "11" * 20, "watts": 1, "signature": "0x"},
    {"requestId": -1, "device": "0x" + "11" * 20, "watts": 1, "signature": "0x"},
    {"requestId": 1, "device": "0x" + "11" * 20, "watts": 2**64, "signature": "0x"},
    {"requestId": 1, "device": "0x" + "11" * 20, "watts": "1", "signature": "0x"},
    {"requestId": 1, "device": None, "watts": 1, "signature": "0x"},
])
def test_a_malformed_commitment_body_is_a_400_problem(body, ingest_service):
    assert_problem(ingest_service.client.post("/v1/commitments", json=body), "invalid_payload", 400)


def test_a_signature_of_the_wrong_length_is_a_bad_signature(ingest_service):
    body = {"requestId": 1, "device": "0x" + "11" * 20, "watts": 1, "signature": "0x" + "00" * 65}
    assert_problem(ingest_service.client.post("/v1/commitments", json=body), "bad_signature", 400)
    assert_problem(ingest_service.client.post("/v1/commitments", json={**body, "signature": "0x"}),
                   "bad_signature", 400)


def test_an_oversized_body_is_refused_without_reading_it(ingest_service):
    huge = b'{"readings": [' + b"1," * 200_000 + b"1]}"
    assert_problem(ingest_service.client.post("/v1/meter-batches", content=huge), "payload_too_large", 413)

    def chunks():
        for _ in range(100):
            yield b" " * 10_000
    assert_problem(ingest_service.client.post("/v1/meter-batches", content=chunks()), "payload_too_large", 413)


@pytest.mark.parametrize("method, path, params, code, status", [
    ("GET", "/v1/meter-batches", {}, "invalid_payload", 400),
    ("GET", "/v1/meter-batches", {"device": "nope"}, "invalid_payload", 400),
    ("GET", "/v1/meter-batches", {"device": "0x" + "11" * 20, "from": "-1"}, "invalid_payload", 400),
    ("GET", "/v1/meter-batches", {"device": "0x" + "11" * 20, "to": "soon"}, "invalid_payload", 400),
    ("GET", "/v1/meter-batches", {"device": "0x" + "11" * 20, "to": str(2**70)}, "invalid_payload", 400),
    ("GET", "/v1/commitments", {"request_id": "x"}, "invalid_payload", 400),
    ("GET", "/v1/commitments", {}, "invalid_payload", 400),
    ("GET", "/v1/gaps", {"device": "0x12"}, "invalid_payload", 400),
    ("GET", "/v1/nothing-here", {}, "not_found", 404),
    ("DELETE", "/v1/meter-batches", {}, "method_not_allowed", 405),
])
def test_bad_queries_and_routes_are_4xx_problems(method, path, params, code, status, ingest_service):
    assert_problem(ingest_service.client.request(method, path, params=params), code, status)


def test_reads_and_health(ingest_service, world):
    client = ingest_service.client
    assert client.get("/v1/commitments", params={"request_id": str(2**70)}).json() == []
    assert client.get("/v1/meter-batches", params={"device": world.active.address}).json() == []
    assert client.get("/v1/gaps").json() == []
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["chainId"] == 31337
    assert health["rules"]["interval_seconds"] == 900


def test_an_unreachable_chain_is_a_503_not_a_rejection(tmp_path, shared_devnet, chain_ops, serve_app):
    """An unknown device cannot be looked up while the RPC is down: retry later, nothing stored."""
    dead = Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2}))
    manifest = shared_devnet.manifest()
    engine = db.make_engine(str(tmp_path / "down.sqlite"))
    db.init_db(engine)
    ingestor = Ingestor(engine, ChainView(dead, manifest, engine),
                        RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry")))
    url = serve_app(create_ingest_app(ingestor))
    device = Account.create()
    batch = chain_ops.batch(device, chain_ops.past_start(time.time(), 2), [1], 0)
    response = httpx.post(f"{url}/v1/meter-batches", json=chain_ops.batch_payload(batch))
    assert_problem(response, "chain_unavailable", 503)
    assert response.headers["retry-after"]
    assert httpx.get(f"{url}/v1/health").status_code == 200
    assert meter_store.batches_of_device(engine, device.address) == []


# ------------------------------------------------------------------------------------------------
# durability


def _start_service(devnet, database: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "NEGAWATT_RPC_URL": devnet.rpc_url, "NEGAWATT_MANIFEST": str(devnet.manifest_path),
           "DATABASE_URL": f"sqlite:///{database}", "NEGAWATT_CONFIRMATIONS": "0", "NEGAWATT_PORT": str(port),
           "NEGAWATT_POLL_SECONDS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "oracle.ingest_api"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited: {process.stderr.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the service did not answer")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_acknowledged_batch_survives_a_sigkill(tmp_path, shared_devnet, chain_ops):
    database = tmp_path / "ingest.sqlite"
    port = _free_port()
    device = chain_ops.register(capacity_w=5_000)
    base = chain_ops.past_start(time.time(), 400)
    batches = [chain_ops.batch(device, base + i * 900, [i % 1000], i) for i in range(300)]
    acked: dict[int, bytes] = {}
    process = _start_service(shared_devnet, database, port)
    url = f"http://127.0.0.1:{port}"

    def post_all():
        with httpx.Client(base_url=url, timeout=5) as client:
            for batch in batches:
                try:
                    response = client.post("/v1/meter-batches", json=chain_ops.batch_payload(batch))
                except httpx.TransportError:
                    return
                assert response.status_code == 201, response.text
                acked[batch.sequence] = response.content

    poster = threading.Thread(target=post_all)
    poster.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline and poster.is_alive():
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)  # mid-stream, no shutdown of any kind
    process.wait(timeout=10)
    poster.join(timeout=30)
    assert 40 <= len(acked) < len(batches), "the kill should land while batches are being posted"

    process = _start_service(shared_devnet, database, port)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            stored = client.get("/v1/meter-batches", params={"device": device.address, "limit": 1000}).json()
            stored_by_sequence = {b["sequence"]: b for b in stored}
            for sequence, ack in acked.items():
                assert stored_by_sequence[sequence]["signature"] == "0x" + batches[sequence].signature.hex()
                replay = client.post("/v1/meter-batches", json=chain_ops.batch_payload(batches[sequence]))
                assert replay.status_code == 200 and replay.content == ack
            # the rest is accepted after the restart, continuing the sequence without a gap
            for batch in batches[len(stored):]:
                response = client.post("/v1/meter-batches", json=chain_ops.batch_payload(batch))
                assert response.status_code == 201 and response.json()["gap"] is None
            assert client.get("/v1/gaps", params={"device": device.address}).json() == []
    finally:
        process.terminate()
        process.wait(timeout=10)
