"""The devnet's demo event, smaller (3 nodes, 6 devices), end to end: every role its own process,
real anvil, real HTTP. The assertions read the chain and the oracles' published report:
each claimed amount is the owner's leaf, escrow is conserved, and delivered energy is physical.
The second test runs the same event with faults: an oracle killed during the event, a node killed
(-9) and restarted mid-event, and the API restarted."""

from __future__ import annotations

import signal
import sqlite3

import httpx
import pytest

from negawatt.devnet.network import Devnet, DevnetSpec, wait_for
from negawatt.devnet.scenario import AVAILABILITY_PER_KWH, published_report, run_event
from negawatt.devnet.summary import gas_spent, plot, summarize


def outbox_db(node) -> sqlite3.Connection:
    """The node's outbox file, read-only: the test inspects the raw storage the devnet no longer reads."""
    return sqlite3.connect(f"file:{node.directory / 'node-data' / 'outbox.sqlite'}?mode=ro", uri=True, timeout=30)


# EV chargers and air conditioners have evening flexibility in most seeds, so the event has
# participants whatever weekday the chain's clock falls on.
# Every node is a site (a site meter and its devices). Three sites are too few for a control group,
# so nothing is held out here (the draw is tested in tests/node and tests/oracle, and the demo holds
# half out): a held-out site is never accepted, and a draw that held out every site would leave the
# event without a payout to check. The settlement falls back to each site's own baseline, gated here
# at 200 % (the demo's 20 % would usually pay nobody) so that payouts and claims happen. The request
# is cleared at the gate: each site curtails only what the allocation accepted.
# No site here has passed a capability test, so the devnet's probationary cap (1.5 kW a site) would
# hold three sites to a few kW and the event often pays nobody, leaving the claims untested; the cap
# is lifted here (it is tested end to end in tests/e2e/test_devnet_capability.py).
UNCAPPED_W = 1_000_000
SPEC = dict(nodes=3, devices_per_node=2, zones=1, kinds=["ev_charger", "hvac", "ev_charger", "heat_pump"],
            max_rrmse_bps=20_000, holdout_bps=0,
            capability_probation_w=UNCAPPED_W)


def unit_of(net: Devnet) -> dict[str, str]:
    """Each device's settlement unit: its node's site meter (or itself on a node without one)."""
    out = {}
    for node in net.nodes:
        site = next((a for a, kind, _ in node.devices if kind == "site_meter"), None)
        for address, _kind, _watts in node.devices:
            out[address] = site or address
    return out


@pytest.fixture
def devnet(tmp_path):
    net = Devnet(DevnetSpec(**SPEC), tmp_path / "run")
    try:
        yield net
    finally:
        net.stop()


def check_settlement(net: Devnet, run) -> dict:
    """The chain-state assertions every e2e run shares; returns the published report."""
    report = published_report(net, run.epoch)
    web3 = net.web3
    market, stablecoin = net.contract("FlexMarket"), net.contract("MockStablecoin")
    token, distributor = net.contract("NegawattToken"), net.contract("RewardDistributor")
    assert web3.to_bytes(hexstr=report["rewardsRoot"]) == bytes(distributor.functions.root().call())

    # Every device that committed reached the oracles and is in the report.
    participations = net.participations()
    assert participations, "no device committed: the event tests nothing"
    settled = {r["requestId"]: r for r in report["requests"]}
    reported = {d["device"] for r in report["requests"] for d in r["devices"]}
    units = unit_of(net)
    assert {units[row[2]] for row in participations} <= reported
    assert not any(kind == "site_meter" for node in net.nodes for a, kind, _ in node.devices
                   if a in {row[2] for row in participations})  # a site meter never commits

    # Escrow is conserved: per request deposited = paid + refunded, and every mUSD the buyer was
    # given is with the buyer, in the distributor, or claimed by an owner.
    minted = 0
    for zone, request_id in run.request_ids.items():
        request = market.functions.getRequest(request_id).call()
        deposited, paid = request[10], request[11]  # after the status and the allocated flag
        assert request[3] == 4  # Settled
        assert deposited == run.budgets[zone]
        assert paid == int(settled[request_id]["payout"])
        assert paid + int(settled[request_id]["refund"]) == deposited
        minted += run.budgets[zone]
    owners = {node.owner for node in net.nodes}
    with_owners = sum(stablecoin.functions.balanceOf(o).call() for o in owners)
    assert (stablecoin.functions.balanceOf(net.buyer.address).call() + stablecoin.functions.balanceOf(
        distributor.address).call() + with_owners) == minted

    # Each claim is exactly the owner's leaf, and balances show it.
    leaves = {(leaf["account"], leaf["token"]): int(leaf["amount"]) for leaf in report["ledger"]}
    for owner in owners:
        for token_address in (stablecoin.address, token.address):
            leaf = leaves.get((owner, token_address), 0)
            assert distributor.functions.claimed(owner, token_address).call() == leaf
        assert stablecoin.functions.balanceOf(owner).call() == leaves.get((owner, stablecoin.address), 0)
    assert set(run.claimed) == {o for o in owners if leaves.get((o, stablecoin.address), 0)
                                or leaves.get((o, token.address), 0)}

    # Delivered energy is physical: within the commitment, within the device's rating, readings
    # never above what the device can draw in an interval.
    capacity = {address: watts for node in net.nodes for address, _, watts in node.devices}
    flexible: dict[str, int] = {}  # a unit's flexible capacity: its controllable devices' ratings
    for node in net.nodes:
        for address, kind, watts in node.devices:
            if kind != "site_meter":
                flexible[units[address]] = flexible.get(units[address], 0) + watts
    hours = (run.end - run.start) / 3_600
    interval_h = net.spec.interval_seconds / 3_600
    for request in report["requests"]:
        for device in request["devices"]:
            assert 0 <= device["deliveredWh"] <= device["committedWh"] <= flexible[device["device"]] * hours
            assert device["payableWh"] <= device["deliveredWh"]
        for record in request["baselines"]:
            limit = capacity[record["device"]] * interval_h + 1
            assert all(0 <= wh <= limit for wh in record["actual_wh"]), record
    return report


def test_demo_event_settles_and_every_claim_matches_its_leaf(devnet, tmp_path):
    devnet.up()
    run = run_event(devnet)
    report = check_settlement(devnet, run)
    assert run.epoch == 1
    assert len(devnet.contract("OracleHub").events.ReportSubmitted().get_logs(from_block=0)) == 1

    # The summary and the plot are built from the same data.
    summary = summarize(devnet, run)
    assert sum(z.paid for z in summary.zones) == sum(int(r["payout"]) for r in report["requests"])
    assert sum(o.payout for o in summary.owners) == sum(int(d["ownerPayout"]) for r in report["requests"]
                                                        for d in r["devices"])
    path = plot(summary, devnet, tmp_path / "event.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gas = gas_spent(devnet)
    assert gas["oracles"][0] >= 2 and gas["buyer"][0] == 3  # submit + finalize; mint, approve, open

    # The buyer sized each request on the zone's forecast supply (the sites' signed forecasts, as the
    # API aggregates them; nothing is held out here), opened it with `negawatt buyer open`, and read
    # the outcome with `negawatt buyer status`, which agrees with the report.
    market = devnet.contract("FlexMarket")
    for zone, request_id in run.request_ids.items():
        assert run.forecast_w[zone] > 0 and run.targets_w[zone] == run.forecast_w[zone] * 8_000 // 10_000
        assert market.functions.availabilityPriceOf(request_id).call() == AVAILABILITY_PER_KWH
        status = run.buyer_status[zone]
        settled_request = next(r for r in report["requests"] if r["requestId"] == request_id)
        assert (status["requestId"], status["status"], status["paid"], status["refunded"]) == (
            request_id, "settled", settled_request["payout"], settled_request["refund"])
        assert status["verdict"].startswith(f"request {request_id} (settled): requested ")
        allocation = run.allocations[zone]
        assert status["acceptedW"] == allocation["acceptedW"] and int(status["availabilityPrice"]) == int(
            allocation["availabilityPrice"]) <= AVAILABILITY_PER_KWH

    # The API indexed the same settlement and serves the proofs the claims used.
    api = devnet.api_url
    wait_for(lambda: httpx.get(f"{api}/v1/ready", timeout=5).status_code == 200, 60, "the API to catch up")
    for request_id in run.request_ids.values():
        served = httpx.get(f"{api}/v1/requests/{request_id}", timeout=5).json()
        assert served["status"] == "settled"
        assert served["payout"] == next(r["payout"] for r in report["requests"] if r["requestId"] == request_id)


def test_event_survives_an_oracle_death_a_node_crash_and_an_api_restart(devnet):
    devnet.up()
    killed: set[str] = set()
    crashed: dict[str, object] = {}
    api_before: dict[str, int] = {}

    def hook(moment: str, net: Devnet) -> None:
        if moment == "event_started":  # one oracle dies for good: 2 of the 3 must settle
            net.group.kill("oracle-1")
            killed.add("oracle-1")
        elif moment == "mid_event":  # a participating node crashes (-9) and comes back
            node_name = next(row[0] for row in net.participations())
            node = next(n for n in net.nodes if n.name == node_name)
            crashed["node"] = node
            net.group.kill(node.name)
            net.group.restart(node.name)
        elif moment == "event_ended":  # the API is restarted; its indexer resumes from its database
            api_before["indexed"] = _indexed_block(net.api_url)
            process = net.group.processes["api"]
            process.popen.send_signal(signal.SIGTERM)
            process.popen.wait(timeout=30)
            net.group.restart("api")
            wait_for(lambda: _ok(f"{net.api_url}/v1/health"), 60, "the restarted API")
            api_before["first_after"] = _indexed_block(net.api_url)

    run = run_event(devnet, hook=hook, allowed_dead=lambda: killed)
    report = check_settlement(devnet, run)

    # 2 of 3 settled, without the dead oracle.
    hub = devnet.contract("OracleHub")
    submitted = hub.events.ReportSubmitted().get_logs(from_block=0)
    assert len(submitted) == 1
    dead = next(o.address for o in devnet.oracles if o.name == "oracle-1")
    assert len(submitted[0].args.signers) == 2 and dead not in submitted[0].args.signers

    # The crashed node lost no reading: its outbox is gapless and fully delivered, and every event
    # interval of its committed devices has a reading in the report, so its delivery counted.
    node = crashed["node"]
    with outbox_db(node) as db:
        for (device,) in db.execute("SELECT DISTINCT device FROM batches"):
            sequences = [row[0] for row in db.execute("SELECT sequence FROM batches WHERE device = ? ORDER BY sequence",
                                                      (device,))]
            assert sequences == list(range(len(sequences))), device
        dead_url = devnet.oracles[0].url  # oracle-1 never acknowledges again; the live ones acknowledged all
        assert db.execute("SELECT COUNT(*) FROM deliveries WHERE status != 'acked' AND oracle != ?",
                          (dead_url,)).fetchone()[0] == 0
    node_devices = {address for address, _, _ in node.devices}
    committed = {row[2] for row in devnet.participations() if row[0] == node.name}
    assert committed and committed <= node_devices
    units = unit_of(devnet)
    committed |= {units[d] for d in committed}  # the site the node is settled as
    for request in report["requests"]:
        for record in request["baselines"]:
            if record["device"] in committed:
                assert all(wh >= 0 for wh in record["actual_wh"]), record  # -1 would be a missing reading
    assert "resumed" in (devnet.run_dir / "logs" / f"{node.name}.log").read_text()

    # The API resumed from where it was (not from the deployment block) and serves the settlement.
    assert api_before["first_after"] >= api_before["indexed"]
    api = devnet.api_url
    wait_for(lambda: httpx.get(f"{api}/v1/ready", timeout=5).status_code == 200, 60, "the API to catch up")
    for request_id in run.request_ids.values():
        assert httpx.get(f"{api}/v1/requests/{request_id}", timeout=5).json()["status"] == "settled"
    listed = httpx.get(f"{api}/v1/requests", timeout=5).json()["items"]
    assert sorted(r["id"] for r in listed) == sorted(run.request_ids.values())  # nothing indexed twice


def _indexed_block(api: str) -> int:
    """The API's last indexed block, from /v1/ready (200 or its 503 problem body, which carries it too)."""
    response = httpx.get(f"{api}/v1/ready", timeout=5)
    body = response.json()
    assert "indexed_block" in body, (response.status_code, body)
    return body["indexed_block"]


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False

