"""Reorgs on anvil (evm_snapshot / evm_revert): the indexer rolls back what it indexed from the
abandoned branch, and the mirror then equals indexing the canonical chain from scratch. Also the
confirmation depth: nothing within `confirmations` blocks of the head is indexed."""

from __future__ import annotations

import json
import logging

import httpx
from conftest import http, indexed_to_head, wait_for
from sqlalchemy import text

from api.db import make_engine
from api.indexer import Indexer
from api.migrate import upgrade

MIRRORED = ("devices", "zone_totals", "requests", "reports", "claims", "stakes", "oracles", "chain_events")


def snapshot_tables(engine) -> dict[str, list[tuple]]:
    """Every row of the chain-derived tables, sorted (the journal and bookkeeping excluded)."""
    out = {}
    with engine.connect() as connection:
        for table in MIRRORED:
            out[table] = sorted(tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}")))
    return out


def read_event(lines) -> tuple[str, dict]:
    """The next SSE event (name, data) from an iterator of lines, skipping comments."""
    name, data = None, None
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = json.loads(line[5:])
        elif line == "" and name is not None:
            return name, data
    raise AssertionError("the stream ended")


def test_reorg_rolls_back_to_the_canonical_chain(chain, start_api, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="api.indexer")
    url, _app = start_api(chain, database=str(tmp_path / "api.sqlite"))
    client = http(url)
    kept = chain.register(capacity_w=2_000, zone=3)
    chain.stake(chain.owner, 10**18)
    indexed_to_head(client, chain)

    stream_client = httpx.Client(base_url=url, timeout=30)
    streaming = stream_client.stream("GET", "/v1/stream", params={"types": "request"})
    stream = streaming.__enter__()
    lines = stream.iter_lines()
    assert next(lines).startswith(": negawatt")

    snapshot = chain.rpc("evm_snapshot", [])
    fork_head = chain.head()
    orphan = chain.register(capacity_w=5_000, zone=3)
    chain.owner.send(chain.registry.functions.deactivate(kept.address))
    orphan_request = chain.open_request(zone=3)
    chain.stake(chain.owner, 2 * 10**18)
    indexed_to_head(client, chain)
    assert client.get(f"/v1/devices/{orphan.address}").status_code == 200
    assert client.get(f"/v1/requests/{orphan_request}").json()["status"] == "open"
    assert client.get("/v1/zones/3/stats").json()["activeCapacityW"] == 5_000
    abandoned_head = chain.head()
    kind, data = read_event(lines)
    assert kind == "request" and data["event"] == "RequestOpened" and data["args"]["requestId"] == orphan_request
    kind, data = read_event(lines)  # FlexMarket snapshots the market rules right after each RequestOpened
    assert kind == "request" and data["event"] == "RequestRules" and data["args"]["requestId"] == orphan_request

    assert chain.rpc("evm_revert", [snapshot]) is True
    assert chain.head() == fork_head
    replacement = chain.register(capacity_w=1_500, zone=3)
    chain.mine(abandoned_head - chain.head() + 2)  # the new branch is longer than the abandoned one
    indexed_to_head(client, chain)

    assert client.get(f"/v1/devices/{orphan.address}").status_code == 404
    assert f"rolled the mirror back from block {abandoned_head} to {fork_head}" in caplog.text  # journal, not a reset
    assert "deeper than the kept history" not in caplog.text
    assert client.get(f"/v1/requests/{orphan_request}").status_code == 404
    assert client.get(f"/v1/devices/{kept.address}").json()["active"] is True
    assert client.get(f"/v1/devices/{replacement.address}").json()["registered"] is True
    zone = client.get("/v1/zones/3/stats").json()
    assert (zone["devices"], zone["activeDevices"], zone["activeCapacityW"], zone["requests"]) == (2, 2, 3_500, 0)
    assert client.get(f"/v1/owners/{chain.owner.address}").json()["stake"]["bonded"] == str(10**18)

    # the stream told its client about the orphaned request (before the revert), then about the reorg
    assert read_event(lines) == ("reorg", {"forkBlock": fork_head})
    streaming.__exit__(None, None, None)
    stream_client.close()

    # the rolled-back mirror equals a mirror built from scratch on the canonical chain
    fresh = make_engine(str(tmp_path / "fresh.sqlite"))
    upgrade(fresh)
    Indexer(fresh, chain.web3, chain.manifest, confirmations=0, log_range=3).step()  # many small getLogs ranges
    rolled = make_engine(str(tmp_path / "api.sqlite"))
    assert snapshot_tables(rolled) == snapshot_tables(fresh)


def test_confirmations_hold_back_recent_blocks(chain, start_api, tmp_path):
    url, _app = start_api(chain, database=str(tmp_path / "api.sqlite"), confirmations=3)
    client = http(url)
    device = chain.register()
    head = chain.head()
    wait_for(lambda: client.get("/v1/ready").json().get("head_block") == head, 20, "the indexer to see the head")
    ready = client.get("/v1/ready")
    assert ready.status_code == 200 and ready.json()["indexed_block"] == head - 3
    assert client.get(f"/v1/devices/{device.address}").status_code == 404
    chain.mine(3)
    wait_for(lambda: client.get(f"/v1/devices/{device.address}").status_code == 200, 20, "the confirmed device")
    assert client.get("/v1/ready").json()["indexed_block"] == chain.head() - 3


def test_ready_turns_503_when_the_chain_is_unreachable(chain, start_api, tmp_path):
    url, _app = start_api(chain, database=str(tmp_path / "api.sqlite"), ready_stale_seconds=1.0)
    client = http(url)
    indexed_to_head(client, chain)
    assert client.get("/v1/ready").status_code == 200
    chain.devnet.process.terminate()
    chain.devnet.process.wait(timeout=10)
    wait_for(lambda: client.get("/v1/ready").status_code == 503, 20, "readiness to notice the chain is gone")
    body = client.get("/v1/ready").json()
    assert body["code"] == "chain_unreachable" and body["lag_blocks"] == 0
    assert client.get("/v1/health").status_code == 200  # still alive, and still serving the mirror
    assert client.get("/v1/stats").status_code == 200
