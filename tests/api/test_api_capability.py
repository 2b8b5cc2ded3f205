"""Capability records in the API (api.capability): stored with a verified report document that
settled a capability test, served at /v1/sites/{address}/capability (newest first, each with whether
its report is final) and, the latest final one, as `capability` on the site meter's DeviceOut; a
malformed record leaves that request's records out and keeps the document."""

from __future__ import annotations

import copy

import httpx
from eth_utils import to_checksum_address as checksummed
from conftest import mirror_app
from test_api_sites_mirror import ALICE, log, mirror, registered, settled_request
from test_documents import document
from uvicorn_server import serve

from api.documents import store_document, verify_document
from api.projection import Projection
from api.reads import Reads

SITE, OTHER_SITE, PUMP = (checksummed("0x" + c * 20) for c in ("5a", "5b", "6b"))  # as the indexer stores them


def capability_document(records: list[dict]):
    body, digest, root, requests_hash = document()  # request 4, verified against its root
    body["requests"][0]["verification"] = {"capabilityTest": True, "testBps": 2_000, "gateClosure": 940,
                                           "seed": "0x" + "11" * 32, "capability": records,
                                           "sites": [{"site": r["site"], "group": "treatment",
                                                      "committedW": r["testedW"], "paidWh": 0, "devices": []}
                                                     for r in records]}
    return body, digest, root, requests_hash


def finalize(engine, digest: str) -> None:
    with engine.begin() as connection:
        Projection(connection).apply([log(30, 0, "OracleHub", "ReportFinalized", {"epoch": 3, "digest": digest})])


def test_records_are_served_after_a_verified_document_and_the_latest_final_one_on_the_site(tmp_path):
    engine = mirror(tmp_path)
    with engine.begin() as connection:
        Projection(connection).apply([registered(11, 0, SITE, 6, 17_250), registered(11, 1, OTHER_SITE, 6, 9_000),
                                      registered(11, 2, PUMP, 1, 3_000),
                                      log(11, 3, "DeviceRegistry", "DeviceSited", {"device": PUMP, "site": SITE})])
    site, other = checksummed(SITE), checksummed(OTHER_SITE)
    records = [{"site": site, "requestId": 4, "testedW": 2_350, "passed": True, "testedAt": 1_000},
               {"site": other, "requestId": 4, "testedW": 0, "passed": False, "testedAt": 1_000}]
    body, digest, root, requests_hash = capability_document(records)
    url, server, thread = serve(mirror_app(str(engine.url)))
    try:
        # before any document: the site is known, with no record
        answer = httpx.get(f"{url}/v1/sites/{site}/capability").json()
        assert answer == {"site": site, "latest": None, "records": []}
        assert httpx.get(f"{url}/v1/devices/{site}").json()["capability"] is None
        assert httpx.get(f"{url}/v1/sites/{'0x' + '99' * 20}/capability").status_code == 404

        assert store_document(engine, verify_document(body, digest, root, requests_hash), "test")
        settled_request(engine, digest, 4)  # the report is submitted: pending, not final yet
        answer = httpx.get(f"{url}/v1/sites/{site}/capability").json()
        assert answer["records"] == [{**records[0], "final": False}] and answer["latest"] is None

        finalize(engine, digest)
        answer = httpx.get(f"{url}/v1/sites/{site}/capability").json()
        assert answer["latest"] == records[0] and answer["records"] == [{**records[0], "final": True}]
        assert httpx.get(f"{url}/v1/devices/{site}").json()["capability"] == records[0]
        assert httpx.get(f"{url}/v1/devices/{other}").json()["capability"] == records[1]  # failed: served too
        page = httpx.get(f"{url}/v1/devices", params={"kind": "site_meter"}).json()
        assert {d["address"]: d["capability"] for d in page["items"]} == {site: records[0], other: records[1]}
        assert httpx.get(f"{url}/v1/devices/{checksummed(PUMP)}").json()["capability"] is None  # not a site meter
        spec = httpx.get(f"{url}/openapi.json").json()
        assert "/v1/sites/{address}/capability" in spec["paths"]
        assert "capability" in spec["components"]["schemas"]["DeviceOut"]["properties"]
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_a_malformed_record_leaves_the_requests_records_out_and_keeps_the_document(tmp_path, caplog):
    engine = mirror(tmp_path)
    good = {"site": checksummed(SITE), "requestId": 4, "testedW": 2_000, "passed": True, "testedAt": 1_000}
    for bad in ({**good, "passed": "yes"}, {**good, "requestId": 5}, {**good, "testedW": -3}):
        body, digest, root, requests_hash = capability_document([good, bad])
        verified = verify_document(copy.deepcopy(body), digest, root, requests_hash)
        assert verified.capability == [] and verified.leaves  # no records, payouts and proofs kept
    assert "capability records left out" in caplog.text
    body, digest, root, requests_hash = capability_document([good])
    verified = verify_document(body, digest, root, requests_hash)
    assert verified.capability == [{"request_id": 4, "site": good["site"], "tested_w": 2_000, "passed": True,
                                    "tested_at": 1_000}]
    # an ordinary per-site request's verification has no capability records
    body["requests"][0]["verification"].pop("capabilityTest")
    assert verify_document(body, digest, root, requests_hash).capability == []
    assert Reads(engine).device(SITE) is None
    assert ALICE
