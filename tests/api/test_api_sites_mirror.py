"""The projection's site rules on a migrated mirror, without a chain: a site registered, a device
sited and the site transferred in ONE indexed range still move the device to the new owner (the
journal's pending rows are flushed before the devices at the site are looked up), a reorg rolls
that back exactly, a site meter leaves the zone totals alone, and a request's detail shows at most
SITES_IN_REQUEST units with a cursor to the rest; a verification the API cannot read is left out
while the document's payouts and proofs are kept."""

from __future__ import annotations

import copy
import json

from sqlalchemy import select, text
from test_documents import document

from api.db import make_engine
from api.documents import store_document, verify_document
from api.events import ChainLog
from api.journal import rollback
from api.migrate import upgrade
from api.models import api_metadata
from api.projection import Projection
from api.reads import SITES_IN_REQUEST, Reads

SITE, PUMP, LONE = "0x" + "5a" * 20, "0x" + "6b" * 20, "0x" + "7c" * 20
ALICE, BOB = "0x" + "a1" * 20, "0x" + "b2" * 20
DEVICES = api_metadata.tables["devices"]
TOTALS = api_metadata.tables["zone_totals"]


def log(block: int, index: int, contract: str, name: str, args: dict, tx: str | None = None) -> ChainLog:
    return ChainLog(block, "0x" + f"{block:064x}", index, tx or "0x" + f"{block:032x}{index:032x}", contract, name,
                    args)


def registered(block: int, index: int, device: str, kind: int, capacity_w: int) -> ChainLog:
    return log(block, index, "DeviceRegistry", "DeviceRegistered",
               {"device": device, "owner": ALICE, "kind": kind, "capacityW": capacity_w, "zone": 9})


def mirror(tmp_path):
    engine = make_engine(str(tmp_path / "sites.sqlite"))
    upgrade(engine)
    return engine


def owners(engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(select(DEVICES.c.address, DEVICES.c.owner)).all())


def test_a_site_transferred_in_the_range_that_registered_it_and_its_reorg(tmp_path):
    engine = mirror(tmp_path)
    with engine.begin() as connection:
        Projection(connection).apply([registered(10, 0, LONE, 1, 2_000)])
    with engine.begin() as connection:
        Projection(connection).apply([
            registered(11, 0, SITE, 6, 17_250),
            registered(11, 1, PUMP, 1, 3_000),
            log(11, 2, "DeviceRegistry", "DeviceSited", {"device": PUMP, "site": SITE}),
            log(12, 0, "DeviceRegistry", "DeviceTransferred", {"device": SITE, "from": ALICE, "to": BOB}),
        ])
    assert owners(engine) == {SITE: BOB, PUMP: BOB, LONE: ALICE}
    with engine.connect() as connection:
        totals = connection.execute(select(TOTALS.c.devices, TOTALS.c.active_devices, TOTALS.c.active_capacity_w)
                                    .where(TOTALS.c.zone == 9)).one()
    assert tuple(totals) == (2, 2, 5_000)  # the lone device and the pump; not the site's 17,250 W
    reads = Reads(engine)
    assert reads.device(SITE)["siteDevices"] == [PUMP] and reads.device(PUMP)["site"] == SITE
    assert (reads.owner(BOB)["devices"], reads.owner(BOB)["sites"], reads.owner(BOB)["capacityW"]) == (1, 1, 3_000)

    with engine.begin() as connection:  # the transfer's block is reorged away: the pump is Alice's again
        rollback(connection, 11)
    assert owners(engine) == {SITE: ALICE, PUMP: ALICE, LONE: ALICE}
    with engine.begin() as connection:  # and the whole range: no site, no pump
        rollback(connection, 10)
    assert owners(engine) == {LONE: ALICE}

    with engine.begin() as connection:  # a site meter unregistered leaves the zone's totals as they were
        Projection(connection).apply([registered(13, 0, SITE, 6, 17_250),
                                      log(14, 0, "DeviceRegistry", "DeviceUnregistered", {"device": SITE, "owner": ALICE})])
    with engine.connect() as connection:
        assert connection.execute(text("SELECT devices, active_capacity_w FROM zone_totals WHERE zone = 9")).one() \
            == (1, 2_000)
    assert Reads(engine).device(SITE)["siteDevices"] == []


def settled_request(engine, digest: str, request_id: int, start: int = 1_000, end: int = 2_000) -> None:
    """Request `request_id`, settling under report `digest` (the way FlexMarket and OracleHub emit it)."""
    tx = "0x" + "99" * 32
    with engine.begin() as connection:
        Projection(connection).apply([
            log(20, 0, "FlexMarket", "RequestOpened", {"requestId": request_id, "buyer": ALICE, "zone": 9,
                                                       "start": start, "end": end, "targetW": 5_000,
                                                       "pricePerKWh": 200_000, "paymentToken": BOB,
                                                       "maxBudget": 1_000}),
            log(20, 1, "FlexMarket", "RequestRules", {"requestId": request_id, "holdoutBps": 1_000,
                                                      "gateClosure": 940}),
            log(21, 0, "OracleHub", "ReportSubmitted", {
                "epoch": 3, "digest": digest, "report": {"epoch": 3, "previousRoot": "0x" + "00" * 32,
                                                         "rewardsRoot": "0x" + "00" * 32,
                                                         "requestsHash": "0x" + "00" * 32,
                                                         "penaltiesHash": "0x" + "00" * 32, "emission": 0},
                "penalties": [], "signers": [ALICE], "submitter": ALICE, "challengeDeadline": 5_000}, tx=tx),
            log(21, 1, "FlexMarket", "RequestSettling", {"requestId": request_id, "payout": 1_000}, tx=tx),
        ])


def test_the_request_detail_caps_its_sites_and_pages_the_rest(tmp_path):
    engine = mirror(tmp_path)
    body, digest, root, requests_hash = document()  # request 4 of test_documents, verified against its root
    units = [{"site": "0x" + f"{i + 1:040x}", "group": "control" if i % 10 == 0 else "treatment",
              "committedW": 1_000, "devices": [], "paidWh": 0 if i % 10 == 0 else i, "weightWh": i}
             for i in range(SITES_IN_REQUEST + 7)]
    body["requests"][0]["verification"] = {"holdoutBps": 1_000, "gateClosure": 940, "sites": units,
                                           "portfolio": {"estimated_wh": 5, "ci95_wh": [1, 9], "rule": "portfolio",
                                                         "fallback_reason": None}}
    assert store_document(engine, verify_document(body, digest, root, requests_hash), "test")
    settled_request(engine, digest, 4)
    reads = Reads(engine)
    found = reads.request(4)
    v = found["verification"]
    assert (found["holdoutBps"], found["gateClosure"], found["reportDigest"]) == (1_000, 940, digest)
    held = sum(1 for u in units if u["group"] == "control")
    assert (v["siteCount"], v["heldOutSites"], v["dispatchedSites"]) == (len(units), held, len(units) - held)
    assert v["paidWh"] == sum(u["paidWh"] for u in units)
    assert len(v["sites"]) == SITES_IN_REQUEST and v["sitesNext"] is not None
    rest = reads.request_sites(4, None, v["sitesNext"], 200)
    seen = [s["site"] for s in v["sites"] + rest["items"]]
    assert seen == sorted(seen) and len(set(seen)) == len(units) and rest["next"] is None
    assert reads.request_sites(4, "control", None, 200)["items"][0]["paidWh"] == 0
    assert len(reads.request_sites(4, "control", None, 200)["items"]) == held
    assert json.dumps(found)  # JSON-ready as served


def test_an_unreadable_verification_is_left_out_and_the_document_kept(tmp_path, caplog):
    engine = mirror(tmp_path)
    body, digest, root, requests_hash = document()
    bad = copy.deepcopy(body)
    bad["requests"][0]["verification"] = {"sites": [{"site": "0x" + "01" * 20, "group": "somewhere"}]}
    assert store_document(engine, verify_document(bad, digest, root, requests_hash), "test")
    assert "verification left out" in caplog.text and "group" in caplog.text
    settled_request(engine, digest, 4)
    found = Reads(engine).request(4)
    assert found["verification"] is None and found["deliveredWh"] == 5 and len(found["devices"]) == 1
    assert Reads(engine).request_sites(4, None, None, 50) == {"items": [], "next": None}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM reward_leaves")).scalar_one() == 2


def oracle_settled(tmp_path):
    """A mirror holding request 7 as the oracle's own per-site settlement (oracle.epoch.settle_input,
    oracle.report_store) published it: 16 sites of flat load, each with a water heater; the sites
    protocol.holdout does not hold out shed 400 Wh per interval (the heater's 300 and 100 more) for the
    event's 4 intervals. Returns the engine and the inputs (a SimpleNamespace)."""
    from types import SimpleNamespace

    from oracle.baselines import CAISO, BaselineSpec
    from oracle.chain_view import DeviceInfo, RequestInfo
    from oracle.epoch import OracleEconomics, settle_input
    from oracle.report_store import report_document
    from oracle.settlement import SettlementParams, settle_epoch
    from protocol.holdout import is_held_out
    from protocol.kinds import DeviceKind

    interval, day, seed, holdout = 900, 86_400, bytes(range(32)), 3_000
    start = 1_700_000_000 // day * day + 40 * day + 18 * 3_600
    sites = [f"0x{0x5100 + i:040x}" for i in range(16)]
    heaters = [f"0x{0xd100 + i:040x}" for i in range(16)]
    owner = "0x" + "0a" * 20
    treated = {s for s in sites if not is_held_out(seed, 7, s, holdout)}
    assert 0 < len(treated) < len(sites) - 1
    devices, readings = {}, {}
    for n, (site, heater) in enumerate(zip(sites, heaters)):
        devices[site] = DeviceInfo(site, owner, int(DeviceKind.SITE_METER), 20_000, 1, True)
        devices[heater] = DeviceInfo(heater, owner, int(DeviceKind.WATER_HEATER), 3_000, 1, True, site=site)
        times = range(start - 30 * day, start + 3_600, interval)
        cut = lambda t: site in treated and start <= t < start + 3_600  # noqa: E731
        readings[site] = {t: 1_000 + 10 * n - (400 if cut(t) else 0) for t in times}
        readings[heater] = {t: 0 if cut(t) else 300 for t in times}
    request = RequestInfo(request_id=7, zone=1, start=start, end=start + 3_600, target_w=40_000,
                          price_per_kwh=250_000, payment_token="0x" + "bb" * 20, buyer="0x" + "b0" * 20,
                          max_budget=10**12, holdout_bps=holdout, gate_closure=start - 900)
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20,
                              interval_seconds=interval)
    economics = OracleEconomics(params=params, baseline=BaselineSpec(CAISO, adjustment="ratio"))
    commitments = [SimpleNamespace(device=h, watts=2_000) for h in heaters]
    request_in, records, published = settle_input(request, commitments, devices, readings, economics, seed=seed)
    settlement = settle_epoch(1, bytes(32), {}, [request_in], params, emission_budget=10**30)
    settlement.verifications = {7: published}
    body = report_document(b"\x42" * 32, settlement, {7: records}).as_json()  # as it travels over HTTP
    report = settlement.report
    engine = mirror(tmp_path)
    verified = verify_document(body, "0x" + "42" * 32, "0x" + report.rewards_root.hex(),
                               "0x" + report.requests_hash.hex())
    assert store_document(engine, verified, "oracle")
    settled_request(engine, "0x" + "42" * 32, 7, start, start + 3_600)
    return engine, SimpleNamespace(sites=sites, heaters=heaters, owner=owner, treated=treated, readings=readings,
                                   start=start, interval=interval, seed=seed, holdout=holdout, published=published)


def test_a_document_the_oracle_settled_per_site_is_read_as_published(tmp_path):
    """The oracle's own per-site settlement to the API's view; the groups are checked against
    protocol.holdout directly, the estimate against flat loads."""
    engine, case = oracle_settled(tmp_path)
    sites, treated, published, start = case.sites, case.treated, case.published, case.start
    holdout, seed = case.holdout, case.seed
    v = Reads(engine).request(7)["verification"]
    assert (v["dispatchedSites"], v["heldOutSites"]) == (len(treated), len(sites) - len(treated))
    assert v["estimatedWh"] == published["portfolio"]["estimated_wh"] == len(treated) * 4 * 400
    assert v["ci95Wh"] == published["portfolio"]["ci95_wh"] and v["rule"] == published["portfolio"]["rule"]
    assert (v["holdoutBps"], v["gateClosure"], v["seed"]) == (holdout, start - 900, "0x" + seed.hex())
    assert {s["site"].lower(): s["group"] for s in v["sites"]} == {
        s: "treatment" if s in treated else "control" for s in sites}
    assert v["paidWh"] == sum(s["paidWh"] for s in published["sites"])
    assert all(s["paidWh"] == 0 for s in v["sites"] if s["group"] == "control")
