"""The OpenADR 3.1.0 facade against the stock openadr3-client 2.4.2 (its own Python 3.12 venv), over
real HTTP, on anvil with a real oracle ingest: a BL event becomes an escrowed FlexMarket request,
a VEN reads it and its usage reaches the oracle as signed meter batches, the result comes back as a
report, bad events send nothing, deleting an event cancels its request, and one VEN client cannot
read another's objects."""

from __future__ import annotations

import httpx
from conftest import ZONE, event_start, iso, run_client


def _nonce(net) -> int:
    return int(net.web3.eth.get_transaction_count(net.buyer.address))


def test_bl_event_becomes_an_escrowed_request_and_its_result_a_report(vtn_net):
    program = run_client("bl.py", vtn_net.vtn_json, "program", "--zone", str(ZONE), "--ceiling", "0.30",
                         "--name", "zone-1-evening")
    assert program["status"] == 201, program
    rules = {a["type"]: a["values"] for a in program["attributes"]}
    assert rules["NEGAWATT_HOLDOUT_BPS"] == [5000] and rules["NEGAWATT_GATE_LEAD_SECONDS"] == [900]
    before = int(vtn_net.market.functions.requestCount().call())
    start = event_start(vtn_net.web3)
    event = run_client("bl.py", vtn_net.vtn_json, "event", "--program", program["id"], "--start", iso(start),
                       "--minutes", "60", "--kw", "5")
    assert event["status"] == 201, event
    request_id = int(vtn_net.market.functions.requestCount().call())
    assert request_id == before + 1
    (buyer, r_start, r_end, status, allocated, token, zone, target_w, price, escrow, deposited, paid) = \
        vtn_net.market.functions.getRequest(request_id).call()
    assert buyer == vtn_net.buyer.address and (r_start, r_end) == (start, start + 3600)
    assert (zone, target_w, price) == (ZONE, 5_000, 300_000) and status == 1 and not allocated
    assert deposited == escrow == 1_500_000  # 5 kW x 1 h x 0.30 mUSD, in base units (6 decimals)
    assert token == vtn_net.stablecoin.address
    results = run_client("bl.py", vtn_net.vtn_json, "results", "--event", event["id"])
    (report,) = results["reports"]
    assert report["reportName"] == "negawatt-result" and report["clientID"] == "negawatt-vtn"
    payloads = report["payloads"]
    assert payloads["NEGAWATT_REQUEST_ID"] == [request_id] and payloads["NEGAWATT_STATUS"] == ["open"]
    assert payloads["NEGAWATT_REQUESTED_KW"] == [5.0] and payloads["NEGAWATT_ESCROW"] == ["1.5"]
    vtn_net.event = (program["id"], event["id"], request_id, start)


def test_a_ven_reads_the_event_and_its_usage_reaches_the_oracle(vtn_net):
    program_id, event_id, _, _ = vtn_net.event
    ven = run_client("ven.py", vtn_net.vtn_json, "register", "--ven", "cpo-backend", "--resource", "charger-hub-1")
    assert ven["status"] == 201 and len(ven["site"]) == 1 and ven["site"][0] in vtn_net.sites, ven
    site = ven["site"][0]
    events = run_client("ven.py", vtn_net.vtn_json, "events")["events"]
    seen = {e["id"]: e for e in events}
    assert event_id in seen and seen[event_id]["programID"] == program_id
    assert seen[event_id]["payloads"] == [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-5.0]}]
    now = int(vtn_net.web3.eth.get_block("latest")["timestamp"])
    start = (now // 900) * 900 - 3600  # the last four whole intervals
    report = run_client("ven.py", vtn_net.vtn_json, "report", "--event", event_id, "--resource", "charger-hub-1",
                        "--ven", "cpo-backend", "--start", iso(start), "--kwh", "1.25,1.5,0.75,2")
    assert report["status"] == 201, report
    stored = httpx.get(f"{vtn_net.oracle_url}/v1/meter-batches",
                       params={"device": site, "from": start, "to": start + 3600}).json()
    assert [b["readings"] for b in stored] == [[1250, 1500, 750, 2000]]
    assert stored[0]["start"] == start and stored[0]["intervalSeconds"] == 900
    vtn_net.ven = (ven["ven_id"], report["id"])


def test_bad_events_get_a_problem_and_send_nothing(vtn_net):
    program_id, _, _, _ = vtn_net.event
    nonce = _nonce(vtn_net)
    count = int(vtn_net.market.functions.requestCount().call())
    now = int(vtn_net.web3.eth.get_block("latest")["timestamp"])
    rich = run_client("bl.py", vtn_net.vtn_json, "program", "--zone", str(ZONE), "--ceiling", "1000000",
                      "--name", "too-dear")
    cases = {
        "past": ("--program", program_id, "--start", iso((now // 900) * 900 - 1800)),
        "gate": ("--program", program_id, "--start", iso(-(-(now + 60) // 900) * 900)),
        "unknown program": ("--program", "no-such-program", "--start", iso(event_start(vtn_net.web3))),
        "unsupported payload": ("--program", program_id, "--start", iso(event_start(vtn_net.web3)),
                                "--type", "PRICE"),
        "import limit without reference": ("--program", program_id, "--start", iso(event_start(vtn_net.web3)),
                                           "--type", "IMPORT_CAPACITY_LIMIT"),
        "no budget": ("--program", rich["id"], "--start", iso(event_start(vtn_net.web3))),
    }
    for name, args in cases.items():
        answer = run_client("bl.py", vtn_net.vtn_json, "event", *args)
        assert answer["status"] in (400, 409), (name, answer)
        problem = answer["problem"]
        assert problem["status"] == answer["status"] and problem["title"] and problem["detail"], (name, problem)
    assert "no budget" in run_client("bl.py", vtn_net.vtn_json, "event", *cases["no budget"])["problem"]["detail"]
    assert _nonce(vtn_net) == nonce  # nothing was sent on chain
    assert int(vtn_net.market.functions.requestCount().call()) == count


def test_deleting_the_event_cancels_the_request_and_the_report_says_so(vtn_net):
    program_id, _, _, _ = vtn_net.event
    event = run_client("bl.py", vtn_net.vtn_json, "event", "--program", program_id, "--start",
                       iso(event_start(vtn_net.web3, 5400)), "--kw", "2")
    request_id = int(vtn_net.market.functions.requestCount().call())
    balance = int(vtn_net.stablecoin.functions.balanceOf(vtn_net.buyer.address).call())
    deleted = run_client("bl.py", vtn_net.vtn_json, "delete", "--event", event["id"])
    assert deleted == {"status": 200, "id": event["id"]}
    assert vtn_net.market.functions.getRequest(request_id).call()[3] == 2  # cancelled
    assert int(vtn_net.stablecoin.functions.balanceOf(vtn_net.buyer.address).call()) == balance + 600_000
    payloads = run_client("bl.py", vtn_net.vtn_json, "results", "--event", event["id"])["reports"][0]["payloads"]
    assert payloads["NEGAWATT_STATUS"] == ["cancelled"] and payloads["NEGAWATT_REFUNDED"] == ["0.6"]


def test_one_ven_client_cannot_read_another_ones_objects(vtn_net):
    ven_id, report_id = vtn_net.ven
    other = run_client("ven.py", vtn_net.other_vtn_json, "peek", "--ven-id", ven_id, "--report-id", report_id)
    assert other["seen"] == {"ven": 404, "report": 404, "vens": []}
    mine = run_client("ven.py", vtn_net.vtn_json, "peek", "--ven-id", ven_id, "--report-id", report_id)
    assert mine["seen"] == {"ven": 200, "report": 200, "vens": [ven_id]}
