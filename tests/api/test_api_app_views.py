"""The routes the web app reads, on a mirror holding the oracle's own per-site settlement (see
test_api_sites_mirror.oracle_settled), checked against the raw meter readings the oracle settled
from, not against the oracle's records: a request's plotted series, an owner's events (from the
report, and before it from the verified allocation), the oracles, /v1/network and the app at `/`."""

from __future__ import annotations

import httpx
from conftest import mirror_app
from eth_utils import to_checksum_address
from sqlalchemy import insert
from test_api_sites_mirror import ALICE, log, oracle_settled

from api.allocation_documents import ALLOCATION_UNITS, allocation_lines
from api.app_reads import oracles, owner_events, request_series
from api.projection import Projection
from protocol.allocation_document import AllocationDocument
from protocol.kinds import DeviceKind

EVENT_INTERVALS = 4


def register_sites(engine, case) -> None:
    """The case's site meters and their heaters, registered to its owner (heaters sited at their site)."""
    logs, index = [], 0
    for site, heater in zip(case.sites, case.heaters):
        for device, kind, watts in ((site, DeviceKind.SITE_METER, 20_000), (heater, DeviceKind.WATER_HEATER, 3_000)):
            logs.append(log(5, index, "DeviceRegistry", "DeviceRegistered",
                            {"device": to_checksum_address(device), "owner": to_checksum_address(case.owner),
                             "kind": int(kind), "capacityW": watts, "zone": 9}))
            index += 1
        logs.append(log(5, index, "DeviceRegistry", "DeviceSited",
                        {"device": to_checksum_address(heater), "site": to_checksum_address(site)}))
        index += 1
    with engine.begin() as connection:
        Projection(connection).apply(logs)


def event_times(case) -> list[int]:
    return [case.start + k * case.interval for k in range(EVENT_INTERVALS)]


def test_the_series_is_each_groups_readings_summed(tmp_path):
    engine, case = oracle_settled(tmp_path)
    series = request_series(engine, 7)
    assert series["intervalSeconds"] == case.interval and series["requestId"] == 7
    groups = {g["group"]: g for g in series["groups"]}
    assert set(groups) == {"treatment", "control"}
    for name, members in (("treatment", [s for s in case.sites if s in case.treated]),
                          ("control", [s for s in case.sites if s not in case.treated])):
        assert groups[name]["sites"] == len(members)
        # actual: the site meters' own readings over the window, summed per interval
        assert groups[name]["actualWh"] == [sum(case.readings[s][t] for s in members) for t in event_times(case)]
        # baseline: the flat load every site had before the event (1,000 + 10 n Wh per interval)
        flat = sum(1_000 + 10 * case.sites.index(s) for s in members)
        assert groups[name]["baselineWh"] == [flat] * EVENT_INTERVALS
    portfolio = case.published["portfolio"]
    assert (series["estimatedWh"], series["ci95Wh"], series["rule"]) == (
        portfolio["estimated_wh"], portfolio["ci95_wh"], portfolio["rule"])
    treated = groups["treatment"]
    assert sum(b - a for b, a in zip(treated["baselineWh"], treated["actualWh"])) == len(case.treated) * 4 * 400
    assert request_series(engine, 99) is None


def test_an_owners_events_come_from_the_report_then_from_the_allocation(tmp_path):
    engine, case = oracle_settled(tmp_path)
    register_sites(engine, case)
    owner = to_checksum_address(case.owner)
    settled = owner_events(engine, owner, None, 200)["items"]
    assert [e["requestId"] for e in settled] == [7] * len(case.sites)
    by_site = {e["unit"].lower(): e for e in settled}
    assert set(by_site) == set(case.sites)
    paid = {s["site"].lower(): s["paidWh"] for s in case.published["sites"]}
    for site, event in by_site.items():
        assert event["unitKindName"] == "site_meter" and event["settled"]
        if site in case.treated:
            assert (event["group"], event["decision"]) == ("treatment", "dispatched")
            assert event["deliveredWh"] == paid[site] and int(event["payout"]) > 0
        else:
            assert (event["group"], event["decision"]) == ("control", "held_out")
            assert event["payout"] == "0" and "held_out" in event["reasons"]

    # Request 8 is cleared but not settled: its events are the verified allocation's lines.
    site, other, control = case.sites[0], case.sites[1], case.sites[2]
    document = AllocationDocument(requestId=8, root="0x" + "88" * 32, acceptedW=3_500, clearingPrice=1, capW=5_000,
                                  marginBps=0, offers=3, controlSites=[control], accepted=[
                                      {"device": case.heaters[0], "site": site, "watts": 2_000},
                                      {"device": case.heaters[1], "site": other, "watts": 1_500}])
    with engine.begin() as connection:
        Projection(connection).apply([
            log(30, 0, "FlexMarket", "RequestOpened", {"requestId": 8, "buyer": owner, "zone": 9, "start": 5_000,
                                                       "end": 5_900, "targetW": 3_000, "pricePerKWh": 1,
                                                       "paymentToken": owner, "maxBudget": 10}),
            log(31, 0, "FlexMarket", "AllocationPosted", {"requestId": 8, "acceptedW": 3_500, "clearingPrice": 1,
                                                          "availabilityPrice": 0, "root": document.root})])
        connection.execute(insert(ALLOCATION_UNITS), [{"request_id": 8, "root": document.root, **line}
                                                      for line in allocation_lines(document)])
    # a page at a time: every unit once, newest request first
    seen, cursor = [], None
    while True:
        page = owner_events(engine, owner, cursor, 2)
        seen += page["items"]
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(case.sites) + 3
    assert [(e["requestId"], e["unit"]) for e in seen] == sorted(
        ((e["requestId"], e["unit"]) for e in seen), key=lambda k: (-k[0], k[1]))
    fresh = {e["unit"].lower(): e for e in seen if e["requestId"] == 8}
    assert fresh[site]["decision"] == "dispatched" and fresh[site]["acceptedW"] == 2_000 and not fresh[site]["settled"]
    assert fresh[site]["devices"] == [{"device": to_checksum_address(case.heaters[0]), "kindName": "water_heater",
                                       "acceptedW": 2_000}]
    assert fresh[other]["acceptedW"] == 1_500
    assert fresh[control]["decision"] == "held_out" and fresh[control]["acceptedW"] == 0
    assert owner_events(engine, to_checksum_address("0x" + "77" * 20), None, 50) == {"items": [], "next": None}


def test_the_routes_and_the_app_over_http(tmp_path, serve_app):
    engine, case = oracle_settled(tmp_path)
    register_sites(engine, case)
    with engine.begin() as connection:
        Projection(connection).apply([
            log(40, 0, "OracleHub", "OracleAdded", {"oracle": ALICE}),
            log(40, 1, "OracleHub", "OracleUrlSet", {"oracle": ALICE, "url": "http://oracle.test"})])
    web = tmp_path / "dist"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>negawatt</title><script src=/assets/app.js></script>")
    (web / "assets" / "app.js").write_text("console.log('negawatt')")
    app = mirror_app(str(engine.url), web_dir=web)
    with httpx.Client(base_url=serve_app(app), timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "negawatt" in page.text
        assert client.get("/assets/app.js").text == "console.log('negawatt')"
        missing = client.get("/v1/no-such-route")  # the API's paths stay the API's
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"

        series = client.get("/v1/requests/7/series").json()
        assert series == request_series(engine, 7)
        unsettled = client.get("/v1/requests/99/series")
        assert unsettled.status_code == 404 and unsettled.json()["code"] == "unknown_request"
        owner = to_checksum_address(case.owner)
        events = client.get(f"/v1/owners/{owner}/events", params={"limit": 3}).json()
        assert len(events["items"]) == 3 and events["next"]
        bad = client.get(f"/v1/owners/{owner}/events", params={"cursor": "AAAA"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
        listed = client.get("/v1/oracles").json()["items"]
        assert listed == oracles(engine) and listed[0]["url"] == "http://oracle.test"
        assert listed[0]["lastReport"]["digest"] == "0x" + "42" * 32  # settled_request's report, which it signed
        network = client.get("/v1/network").json()
        assert network["chainId"] == 31337 and network["devnet"] is True


def test_a_tree_without_the_build_says_how_to_build_it(tmp_path, serve_app):
    engine, _case = oracle_settled(tmp_path)
    app = mirror_app(str(engine.url), web_dir=tmp_path / "nothing")
    with httpx.Client(base_url=serve_app(app), timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 503 and "make setup" in page.text
