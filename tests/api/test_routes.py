"""Every read route over real HTTP (uvicorn on loopback) on a synthetic mirror: shapes match the
documented response models, filters select what they say, proofs lead to the report's root, the
OpenAPI document is valid."""

from __future__ import annotations

import httpx
import pytest
from openapi_spec_validator import validate
from sqlalchemy import create_engine, text

from api.schemas import (
    DeviceOut,
    DevicePage,
    NetworkStats,
    OwnerOut,
    Ready,
    ReportOut,
    ReportPage,
    RequestOut,
    RequestPage,
    RewardsOut,
    ZoneStats,
)
from protocol.merkle import leaf_hash, process_proof


@pytest.fixture(scope="module")
def client(mirror):
    with httpx.Client(base_url=mirror.url, timeout=30) as c:
        yield c


def sql(mirror, query: str, **params):
    engine = create_engine(mirror.database_url)
    with engine.connect() as connection:
        return connection.execute(text(query), params).all()


def test_openapi_document_is_valid_and_documents_the_models(client):
    document = client.get("/openapi.json").json()
    validate(document)
    paths = document["paths"]
    for path in ("/v1/devices", "/v1/devices/{address}", "/v1/owners/{address}", "/v1/owners/{address}/devices",
                 "/v1/rewards/{account}", "/v1/requests", "/v1/requests/{request_id}", "/v1/reports",
                 "/v1/reports/{digest}", "/v1/zones/{zone}/stats", "/v1/stats", "/v1/health", "/v1/ready",
                 "/v1/stream", "/v1/auth/nonce", "/v1/auth/login", "/v1/devices/{address}/profile"):
        assert path in paths, path
    ok = paths["/v1/rewards/{account}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/RewardsOut")
    ok = paths["/v1/requests/{request_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/RequestOut")
    assert "400" in paths["/v1/devices"]["get"]["responses"]
    assert set(document["components"]["schemas"]["TokenRewards"]["properties"]) == {
        "token", "cumulative", "claimed", "claimable", "proof"}


def test_device_list_filters_and_detail(client, mirror):
    page = DevicePage.model_validate(client.get("/v1/devices", params={"zone": 3, "limit": 200}).json())
    expected = sql(mirror, "SELECT address FROM devices WHERE zone = 3 AND registered ORDER BY address")
    assert [d.address for d in page.items] == [row.address for row in expected] and page.next is None
    inactive = client.get("/v1/devices", params={"active": "false", "limit": 200}).json()["items"]
    assert inactive and all(d["active"] is False for d in inactive)
    heat_pumps = client.get("/v1/devices", params={"kind": "heat_pump", "zone": 5}).json()["items"]
    assert heat_pumps and all(d["kind"] == 1 and d["kindName"] == "heat_pump" and d["zone"] == 5 for d in heat_pumps)
    owner = mirror.ids["owners"][0]
    mine = client.get("/v1/devices", params={"owner": owner.lower()}).json()["items"]
    assert mine and all(d["owner"] == owner for d in mine)
    assert client.get(f"/v1/owners/{owner}/devices").json()["items"] == mine
    detail = DeviceOut.model_validate(client.get(f"/v1/devices/{mine[0]['address']}").json())
    assert detail.model_dump() == mine[0]


def test_owner_and_rewards_with_a_proof_to_the_root(client, mirror):
    paid = mirror.ids["paid_owners"][0]
    owner = OwnerOut.model_validate(client.get(f"/v1/owners/{paid}").json())
    count = sql(mirror, "SELECT COUNT(*) AS n FROM devices WHERE owner = :o", o=paid)[0].n
    assert owner.devices == count and owner.rewards.verified
    rewards = RewardsOut.model_validate(client.get(f"/v1/rewards/{paid.lower()}").json())
    assert rewards.account == paid and rewards.epoch == 10
    (token,) = rewards.tokens
    leaf = leaf_hash(paid, token.token, int(token.cumulative))
    assert "0x" + process_proof(leaf, [bytes.fromhex(p[2:]) for p in token.proof]).hex() == rewards.root
    claimed = sql(mirror, "SELECT claimed FROM claims WHERE account = :a", a=paid)
    assert token.claimed == (claimed[0].claimed if claimed else "0")
    assert int(token.claimable) == int(token.cumulative) - int(token.claimed)
    nobody = client.get("/v1/rewards/0x" + "00" * 20).json()
    assert nobody["tokens"] == [] and nobody["epoch"] == 10


def test_requests_filters_and_detail(client, mirror):
    page = RequestPage.model_validate(client.get("/v1/requests", params={"limit": 200}).json())
    assert [r.id for r in page.items] == list(range(40, 0, -1))
    zone = client.get("/v1/requests", params={"zone": 4, "status": "settled"}).json()["items"]
    assert zone and all(r["zone"] == 4 and r["status"] == "settled" for r in zone)
    assert client.get("/v1/requests", params={"status": "open"}).json()["items"] == []
    window = client.get("/v1/requests", params={"from": 1_700_000_000 + 10 * 3_600,
                                                "to": 1_700_000_000 + 12 * 3_600}).json()["items"]
    assert sorted(r["id"] for r in window) == [10, 11]  # windows overlapping [from, to)
    detail = RequestOut.model_validate(client.get("/v1/requests/7").json())
    assert detail.status == "settled" and detail.devices and detail.epoch is not None
    assert detail.deliveredWh == sum(d.deliveredWh for d in detail.devices)
    assert sum(int(d.payout) for d in detail.devices) == int(detail.payout)


def test_reports_and_stats(client, mirror):
    reports = ReportPage.model_validate(client.get("/v1/reports", params={"status": "final", "limit": 4}).json())
    assert [r.epoch for r in reports.items] == [10, 9, 8, 7] and reports.next
    rest = client.get("/v1/reports", params={"status": "final", "limit": 10, "cursor": reports.next}).json()
    assert [r["epoch"] for r in rest["items"]] == [6, 5, 4, 3, 2, 1] and rest["next"] is None
    assert client.get("/v1/reports", params={"status": "pending"}).json()["items"] == []
    one = ReportOut.model_validate(client.get(f"/v1/reports/{reports.items[0].digest}").json())
    assert one.verified and one.requestIds == [37, 38, 39, 40]

    zone = ZoneStats.model_validate(client.get("/v1/zones/4/stats").json())
    rows = sql(mirror, "SELECT COUNT(*) AS n, SUM(CASE WHEN active THEN capacity_w ELSE 0 END) AS cap FROM devices "
                       "WHERE zone = 4 AND registered")
    assert (zone.devices, zone.activeCapacityW) == (rows[0].n, rows[0].cap)
    assert zone.settledRequests == 2 and zone.deliveredWh > 0
    empty = client.get("/v1/zones/4000/stats").json()
    assert (empty["devices"], empty["requests"], empty["paid"]) == (0, 0, [])
    stats = NetworkStats.model_validate(client.get("/v1/stats").json())
    assert stats.devices == 604 and stats.settledRequests == 40 and stats.currentEpoch == 10
    assert stats.owners == len(mirror.ids["owners"]) + 2


def test_health_and_ready(client):
    assert client.get("/v1/health").json() == {"status": "ok"}
    ready = Ready.model_validate(client.get("/v1/ready").json())
    assert ready.lag_blocks == 0 and ready.indexed_block == ready.head_block


def test_kind_5_is_household_and_other_is_its_alias(client):
    household = client.get("/v1/devices", params={"kind": "household", "limit": 200}).json()["items"]
    assert household and all(d["kind"] == 5 and d["kindName"] == "household" for d in household)
    assert client.get("/v1/devices", params={"kind": "other", "limit": 200}).json()["items"] == household
    assert client.get("/v1/devices", params={"kind": "5", "limit": 200}).json()["items"] == household
