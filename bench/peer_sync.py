"""Bulk peer sync throughput: a fresh oracle pulls one day of N meters from a peer over HTTP.

The peer is a real ingest app with the range route (oracle.peer_sync_api) served by uvicorn in this
process, its SQLite store filled directly with N day-long batches (96 readings each), each signed by
its own device key (coincurve on the EIP-712 digest, which protocol.fast_verify's tests check against
eth-account). The fresh oracle runs the real client (oracle.peer_sync.pull_range): HTTP, decode,
bulk signature verification and the real Ingestor storing into its own SQLite file. Registration is
NOT on a chain here: both Ingestors read devices from a stand-in registry answering for the N keys
(the full-path figure with anvil registration is `python -m bench oracle-service`). Prints one JSON
object: batches/s and where the time went (http, decode, verify, store), and a second pull of
the same range from the start, everything held already. Run: `python -m bench.peer_sync 10000`."""

from __future__ import annotations

import json
import random
import socket
import threading
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import typer
import uvicorn
from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address
from sqlmodel import Session, func, select

from oracle import db, meter_store
from oracle.chain_view import DeviceInfo
from oracle.ingest import Ingestor, IngestSettings
from oracle.ingest_api import create_ingest_app
from oracle.peer_sync import pull_range
from oracle.peer_sync_api import add_peer_sync_routes
from protocol.fast_verify import RegistryDomainVerifier
from protocol.meter import MeterBatch

CHAIN_ID, REGISTRY = 31337, "0x" + "5f" * 20
INTERVAL, DAY = 900, 86_400


class StandInRegistry:
    """Answers `device(address)` for the bench's keys (a registered site meter of 17.25 kW each)."""

    def __init__(self, addresses: list[str]):
        self.known = {a: DeviceInfo(a, "0x" + "0a" * 20, 6, 17_250, 1, True) for a in addresses}

    def device(self, address: str) -> DeviceInfo | None:
        return self.known.get(address)

    def request(self, _request_id: int) -> None:
        return None


def signed_batches(n: int, start: int, seed: int = 1) -> list[MeterBatch]:
    """N day-long batches, each of its own key, signed on the fast digest."""
    verifier = RegistryDomainVerifier(CHAIN_ID, REGISTRY)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = PrivateKey(keccak(seed.to_bytes(8, "big") + i.to_bytes(8, "big")))
        address = to_checksum_address(keccak(key.public_key.format(compressed=False)[1:])[-20:])
        batch = MeterBatch(address, start, INTERVAL, tuple(rng.randrange(0, 4_000) for _ in range(96)), 0)
        signature = key.sign_recoverable(verifier.batch_digest(batch), hasher=None)
        out.append(MeterBatch(address, start, INTERVAL, batch.readings, 0, signature[:64] + bytes([signature[64] + 27])))
    return out


def fill_store(engine: Any, batches: list[MeterBatch], now: int) -> None:
    """The peer's rows, as its Ingestor would have stored them (groups of 1,000, for speed)."""
    verifier = RegistryDomainVerifier(CHAIN_ID, REGISTRY)
    items = [meter_store.BatchToStore(b.device, b.sequence, b.start, INTERVAL, tuple(b.readings), bytes(b.signature),
                                      verifier.batch_digest(b)) for b in batches]
    for lo in range(0, len(items), 1_000):
        meter_store.store_batches(engine, items[lo:lo + 1_000], now, DAY)


def _serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    """`app` served by uvicorn on a free loopback port in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def run(n: int, limit: int = 5_000) -> dict[str, Any]:
    """Fill a peer with `n` day-long batches, pull them into a fresh oracle; the figures as a dict."""
    now = int(time.time())
    start = (now - 2 * DAY) // DAY * DAY
    folder = Path(tempfile.mkdtemp(prefix="negawatt-peer-sync-"))
    mark = time.perf_counter()
    batches = signed_batches(n, start)
    registry = StandInRegistry([b.device for b in batches])
    peer_engine, fresh_engine = (db.make_engine(str(folder / name)) for name in ("peer.sqlite", "fresh.sqlite"))
    for engine in (peer_engine, fresh_engine):
        db.init_db(engine)
    fill_store(peer_engine, batches, now)
    prepare = time.perf_counter() - mark
    rules = IngestSettings(_env_file=None)
    verifier = RegistryDomainVerifier(CHAIN_ID, REGISTRY)
    peer = Ingestor(peer_engine, registry, verifier, rules)
    app = create_ingest_app(peer)
    add_peer_sync_routes(app)
    url, server, thread = _serve(app)
    fresh = Ingestor(fresh_engine, registry, verifier, rules)
    try:
        with httpx.Client(timeout=120) as http:
            result = pull_range(fresh_engine, fresh, url, start, start + DAY, http, limit=limit)
            # Again from the start (no cursor): everything is held already, so every batch is skipped.
            again = pull_range(fresh_engine, fresh, url, start, start + DAY, http, limit=limit, resume=False)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    with Session(fresh_engine) as session:
        stored = session.exec(select(func.count()).select_from(db.SignedBatchRecord)).one()
    figures = result.as_dict()
    return {"batches": n, "page_limit": limit, "prepare_seconds": round(prepare, 1), "stored_rows": stored,
            "peer_sync_seconds": figures["seconds"], "batches_per_s": round(n / result.seconds, 1),
            "parts_seconds": figures["parts"],
            "per_batch_ms": {k: round(1000 * v / n, 3) for k, v in result.parts.items()},
            "repull_all_held_seconds": round(again.seconds, 3), "repull_skipped": again.skipped,
            "result": {k: figures[k] for k in ("pages", "received", "stored", "replays", "refused", "complete",
                                               "stopped")}}


def main(batches: int = typer.Argument(10_000, min=1, help="meters, one day-long batch each"),
         limit: int = typer.Option(5_000, "--limit", min=1, max=5_000, help="batches per page")) -> None:
    """Print the figures of one fresh pull as one JSON object."""
    typer.echo(json.dumps(run(batches, limit)))


if __name__ == "__main__":
    typer.run(main)
