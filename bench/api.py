"""`python -m bench api`: the dApp API's read throughput and latency on a large mirror.

Set-up: a SQLite mirror (the API's own migrations) filled through the indexer's projection with
synthetic contract events: `--devices` devices (default 100,000) of 25,000 owners in 20 zones,
`--requests` settled requests (default 1,000) in 10 final reports, each report's document verified
and stored as the indexer does (Merkle root recomputed, proofs for every leaf), stakes and claims.
The API is served by uvicorn (uvloop, httptools, one worker) on loopback, without the indexer
thread (nothing to follow); the rate limiter stays in the path but is configured at 10^9 requests
per second, so the loopback load generator is not throttled.

Load: `--clients` processes (default 1) each run `--connections` keep-alive HTTP/1.1 connections
(asyncio, raw sockets, one request in flight per connection) for `--seconds` after a warm-up, on a
read mix of every list and detail route (ENDPOINT_MIX). Figures:
  rps            completed requests per second over the measured period
  p50_ms/p99_ms  latency percentiles (client side: request written -> full response read)
  errors         responses other than 200, and failed connections
  endpoint_mix   the share of each route in the mix
  per_endpoint   count and p50/p99 per route
The server and the load generator share the machine's cores (2 here), so rps is a lower bound.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENDPOINT_MIX = {
    "GET /v1/devices/{address}": 0.20,
    "GET /v1/rewards/{account}": 0.20,
    "GET /v1/devices?zone&limit=20": 0.12,
    "GET /v1/requests/{id}": 0.15,
    "GET /v1/owners/{address}": 0.10,
    "GET /v1/requests?zone&status=settled&limit=20": 0.10,
    "GET /v1/zones/{zone}/stats": 0.06,
    "GET /v1/reports?status=final&limit=10": 0.04,
    "GET /v1/stats": 0.03,
}
ZONES = 20
OWNERS_PER_DEVICE = 4
REPORTS = 10
DEVICES_PER_REQUEST = 10


def _address(tag: str, index: int) -> str:
    from eth_utils import keccak, to_checksum_address

    return to_checksum_address(keccak(f"{tag}:{index}".encode())[:20])


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def populate(database_url: str, devices: int, requests: int, seed: int = 7) -> dict[str, Any]:
    """Fill a fresh mirror with synthetic events through the projection; returns ids the load can use."""
    from sqlalchemy import insert

    from api.db import make_engine
    from api.documents import store_document, verify_document
    from api.events import ChainLog
    from api.migrate import upgrade
    from api.models import api_metadata
    from api.projection import Projection
    from protocol.merkle import RewardLeaf, RewardsTree
    from protocol.report import RequestPayout, SettlementReport

    rng = random.Random(seed)
    engine = make_engine(database_url)
    upgrade(engine)
    owners = [_address("owner", i) for i in range(max(1, devices // OWNERS_PER_DEVICE))]
    usd, treasury = _address("usd", 0), _address("treasury", 0)
    block = [100]
    log_index = [0]
    pending: list[ChainLog] = []

    def emit(contract: str, name: str, args: dict[str, Any], tx: str | None = None) -> None:
        log_index[0] += 1
        pending.append(ChainLog(block[0], _hex(block[0].to_bytes(32, "big")), log_index[0],
                                tx or _hex(rng.randbytes(32)), contract, name, args))

    def flush() -> None:
        with engine.begin() as connection:
            Projection(connection, journal=False).apply(pending)
        pending.clear()

    def next_block() -> None:
        block[0] += 1
        log_index[0] = 0
        if len(pending) >= 5_000:
            flush()

    device_list = []
    by_zone: dict[int, list[tuple[str, str]]] = {z: [] for z in range(ZONES)}
    for i in range(devices):
        address, owner, zone = _address("device", i), owners[i % len(owners)], i % ZONES
        emit("DeviceRegistry", "DeviceRegistered", {"device": address, "owner": owner, "kind": rng.randrange(6),
                                                     "capacityW": rng.randrange(1_000, 11_000), "zone": zone})
        if rng.random() < 0.1:
            emit("DeviceRegistry", "DeviceActiveChanged", {"device": address, "owner": owner, "active": False})
        device_list.append(address)
        by_zone[zone].append((address, owner))
        if i % 50 == 49:
            next_block()
    next_block()
    for owner in owners[: len(owners) // 2]:
        bonded = rng.randrange(1, 100) * 10**18
        emit("Staking", "Staked", {"account": owner, "amount": bonded, "bonded": bonded})
    next_block()

    ledger: dict[tuple[str, str], int] = {}
    per_report = max(1, requests // REPORTS)
    request_id = 0
    documents = []
    for epoch in range(1, REPORTS + 1):
        ids = list(range(request_id + 1, min(requests, request_id + per_report) + 1)) if epoch < REPORTS else \
            list(range(request_id + 1, requests + 1))
        if not ids:
            break
        results, payouts = [], []
        for rid in ids:
            zone = rid % ZONES
            start = 1_700_000_000 + rid * 3_600
            emit("FlexMarket", "RequestOpened", {"requestId": rid, "buyer": _address("buyer", rid % 7), "zone": zone,
                                                 "start": start, "end": start + 3_600, "targetW": 50_000,
                                                 "pricePerKWh": 200_000, "paymentToken": usd, "maxBudget": 10**10})
            chosen = rng.sample(by_zone[zone], min(DEVICES_PER_REQUEST, len(by_zone[zone])))
            devices_out, total = [], 0
            for device, owner in chosen:
                wh = rng.randrange(100, 3_000)
                payout = wh * 200
                total += payout
                ledger[(owner, usd)] = ledger.get((owner, usd), 0) + payout * 8 // 10
                ledger[(treasury, usd)] = ledger.get((treasury, usd), 0) + payout - payout * 8 // 10
                devices_out.append({"device": device, "owner": owner, "committedWh": wh, "deliveredWh": wh,
                                    "ratioBps": 10_000, "factorBps": 10_000, "payableWh": wh, "payout": str(payout),
                                    "ownerPayout": str(payout * 8 // 10), "fee": str(payout - payout * 8 // 10),
                                    "emission": "0", "penalty": "0", "eligible": True, "reasons": [], "flags": []})
            payouts.append((rid, total))
            results.append({"requestId": rid, "paymentToken": usd, "escrow": str(10**10), "scaledToEscrow": False,
                            "deliveredWh": sum(d["deliveredWh"] for d in devices_out),
                            "payout": str(total), "refund": str(10**10 - total), "devices": devices_out})
        next_block()
        request_id = ids[-1]
        tree = RewardsTree([RewardLeaf(a, t, v) for (a, t), v in ledger.items()])
        report = SettlementReport(epoch=epoch, previous_root=b"\x00" * 32, rewards_root=tree.root,
                                  payouts=tuple(RequestPayout(r, p) for r, p in payouts))
        digest = _hex(rng.randbytes(32))
        submit_tx, final_tx = _hex(rng.randbytes(32)), _hex(rng.randbytes(32))
        emit("OracleHub", "ReportSubmitted", {
            "epoch": epoch, "digest": digest,
            "report": {"epoch": epoch, "previousRoot": _hex(report.previous_root), "rewardsRoot": _hex(tree.root),
                       "requestsHash": _hex(report.requests_hash), "penaltiesHash": _hex(report.penalties_hash),
                       "emission": 0},
            "penalties": [], "signers": [_address("oracle", 0), _address("oracle", 1)],
            "submitter": _address("oracle", 0), "challengeDeadline": 1_700_000_000 + epoch}, tx=submit_tx)
        for rid, payout in payouts:
            emit("FlexMarket", "RequestSettling", {"requestId": rid, "payout": payout}, tx=submit_tx)
        next_block()
        emit("OracleHub", "ReportFinalized", {"epoch": epoch, "digest": digest, "rewardsRoot": _hex(tree.root),
                                              "emission": 0}, tx=final_tx)
        for rid, payout in payouts:
            emit("FlexMarket", "RequestSettled", {"requestId": rid, "payout": payout, "refund": 10**10 - payout,
                                                  "recipient": _address("distributor", 0)}, tx=final_tx)
        next_block()
        body = {"digest": digest, "epoch": epoch, "previousRoot": _hex(report.previous_root),
                "rewardsRoot": _hex(tree.root), "requestsHash": _hex(report.requests_hash),
                "penaltiesHash": _hex(report.penalties_hash), "emission": "0", "penalties": [],
                "ledger": [{"account": a, "token": t, "amount": str(v)} for (a, t), v in ledger.items()],
                "payouts": [{"requestId": r, "payout": str(p)} for r, p in payouts], "requests": results}
        documents.append((body, digest, _hex(tree.root), _hex(report.requests_hash)))
    paid_owners = [a for (a, _t) in ledger if a != treasury]
    for owner in paid_owners[: len(paid_owners) // 3]:
        amount = ledger[(owner, usd)] // 2
        emit("RewardDistributor", "Claimed", {"account": owner, "token": usd, "amount": amount,
                                              "cumulativeClaimed": amount})
    next_block()
    flush()
    for body, digest, root, requests_hash in documents:
        store_document(engine, verify_document(body, digest, root, requests_hash), "synthetic")
    with engine.begin() as connection:
        connection.execute(insert(api_metadata.tables["indexer_state"]).values(
            id=1, chain_id=31337, last_block=block[0], last_hash=_hex(block[0].to_bytes(32, "big")),
            head_block=block[0], updated_at=int(time.time())))
    engine.dispose()
    return {"devices": device_list, "owners": owners, "paid_owners": paid_owners, "requests": requests}


# ---------------------------------------------------------------------- server


def serve(database_url: str, port: int) -> None:
    """Serve the API on the mirror (no indexer), as `negawatt api serve` does: uvloop + httptools."""
    import logging

    import uvicorn

    from api.app import create_app, make_context
    from api.db import make_engine

    logging.basicConfig(level=logging.WARNING)
    context = make_context(make_engine(database_url), 31337, None, siwe_domains=["localhost"])
    app = create_app(context, rate_limit_per_second=1e9, rate_limit_burst=10**9)
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False)


# ---------------------------------------------------------------------- load generator


def _path(name: str, ids: dict[str, Any], rng: random.Random) -> str:
    """A concrete path for one route of the mix, with random (existing) ids."""
    zone = rng.randrange(ZONES)
    if name == "GET /v1/devices/{address}":
        return f"/v1/devices/{rng.choice(ids['devices'])}"
    if name == "GET /v1/rewards/{account}":
        return f"/v1/rewards/{rng.choice(ids['paid_owners'] or ids['owners'])}"
    if name == "GET /v1/devices?zone&limit=20":
        return f"/v1/devices?zone={zone}&limit=20"
    if name == "GET /v1/requests/{id}":
        return f"/v1/requests/{rng.randrange(1, ids['requests'] + 1)}"
    if name == "GET /v1/owners/{address}":
        return f"/v1/owners/{rng.choice(ids['owners'])}"
    if name == "GET /v1/requests?zone&status=settled&limit=20":
        return f"/v1/requests?zone={zone}&status=settled&limit=20"
    if name == "GET /v1/zones/{zone}/stats":
        return f"/v1/zones/{zone}/stats"
    if name == "GET /v1/reports?status=final&limit=10":
        return "/v1/reports?status=final&limit=10"
    return "/v1/stats"


def _paths(ids: dict[str, Any], count: int, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    names, weights = list(ENDPOINT_MIX), list(ENDPOINT_MIX.values())
    return [(name, f"GET {_path(name, ids, rng)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            for name in rng.choices(names, weights, k=count)]


async def _connection(port: int, requests: list[tuple[str, bytes]], offset: int, start_at: float, stop_at: float,
                      latencies: list[tuple[str, float]], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    loop = asyncio.get_running_loop()
    try:
        while True:
            now = loop.time()
            if now >= stop_at:
                return
            name, raw = requests[i % len(requests)]
            i += 1
            sent = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            done = time.perf_counter()
            if now >= start_at:
                latencies.append((name, done - sent))
                if status != 200:
                    errors[0] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        errors[0] += 1
    finally:
        writer.close()


def _client(port: int, ids: dict[str, Any], connections: int, warmup: float, seconds: float, seed: int,
            out: Any) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - pinned dependency
        pass
    requests = _paths(ids, 20_000, seed)

    async def main() -> tuple[list[tuple[str, float]], int]:
        loop = asyncio.get_running_loop()
        start_at = loop.time() + warmup
        stop_at = start_at + seconds
        latencies: list[tuple[str, float]] = []
        errors = [0]
        await asyncio.gather(*(_connection(port, requests, k * 997, start_at, stop_at, latencies, errors)
                               for k in range(connections)))
        return latencies, errors[0]

    latencies, errors = asyncio.run(main())
    out.put((latencies, errors))


def _wait_ready(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the API server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                if sock.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the API server did not start")


def run(devices: int = 100_000, requests: int = 1_000, seconds: float = 15.0, warmup: float = 3.0,
        clients: int = 1, connections: int = 16) -> dict[str, Any]:
    """Build the mirror, serve it, load it; the figures as a dict."""
    from negawatt.localchain import free_port

    with tempfile.TemporaryDirectory(prefix="negawatt-bench-api-") as folder:
        database = f"sqlite:///{Path(folder) / 'api.sqlite'}"
        began = time.monotonic()
        ids = populate(database, devices, requests)
        populate_seconds = time.monotonic() - began
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", f"from bench.api import serve; serve({database!r}, {port})"],
                                  cwd=Path(__file__).resolve().parent.parent)
        try:
            _wait_ready(port, server)
            queue: Any = multiprocessing.get_context("spawn").Queue()
            workers = [multiprocessing.get_context("spawn").Process(
                target=_client, args=(port, ids, connections, warmup, seconds, 11 + k, queue)) for k in range(clients)]
            for worker in workers:
                worker.start()
            results = [queue.get(timeout=warmup + seconds + 120) for _ in workers]
            for worker in workers:
                worker.join(timeout=30)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    samples = [sample for part, _ in results for sample in part]
    latencies = sorted(latency for _, latency in samples)
    errors = sum(e for _, e in results)
    if not latencies:
        return {"rps": 0, "p50_ms": None, "p99_ms": None, "errors": errors, "endpoint_mix": ENDPOINT_MIX}

    def pct(q: float, values: list[float] = latencies) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)

    by_endpoint: dict[str, list[float]] = {}
    for name, latency in samples:
        by_endpoint.setdefault(name, []).append(latency)
    per_endpoint = {name: {"count": len(values), "p50_ms": pct(0.5, sorted(values)), "p99_ms": pct(0.99, sorted(values))}
                    for name, values in sorted(by_endpoint.items())}

    return {
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
        "endpoint_mix": ENDPOINT_MIX,
        "requests_measured": len(latencies),
        "per_endpoint": per_endpoint,
        "seconds": seconds,
        "devices": devices,
        "settled_requests": requests,
        "load": f"{clients} client process(es) x {connections} keep-alive connections, loopback",
        "server": "uvicorn 1 worker, uvloop + httptools, SQLite WAL",
        "rate_limit": "in the path, set to 1e9 req/s for the loopback load generator (not throttled)",
        "cpu_cores": os.cpu_count(),
        "populate_seconds": round(populate_seconds, 1),
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run()))
