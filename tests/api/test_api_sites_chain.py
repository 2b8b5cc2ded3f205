"""Sites and market rules from the real contracts on anvil, through the real indexer: a site meter
never counts in its zone (the registry's zoneStats is the reference), a device registered at a site
records it and follows the site's two-step transfer, and a request carries the RequestRules the
market was deployed with."""

from __future__ import annotations

from conftest import PARAMS, Chain, http, indexed_to_head
from eth_account import Account
from pydantic import BaseModel
from sqlalchemy import create_engine, text

from api.schemas import DeviceOut, DevicePage, OwnerOut, RequestOut
from protocol import eip712

ZONE = 7
HOLDOUT_BPS, GATE_LEAD = 1_500, 90


def documented(model, body: dict) -> None:
    """`body` is an instance of the response `model`, with exactly its keys (nested models too)."""
    model.model_validate(body, strict=True)
    assert set(body) == set(model.model_fields), (model.__name__, set(body) ^ set(model.model_fields))
    for name, field in model.model_fields.items():
        inner = [t for t in getattr(field.annotation, "__args__", (field.annotation,)) if isinstance(t, type)]
        for kind in inner:
            if issubclass(kind, BaseModel) and isinstance(body[name], dict):
                documented(kind, body[name])


def register_at_site(chain: Chain, site: str, capacity_w: int, kind: int = 1) -> str:
    """A fresh device registered at `site` with its DeviceAtSitePermit, sent by the site's owner."""
    device = Account.create()
    deadline = chain.now() + 3600
    nonce = chain.registry.functions.nonces(device.address).call()
    permit = {"owner": chain.owner.address, "device": device.address, "site": site, "kind": kind,
              "capacityW": capacity_w, "nonce": nonce, "deadline": deadline}
    signature = eip712.sign(device.key, "DeviceAtSitePermit", permit, chain.chain_id, chain.registry.address)
    chain.owner.send(chain.registry.functions.registerAtSite(device.address, site, kind, capacity_w, deadline,
                                                            signature))
    return device.address


def test_a_site_its_devices_and_its_transfer(devnet_factory, start_api):
    chain = Chain(devnet_factory({**PARAMS, "holdout_bps": HOLDOUT_BPS, "gate_lead_seconds": GATE_LEAD}))
    site = chain.register(capacity_w=17_250, zone=ZONE, kind=6).address
    heat_pump = register_at_site(chain, site, 3_000)
    battery = register_at_site(chain, site, 5_000, kind=3)
    alone = chain.register(capacity_w=2_000, zone=ZONE).address
    url, _app = start_api(chain)
    client = http(url)
    indexed_to_head(client, chain)

    on_chain = chain.registry.functions.zoneStats(ZONE).call()
    stats = client.get(f"/v1/zones/{ZONE}/stats").json()
    assert on_chain == [3, 10_000]  # the site meter's 17,250 W rating is not flexible capacity
    assert (stats["activeDevices"], stats["activeCapacityW"], stats["devices"]) == (on_chain[0], on_chain[1], 3)
    network = client.get("/v1/stats").json()
    assert (network["devices"], network["activeCapacityW"]) == (3, 10_000)

    meter = client.get(f"/v1/devices/{site}").json()
    assert (meter["kindName"], meter["site"], meter["capacityW"]) == ("site_meter", None, 17_250)
    assert meter["siteDevices"] == sorted([heat_pump, battery])
    documented(DeviceOut, meter)  # the served JSON is what the OpenAPI document says
    DevicePage.model_validate(client.get("/v1/devices").json(), strict=True)
    documented(OwnerOut, client.get(f"/v1/owners/{chain.owner.address}").json())
    assert chain.registry.functions.siteDevices(site).call() == len(meter["siteDevices"])
    pump = client.get(f"/v1/devices/{heat_pump}").json()
    assert (pump["site"], pump["zone"], pump["owner"], pump["siteDevices"]) == (site, ZONE, chain.owner.address, None)
    assert client.get(f"/v1/devices/{alone}").json()["site"] is None
    at_site = client.get("/v1/devices", params={"site": site, "limit": 1}).json()
    second = client.get("/v1/devices", params={"site": site, "cursor": at_site["next"]}).json()
    assert [d["address"] for d in at_site["items"] + second["items"]] == sorted([heat_pump, battery])
    assert second["next"] is None
    metered = client.get("/v1/devices", params={"kind": "site_meter"}).json()["items"]
    assert [d["address"] for d in metered] == [site]
    owner = client.get(f"/v1/owners/{chain.owner.address}").json()
    assert (owner["devices"], owner["activeDevices"], owner["capacityW"], owner["sites"]) == (3, 3, 10_000, 1)

    # the site changes hands in two steps; the registry emits one DeviceTransferred, for the site only
    new_owner = chain.other
    chain.owner.send(chain.registry.functions.transfer(site, new_owner.address))
    new_owner.send(chain.registry.functions.acceptTransfer(site))
    indexed_to_head(client, chain)
    for device in (site, heat_pump, battery):
        assert chain.registry.functions.ownerOf(device).call() == new_owner.address
        assert client.get(f"/v1/devices/{device}").json()["owner"] == new_owner.address
    assert client.get(f"/v1/devices/{alone}").json()["owner"] == chain.owner.address
    moved = client.get(f"/v1/owners/{new_owner.address}/devices").json()["items"]
    assert sorted(d["address"] for d in moved) == sorted([site, heat_pump, battery])
    left = client.get(f"/v1/owners/{chain.owner.address}").json()
    assert (left["devices"], left["capacityW"], left["sites"]) == (1, 2_000, 0)
    transfers = [e for e in chain.registry.events.DeviceTransferred().get_logs(from_block=0)]
    assert [e["args"]["device"] for e in transfers] == [site]

    # the new owner unregisters a device at the site: the site and the zone lose it, as on chain
    new_owner.send(chain.registry.functions.unregister(battery))
    indexed_to_head(client, chain)
    assert client.get(f"/v1/devices/{site}").json()["siteDevices"] == [heat_pump]
    assert client.get(f"/v1/zones/{ZONE}/stats").json()["activeCapacityW"] == \
        chain.registry.functions.zoneStats(ZONE).call()[1] == 5_000


def test_requests_carry_the_market_rules(devnet_factory, start_api, tmp_path):
    chain = Chain(devnet_factory({**PARAMS, "holdout_bps": HOLDOUT_BPS, "gate_lead_seconds": GATE_LEAD}))
    first = chain.open_request(zone=ZONE, start_in=600)
    chain.admin.send(chain.market.functions.setMarketRules(0, 0))
    second = chain.open_request(zone=ZONE, start_in=600)
    database = tmp_path / "rules.sqlite"
    url, _app = start_api(chain, database=str(database))
    client = http(url)
    indexed_to_head(client, chain)

    rules = {e["args"]["requestId"]: e["args"] for e in chain.market.events.RequestRules().get_logs(from_block=0)}
    assert rules[first]["holdoutBps"] == HOLDOUT_BPS and rules[second]["holdoutBps"] == 0
    opened = client.get(f"/v1/requests/{first}").json()
    assert (opened["holdoutBps"], opened["gateClosure"]) == (HOLDOUT_BPS, rules[first]["gateClosure"])
    assert opened["gateClosure"] == opened["start"] - GATE_LEAD
    assert opened["verification"] is None
    documented(RequestOut, opened)
    later = client.get(f"/v1/requests/{second}").json()
    assert (later["holdoutBps"], later["gateClosure"]) == (0, later["start"])  # no lead: the gate is the start
    listed = {r["id"]: (r["holdoutBps"], r["gateClosure"]) for r in client.get("/v1/requests").json()["items"]}
    assert listed == {first: (HOLDOUT_BPS, opened["gateClosure"]), second: (0, later["start"])}
    assert client.get(f"/v1/requests/{first}/sites").json() == {"items": [], "next": None}

    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        kinds = dict(connection.execute(text("SELECT name, kind FROM chain_events WHERE contract = 'FlexMarket'")).all())
    engine.dispose()
    assert kinds["RequestRules"] == "request" and kinds["MarketRulesSet"] == "other"  # the stream's kinds
