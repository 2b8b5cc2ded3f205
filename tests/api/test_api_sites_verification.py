"""A per-site request's verification, from the oracle's published report document to the API: the
summary (estimate, its 95 % interval, the rule, the fallback reason, dispatched and held-out
counts), each unit's group and paid Wh, paged; a verification the API cannot read is left out while
the document's payouts and proofs are still served."""

from __future__ import annotations

import copy

import pytest
from conftest import PARAMS, Chain, OraclePublisher, device_result, http, indexed_to_head
from eth_utils import to_checksum_address
from test_api_sites_chain import documented, register_at_site

from api.schemas import RequestOut, SitePage, SiteResult, VerificationOut
from api.verification import UnreadableVerification, read_verification

ZONE = 3


def verification(units: list[tuple[str, str, int, list[str]]], estimated_wh: int) -> dict:
    """The object the oracle's per-site settlement publishes (oracle/site_settlement.py), site fallback rule."""
    return {
        "holdoutBps": 2_500, "gateClosure": 1_800_000_000, "seed": "0x" + "5e" * 32, "estimator": "did",
        "portfolio": {"method": "site", "requested_method": "did", "estimated_wh": estimated_wh,
                      "ci95_wh": [estimated_wh - 400, estimated_wh + 400], "treatment": 2, "control": 1,
                      "variance_wh2": 41_000, "df": 2, "rule": "site_fallback",
                      "fallback_reason": "portfolio_quality_failed",
                      "quality": {"passed": False, "days": 5, "n": 20, "rrmse": 0.31, "max_rrmse_bps": 2_000},
                      "not_used": None},
        "sites": [{"site": site, "group": group, "committedW": 4_000, "devices": devices, "paidWh": paid,
                   "weightWh": paid} for site, group, paid, devices in units],
    }


def test_a_settled_per_site_request_shows_its_verification(devnet_factory, start_api, serve_app, tmp_path):
    chain = Chain(devnet_factory({**PARAMS, "holdout_bps": 2_500, "gate_lead_seconds": 60}))
    publisher = OraclePublisher(str(tmp_path / "oracle.sqlite"), serve_app)
    chain.add_oracles([publisher.url, publisher.url])
    sites = [chain.register(capacity_w=17_250, zone=ZONE, kind=6).address for _ in range(3)]
    devices = {site: register_at_site(chain, site, 4_000) for site in sites}
    request_id = chain.open_request(zone=ZONE, start_in=120, duration=120)
    chain.warp(400)
    usd = chain.stablecoin.address
    control = sites[1]
    paid = {sites[0]: 700, sites[1]: 0, sites[2]: 500}
    units = [(s, "control" if s == control else "treatment", paid[s], [devices[s]]) for s in sites]
    outcomes = [device_result(s, chain.owner.address, paid[s], paid[s] * 200) for s in sites]
    held = outcomes[1]
    held.update(eligible=False, reasons=["held_out"], committedWh=0)
    payout = sum(paid.values()) * 200
    report = chain.make_report({(chain.owner.address, usd): payout}, [(request_id, payout)],
                               devices={request_id: outcomes})
    report.body["requests"][0]["verification"] = verification(units, estimated_wh=1_200)
    publisher.publish(report.body)
    chain.submit(report)
    chain.finalize(report)
    url, _app = start_api(chain)
    client = http(url)
    indexed_to_head(client, chain)

    found = client.get(f"/v1/requests/{request_id}").json()
    assert (found["status"], found["holdoutBps"], found["reportDigest"]) == ("settled", 2_500, report.digest)
    v = found["verification"]
    assert (v["estimatedWh"], v["ci95Wh"], v["rule"], v["fallbackReason"]) == (
        1_200, [800, 1_600], "site_fallback", "portfolio_quality_failed")
    assert (v["method"], v["estimator"], v["qualityPassed"], v["seed"]) == ("site", "did", False, "0x" + "5e" * 32)
    assert (v["siteCount"], v["dispatchedSites"], v["heldOutSites"], v["paidWh"]) == (3, 2, 1, 1_200)
    assert [(s["site"], s["group"], s["paidWh"], s["devices"]) for s in v["sites"]] == sorted(
        (s, g, w, d) for s, g, w, d in units)
    assert v["sitesNext"] is None
    assert {d["device"]: d["reasons"] for d in found["devices"]}[control] == ["held_out"]
    documented(RequestOut, found)  # the served JSON is what the OpenAPI document says
    documented(VerificationOut, found["verification"])
    documented(SiteResult, found["verification"]["sites"][0])
    # the list route stays light: no per-device results, no verification
    listed = client.get("/v1/requests").json()["items"][0]
    assert (listed["devices"], listed["verification"], listed["holdoutBps"]) == (None, None, 2_500)

    first = client.get(f"/v1/requests/{request_id}/sites", params={"limit": 2}).json()
    rest = client.get(f"/v1/requests/{request_id}/sites", params={"limit": 2, "cursor": first["next"]}).json()
    assert [s["site"] for s in first["items"] + rest["items"]] == sorted(sites) and rest["next"] is None
    SitePage.model_validate(first, strict=True)
    held_out = client.get(f"/v1/requests/{request_id}/sites", params={"group": "control"}).json()["items"]
    assert [(s["site"], s["paidWh"], s["committedW"]) for s in held_out] == [(control, 0, 4_000)]
    missing = client.get("/v1/requests/999/sites")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    bad = client.get(f"/v1/requests/{request_id}/sites", params={"cursor": "nope"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"


GOOD = verification([("0x" + "1a" * 20, "treatment", 900, ["0x" + "2b" * 20]),
                     ("0x" + "3c" * 20, "control", 0, ["0x" + "4d" * 20])], estimated_wh=900)


def test_the_summary_counts_what_the_sites_say():
    read = read_verification(GOOD)
    assert (read.summary["dispatchedSites"], read.summary["heldOutSites"], read.summary["paidWh"]) == (1, 1, 900)
    assert (read.summary["ci95Wh"], read.summary["treatmentInEstimate"]) == ([500, 1_300], 2)
    assert [(row["site"], row["group_name"], row["paid_wh"]) for row in read.sites] == [
        (to_checksum_address("0x" + "1a" * 20), "treatment", 900), (to_checksum_address("0x" + "3c" * 20), "control", 0)]
    empty = read_verification({"holdoutBps": 0, "error": "no usable site meter data"})
    assert (empty.summary["estimatedWh"], empty.summary["siteCount"], empty.summary["error"]) == (
        None, 0, "no usable site meter data")


@pytest.mark.parametrize("tamper, reason", [
    (lambda v: v["sites"][0].update(group="maybe"), "group"),
    (lambda v: v["sites"].append(dict(v["sites"][0])), "listed twice"),
    (lambda v: v["sites"][0].update(paidWh="900"), "paidWh"),
    (lambda v: v["sites"][0].update(paidWh=-1), "paidWh"),
    (lambda v: v["portfolio"].update(ci95_wh=[1]), "ci95_wh"),
    (lambda v: v["portfolio"].update(estimated_wh=2**70), "estimated_wh"),
    (lambda v: v["sites"][0].update(site="not an address"), "site"),
    (lambda v: v.update(holdoutBps=10_001), "holdoutBps"),
])
def test_an_unreadable_verification_is_refused_with_the_reason(tamper, reason):
    bad = copy.deepcopy(GOOD)
    tamper(bad)
    with pytest.raises(UnreadableVerification, match=reason):
        read_verification(bad)
