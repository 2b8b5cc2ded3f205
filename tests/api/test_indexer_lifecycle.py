"""The indexer on anvil with real contract events: devices, stake, a request settled by a 2-of-2
signed report, the oracle's document fetched and verified (a tampered one rejected), a claim made
with the API's proof, the SSE stream, and a restart that resumes where it stopped."""

from __future__ import annotations

import json

import httpx
from conftest import OraclePublisher, device_result, http, indexed_to_head, wait_for
from sqlalchemy import create_engine, text


def test_lifecycle_indexed_verified_and_claimable(chain, start_api, serve_app, tmp_path):
    honest = OraclePublisher(str(tmp_path / "oracle-a.sqlite"), serve_app)
    tampering = OraclePublisher(str(tmp_path / "oracle-b.sqlite"), serve_app)
    # the tampering oracle is listed first, so the API meets the bad document before the good one
    chain.add_oracles([tampering.url, honest.url])
    usd = chain.stablecoin.address

    devices = [chain.register(capacity_w=3_000, zone=7, kind=k) for k in (0, 1, 3)]
    chain.owner.send(chain.registry.functions.deactivate(devices[2].address))
    chain.stake(chain.owner, 5 * 10**18)
    request_id = chain.open_request(zone=7, start_in=60, duration=120)
    chain.warp(300)

    payout = 12_000
    ledger = {(chain.owner.address, usd): 9_600, (chain.hub.functions.treasury().call(), usd): 2_400}
    results = {request_id: [device_result(devices[0].address, chain.owner.address, 40, 8_000),
                            device_result(devices[1].address, chain.owner.address, 20, 4_000)]}
    submitted = chain.make_report(ledger, [(request_id, payout)], results)
    honest.publish(submitted.body)
    forged = json.loads(json.dumps(submitted.body))
    forged["ledger"][0]["amount"] = "96000"  # the owner's amount inflated: its root is not the chain's
    tampering.publish(forged)
    chain.submit(submitted)
    chain.finalize(submitted)

    url, _app = start_api(chain, database=str(tmp_path / "api.sqlite"))
    client = http(url)
    indexed_to_head(client, chain)

    # devices, with filters
    page = client.get("/v1/devices", params={"zone": 7}).json()
    assert sorted(d["address"] for d in page["items"]) == sorted(d.address for d in devices)
    active = client.get("/v1/devices", params={"zone": 7, "active": "true"}).json()["items"]
    assert sorted(d["address"] for d in active) == sorted(d.address for d in devices[:2])
    battery = client.get("/v1/devices", params={"kind": "battery"}).json()["items"]
    assert [d["address"] for d in battery] == [devices[2].address] and battery[0]["active"] is False

    # the request, settled, with per-device results from the verified document
    detail = client.get(f"/v1/requests/{request_id}").json()
    assert detail["status"] == "settled" and detail["payout"] == str(payout)
    assert detail["refund"] == str(10**9 - payout) and detail["reportDigest"] == submitted.digest
    assert detail["deliveredWh"] == 60 and detail["epoch"] == 1
    assert [d["device"] for d in detail["devices"]] == [devices[0].address, devices[1].address]

    report = client.get(f"/v1/reports/{submitted.digest}").json()
    assert report["status"] == "final" and report["verified"] is True and report["requestIds"] == [request_id]
    engine = create_engine(f"sqlite:///{tmp_path / 'api.sqlite'}")
    with engine.connect() as connection:
        source = connection.execute(text("SELECT source FROM report_documents")).scalar_one()
    assert source.startswith(honest.url)  # the forged document was rejected

    # rewards: the proof the API computed is accepted by the RewardDistributor
    rewards = client.get(f"/v1/rewards/{chain.owner.address}").json()
    assert rewards["verified"] and rewards["epoch"] == 1
    assert rewards["root"] == "0x" + bytes(chain.distributor.functions.root().call()).hex()
    (usd_rewards,) = rewards["tokens"]
    assert (usd_rewards["token"], usd_rewards["cumulative"], usd_rewards["claimed"], usd_rewards["claimable"]) == (
        usd, "9600", "0", "9600")

    with httpx.Client(base_url=url, timeout=30) as stream_client:
        with stream_client.stream("GET", "/v1/stream", params={"types": "claim"}) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith(": negawatt")
            before = chain.stablecoin.functions.balanceOf(chain.owner.address).call()
            chain.claim(chain.owner, chain.owner.address, usd, 9_600, usd_rewards["proof"])
            assert chain.stablecoin.functions.balanceOf(chain.owner.address).call() - before == 9_600
            frame = []
            for line in lines:
                if line == "" and any(f.startswith("data:") for f in frame):
                    break
                if line and not line.startswith(":"):
                    frame.append(line)
    assert "event: claim" in frame
    data = json.loads(next(f for f in frame if f.startswith("data:"))[5:])
    assert data["event"] == "Claimed" and data["args"]["account"] == chain.owner.address

    indexed_to_head(client, chain)
    after = client.get(f"/v1/rewards/{chain.owner.address}").json()["tokens"][0]
    assert (after["cumulative"], after["claimed"], after["claimable"]) == ("9600", "9600", "0")

    owner = client.get(f"/v1/owners/{chain.owner.address}").json()
    assert owner["devices"] == 3 and owner["activeDevices"] == 2 and owner["capacityW"] == 6_000
    assert owner["stake"]["bonded"] == str(5 * 10**18)
    zone = client.get("/v1/zones/7/stats").json()
    assert (zone["devices"], zone["activeDevices"], zone["activeCapacityW"]) == (3, 2, 6_000)
    assert zone["registeredCapacityW"] == 9_000  # the deactivated device still counts as registered
    assert client.get("/v1/zones").json()["items"] == [zone]
    assert (zone["requests"], zone["settledRequests"], zone["deliveredWh"]) == (1, 1, 60)
    assert zone["paid"] == [{"token": usd, "amount": str(payout)}]
    stats = client.get("/v1/stats").json()
    assert stats["currentEpoch"] == 1 and stats["finalReports"] == 1 and stats["owners"] == 1

    # restart: events after the stop are picked up, nothing is indexed twice
    serve_app.stop_all()
    late = chain.register(capacity_w=1_000, zone=7)
    url, _app = start_api(chain, database=str(tmp_path / "api.sqlite"))
    client = http(url)
    indexed_to_head(client, chain)
    assert client.get(f"/v1/devices/{late.address}").json()["registered"] is True
    with engine.connect() as connection:
        registered = connection.execute(text("SELECT COUNT(*) FROM chain_events WHERE name = 'DeviceRegistered'"))
        assert registered.scalar_one() == 4
        claims = connection.execute(text("SELECT claimed, claims FROM claims")).one()
        assert tuple(claims) == ("9600", 1)
    assert client.get("/v1/zones/7/stats").json()["devices"] == 4
    wait_for(lambda: client.get("/v1/ready").status_code == 200, 10, "ready")
