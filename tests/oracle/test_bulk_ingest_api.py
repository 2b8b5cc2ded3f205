"""POST /v1/meter-batches/bulk (oracle.bulk_ingest_api) over real HTTP against a real anvil devnet:
each item of a mixed upload gets exactly the answer the single route gives it (one store fed one
by one, another fed the same items in one upload), the acks verify, an upload over its caps is
refused whole with nothing stored, and a SIGKILL right after a bulk ack loses none of its batches."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from eth_account import Account

from oracle import meter_store
from oracle.ingest import IngestSettings
from protocol.fast_verify import RegistryDomainVerifier, recover_digest
from protocol.messages import decode_batch
from protocol.problems import ProblemNamespace

REPO = Path(__file__).resolve().parents[2]
BULK = "/v1/meter-batches/bulk"
NDJSON = {"content-type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def world(chain_ops):
    """Devices on the shared devnet used by this module."""
    active = chain_ops.register(capacity_w=2_000, zone=4)  # 500 Wh per 15 min, 600 Wh with the tolerance
    other = chain_ops.register(capacity_w=2_000, zone=4)
    inactive = chain_ops.register(capacity_w=2_000, zone=4)
    chain_ops.deactivate(inactive.address)
    return SimpleNamespace(active=active, other=other, inactive=inactive, stranger=Account.create())


def line(payload: dict | bytes) -> bytes:
    """One NDJSON line: the single route's body."""
    return payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()


def upload(lines: list[bytes]) -> bytes:
    """An NDJSON body of `lines`."""
    return b"\n".join(lines) + b"\n"


def parse_answer(response: httpx.Response) -> tuple[list[bytes], dict]:
    """The item lines (raw) and the closing line of a bulk answer."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    raw = response.content.split(b"\n")
    assert raw[-1] == b""
    return raw[:-2], json.loads(raw[-2])


def ack_bytes(item_line: bytes) -> bytes:
    """The ack's raw bytes inside an item line {"index":..,"status":..,"ack":<ack>}."""
    start = item_line.index(b'"ack":') + len(b'"ack":')
    assert item_line.endswith(b"}")
    return item_line[start:-1]


def mixed_items(ops, w, now: float) -> tuple[list[dict], list[bytes]]:
    """(batches stored before the upload, the upload's lines): new, replayed, conflicting, badly
    signed, unregistered, inactive, against a rule, malformed, duplicated inside the upload."""
    start = ops.past_start(now, 20)
    stored = ops.batch(w.active, start, [10, 20], 0)
    before = [ops.batch_payload(stored)]
    new = ops.batch(w.active, start + 1_800, [30, 40, 50], 1)
    later = ops.batch(w.active, start + 3_600 * 3, [5], 9)  # opens a gap 2..8
    tampered = ops.batch_payload(ops.batch(w.other, start, [1], 0))
    tampered["readings"] = [2]
    lines = [
        line(ops.batch_payload(new)),                                                     # 201
        line(before[0]),                                                                  # 200 replay
        line(ops.batch_payload(ops.batch(w.active, start, [11, 20], 0))),                 # sequence_conflict
        line(ops.batch_payload(ops.batch(w.other, start, [1], 0, signer=w.stranger))),    # bad_signature
        line(tampered),                                                                   # bad_signature
        line({**ops.batch_payload(ops.batch(w.other, start, [1], 1)), "signature": "0x" + "00" * 64}),
        line(ops.batch_payload(ops.batch(w.stranger, start, [1], 0))),                    # unknown_device
        line(ops.batch_payload(ops.batch(w.inactive, start, [1], 0))),                    # device_inactive
        line(ops.batch_payload(ops.batch(w.other, start, [600, 601], 2))),                # reading_out_of_range
        line(ops.batch_payload(ops.batch(w.other, start + 60, [1], 3))),                  # misaligned_interval
        line(ops.batch_payload(ops.batch(w.other, ops.past_start(now, -2), [1], 4))),     # future_interval
        b'{"device": "0x12"',                                                             # invalid_payload
        line({**ops.batch_payload(new), "readings": [-1]}),                               # invalid_payload
        line({**ops.batch_payload(new), "extra": 1}),                                     # invalid_payload
        line(ops.batch_payload(ops.batch(w.active, start + 900, [1], 5))),                # overlapping_interval
        line(ops.batch_payload(later)),                                                   # 201 with a gap
        line(ops.batch_payload(new)),                                                     # 200: a replay of item 0
        line(ops.batch_payload(ops.batch(w.other, start + 900, [7], 0))),                 # 201 (other device)
    ]
    return before, lines


def test_each_item_gets_the_single_routes_answer(make_ingest_service, shared_devnet, chain_ops, world):
    one_by_one, bulk = make_ingest_service(shared_devnet), make_ingest_service(shared_devnet)
    now = time.time()
    for service in (one_by_one, bulk):
        service.clock.fixed = now
    before, lines = mixed_items(chain_ops, world, now)
    for service in (one_by_one, bulk):
        for payload in before:
            assert service.client.post("/v1/meter-batches", json=payload).status_code == 201

    singles = [one_by_one.client.post("/v1/meter-batches", content=item, headers={"content-type": "application/json"})
               for item in lines]
    items, closing = parse_answer(bulk.client.post(BULK, content=upload(lines), headers=NDJSON))

    assert len(items) == len(lines)
    statuses = [single.status_code for single in singles]
    # the mix reaches what it is meant to: new, replays, refusals of every kind above
    assert statuses.count(201) == 3 and statuses.count(200) == 2 and statuses.count(409) == 2
    codes = {single.json().get("code") for single in singles if single.status_code >= 400}
    assert codes == {"sequence_conflict", "bad_signature", "unknown_device", "device_inactive", "reading_out_of_range",
                     "misaligned_interval", "future_interval", "invalid_payload", "overlapping_interval"}
    for index, (single, raw) in enumerate(zip(singles, items)):
        item = json.loads(raw)
        assert item["index"] == index and item["status"] == single.status_code, (index, single.text, raw)
        if single.status_code < 300:
            assert ack_bytes(raw) == single.content, index  # the very bytes of the single route's ack
        else:
            assert single.headers["content-type"].startswith("application/problem+json")
            assert item["problem"] == single.json(), index
            assert item["problem"]["type"] == ProblemNamespace.INGEST.value.format(code=item["problem"]["code"])
    assert closing == {"count": len(lines), "accepted": 3, "replayed": 2, "refused": len(lines) - 5}
    assert bulk.counts() == one_by_one.counts() == (4, 0, 1)  # 1 before + 3 new; one gap (sequences 2..8)


def test_the_acks_verify_and_the_stored_batches_re_verify(ingest_service, chain_ops, world):
    now = time.time()
    start = chain_ops.past_start(now, 40)
    batches = [chain_ops.batch(world.active, start + i * 900, [i, i + 1], i) for i in range(0, 20, 2)]
    response = ingest_service.client.post(BULK, content=upload([line(chain_ops.batch_payload(b)) for b in batches]),
                                          headers=NDJSON)
    items, closing = parse_answer(response)
    assert closing["accepted"] == len(batches)
    verifier = RegistryDomainVerifier(chain_ops.chain_id, chain_ops.registry.address)
    for batch, raw in zip(batches, items):
        ack = json.loads(ack_bytes(raw))
        assert ack["status"] == "accepted" and ack["device"] == world.active.address
        assert ack["sequence"] == batch.sequence and ack["digest"] == "0x" + verifier.batch_digest(batch).hex()
        assert recover_digest(verifier.batch_digest(batch), batch.signature) == ack["device"]
    served = ingest_service.client.get("/v1/meter-batches", params={"device": world.active.address}).json()
    assert [s["sequence"] for s in served] == [b.sequence for b in batches]
    for record in served:
        signed = decode_batch({k: record[k] for k in ("device", "start", "intervalSeconds", "readings", "sequence",
                                                       "signature")})
        assert verifier.batch_signer(signed) == world.active.address
    assert meter_store.readings_in_range(ingest_service.engine, [world.active.address], start, start + 1_800)[
        world.active.address] == {start: 0, start + 900: 1}


def _problem(response: httpx.Response, code: str, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["detail"]
    return body


def test_an_upload_over_its_caps_is_refused_whole_with_nothing_stored(make_ingest_service, shared_devnet, chain_ops,
                                                                     world):
    service = make_ingest_service(shared_devnet, IngestSettings(_env_file=None, bulk_max_batches=3,
                                                               bulk_max_bytes=4_096))
    start = chain_ops.past_start(time.time(), 30)
    good = [line(chain_ops.batch_payload(chain_ops.batch(world.active, start + i * 900, [1], i))) for i in range(4)]

    body = _problem(service.client.post(BULK, content=upload(good), headers=NDJSON), "too_many_batches", 413)
    assert "4 lines" in body["detail"] and "3" in body["detail"]
    too_big = upload(good[:3] + [b" " * 5_000])
    _problem(service.client.post(BULK, content=too_big, headers=NDJSON), "payload_too_large", 413)

    def streamed():  # no Content-Length: cut off as it passes the cap
        yield upload(good[:2])
        for _ in range(10):
            yield b" " * 1_000
    _problem(service.client.post(BULK, content=streamed(), headers=NDJSON), "payload_too_large", 413)
    _problem(service.client.post(BULK, content=b"", headers=NDJSON), "invalid_payload", 400)
    body = _problem(service.client.post(BULK, content=good[0] + b"\n\n" + good[1], headers=NDJSON),
                    "invalid_payload", 400)
    assert "line 1 is empty" in body["detail"]
    assert service.counts() == (0, 0, 0)

    # the single route keeps its own cap (the bulk cap is for the bulk path only)
    single = chain_ops.batch_payload(chain_ops.batch(world.active, start, [1], 0))
    assert service.client.post("/v1/meter-batches", json=single).status_code == 201
    _problem(service.client.post("/v1/meter-batches", content=b"{" + b" " * 70_000 + b"}"), "payload_too_large", 413)
    # and within the caps the same upload goes in
    items, closing = parse_answer(service.client.post(BULK, content=upload(good[1:]), headers=NDJSON))
    assert closing == {"count": 3, "accepted": 3, "replayed": 0, "refused": 0}
    assert service.counts() == (4, 0, 0)


def test_a_line_over_the_single_routes_cap_is_refused_alone(ingest_service, chain_ops, world):
    start = chain_ops.past_start(time.time(), 10)
    good = line(chain_ops.batch_payload(chain_ops.batch(world.active, start, [3], 0)))
    long_line = b'{"readings": [' + b"1," * 40_000 + b"1]}"  # over 64 KiB: the single route answers 413
    single = ingest_service.client.post("/v1/meter-batches", content=long_line)
    items, closing = parse_answer(ingest_service.client.post(BULK, content=upload([long_line, good]), headers=NDJSON))
    assert single.status_code == 413 and json.loads(items[0])["problem"]["code"] == single.json()["code"]
    assert json.loads(items[1])["status"] == 201
    assert closing == {"count": 2, "accepted": 1, "replayed": 0, "refused": 1}
    assert ingest_service.counts() == (1, 0, 0)


# ------------------------------------------------------------------------------------------------
# durability


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_every_batch_of_a_bulk_ack_survives_a_sigkill(tmp_path, shared_devnet, chain_ops):
    database, port = tmp_path / "ingest.sqlite", _free_port()
    device = chain_ops.register(capacity_w=5_000)
    base = chain_ops.past_start(time.time(), 2_000)
    batches = [chain_ops.batch(device, base + i * 900, [i % 1_000], i) for i in range(1_500)]
    url = f"http://127.0.0.1:{port}"
    process = _start_service(shared_devnet, database, port)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            response = client.post(BULK, content=upload([line(chain_ops.batch_payload(b)) for b in batches]),
                                   headers=NDJSON)
    finally:
        os.kill(process.pid, signal.SIGKILL)  # at once after the answer, no shutdown of any kind
        process.wait(timeout=10)
    items, closing = parse_answer(response)
    assert closing["accepted"] == len(batches)
    acks = [ack_bytes(raw) for raw in items]

    process = _start_service(shared_devnet, database, port)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            stored = client.get("/v1/meter-batches", params={"device": device.address, "limit": 10_000}).json()
            assert {(s["sequence"], s["signature"]) for s in stored} == {
                (b.sequence, "0x" + b.signature.hex()) for b in batches}
            again, closing = parse_answer(client.post(BULK, content=upload(
                [line(chain_ops.batch_payload(b)) for b in batches]), headers=NDJSON))
            assert closing["replayed"] == len(batches)
            assert [ack_bytes(raw) for raw in again] == acks  # the stored acks, byte for byte
    finally:
        process.terminate()
        process.wait(timeout=10)
