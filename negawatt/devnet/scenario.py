"""The demo's flexibility event, driven on a running devnet.

A buyer sizes one request per zone for the evening hour on the zone's forecast supply (the nodes'
signed day-ahead forecasts, aggregated by the API: `negawatt buyer forecast`), at TARGET_SHARE_BPS
of what can be accepted at its ceiling once the market's holdout is taken out, and opens it with
`negawatt buyer open` (utilisation and availability ceilings); the nodes commit and curtail; the chain's
clock moves forward one metering interval at a time (each node meters every boundary); the oracles
settle k-of-n; the challenge window passes; an oracle finalizes; the nodes claim. Each step waits
for the network to have done it (readings delivered, setpoints applied, report submitted, claims
landed), never for a fixed time, and hooks let the e2e tests inject faults at named moments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from buyer.checks import max_payment
from negawatt.devnet.demo_buyer import DemoBuyer
from negawatt.devnet.network import Devnet, DevnetError, wait_for
from negawatt.localchain import open_funded_request

log = logging.getLogger("negawatt.devnet")
PRICE_PER_KWH = 300_000  # 0.30 mUSD (6 decimals): the buyer's utilisation ceiling
AVAILABILITY_PER_KWH = 50_000  # 0.05 mUSD per kW of accepted power per hour: its availability ceiling
TARGET_SHARE_BPS = 8_000  # each request asks for 80 % of its zone's forecast supply that can be accepted
CAPACITY_SHARE_BPS = 2_500  # without an API (no forecasts): a quarter of the zone's registered capacity
FORECAST_WAIT_SECONDS = 180  # for every site of a zone to have published a forecast covering the event
CLEARING_WAIT_SECONDS = 30  # past the gate: the oracles' clearing delay (20 s) and a block


@dataclass
class EventRun:
    """What happened in the event, for the summary and the tests."""

    request_ids: dict[int, int] = field(default_factory=dict)  # zone -> request id
    targets_w: dict[int, int] = field(default_factory=dict)
    budgets: dict[int, int] = field(default_factory=dict)
    start: int = 0
    end: int = 0
    epoch: int = 0
    claimed: dict[str, dict[str, int]] = field(default_factory=dict)  # owner -> token -> amount
    dispatch_latency_ms: list[float] = field(default_factory=list)
    allocations: dict[int, dict] = field(default_factory=dict)  # zone -> an oracle's published allocation
    forecast_w: dict[int, int] = field(default_factory=dict)  # zone -> the forecast supply the buyer sized on
    accepted_devices: set[tuple[str, str]] = field(default_factory=set)  # (node, device) verified accepted
    applied_devices: set[tuple[str, str]] = field(default_factory=set)  # (node, device) curtailed
    buyer_status: dict[int, dict] = field(default_factory=dict)  # zone -> `negawatt buyer status --json`


Hook = Callable[[str, Devnet], None]
Counter = Callable[[int], None]  # `done` so far of a step's total
Watch = Callable[[str, int, str], Counter]  # (label, total, unit) -> the step's counter


def _no_watch(label: str, total: int, unit: str) -> Counter:
    return lambda done: None


def run_event(net: Devnet, step: Callable[[str], None] = lambda m: None, hook: Hook = lambda moment, net: None,
              allowed_dead: Callable[[], set[str]] = lambda: set(), claim_timeout: float = 120,
              watch: Watch = _no_watch, expect_claims: bool = True) -> EventRun:
    """Open the requests, let the event happen, settle, finalize and wait for the claims (unless
    `expect_claims` is False: a caller that stopped the nodes claims, or checks, by itself).
    `watch(label, total, unit)` is told of a long step (the history's delivery) and returns the
    counter it is updated with, so the caller can show its progress.

    `hook(moment, net)` is called at "history_delivered", "event_started", "mid_event", "event_ended",
    "report_submitted" and "finalized", e.g. to kill a process there."""
    spec, interval = net.spec, net.spec.interval_seconds
    run = EventRun(start=net.event_start, end=net.event_start + spec.event_intervals * interval)
    market, stablecoin = net.contract("FlexMarket"), net.contract("MockStablecoin")
    hub, distributor = net.contract("OracleHub"), net.contract("RewardDistributor")

    def wait(predicate, timeout: float, what: str):
        return wait_for(predicate, timeout, what, net.group, allowed_dead())

    # The history reaches every oracle before anything else happens.
    total = net.outbox_pending()
    counter = watch(f"delivering the signed history to {len(net.oracles)} oracles", total, "batches")

    def delivered() -> bool:
        pending = net.outbox_pending()
        counter(total - pending)
        return pending == 0

    wait(delivered, 600, "the nodes to deliver their history")
    step(f"{total} signed history batches delivered to {len(net.oracles)} oracles")
    hook("history_delivered", net)
    if any(node.name == "node-hw" for node in net.nodes):
        wait(lambda: net.real_devices_available(), 90, "node-hw's Modbus, OCPP and MQTT devices to answer")

    # One request per zone for the event hour, sized on the zone's forecast supply.
    if net.api_url:
        _open_from_forecasts(net, run, step, wait)
    else:
        _open_by_capacity(net, run, step, market, stablecoin)
    wait(lambda: len(net.participations()) > 0 and net.outbox_pending() == 0, 120,
         "the nodes to commit and deliver their commitments")
    step(f"{len(net.participations())} device commitments signed and delivered")

    # Up to the gate: one interval at a time, each boundary metered by every node. At the gate the
    # oracles clear each request and post its allocation; each node checks its acceptance proofs.
    lead = market.functions.gateLeadSeconds().call()
    boundary = net.history_end + interval
    while boundary <= run.start - lead:  # the boundary at the gate too: a real meter reads it on time
        _warp_and_meter(net, boundary, wait)
        boundary += interval
    if lead:
        net.warp_to(run.start - lead + CLEARING_WAIT_SECONDS)
        wait(lambda: _cleared(net, run), 180, "the oracles to clear the requests and post the allocations")
        wait(lambda: not net.participations("committed"), 90, "the nodes to verify their acceptances")
        for zone, request_id in run.request_ids.items():
            run.allocations[zone] = published_allocation(net, request_id)
            allocation = run.allocations[zone] or {}
            step(f"zone {zone}: cleared {allocation.get('offers', 0)} offer tranches: "
                 f"{allocation.get('acceptedW', 0) / 1000:.1f} kW accepted of {run.targets_w[zone] / 1000:.1f} kW "
                 f"requested at {int(allocation.get('clearingPrice', 0)) / 1e6:.3f} mUSD/kWh; "
                 f"{len(net.participations('held_out'))} held out, "
                 f"{len(net.participations('not_accepted'))} not accepted")
    # The rest of the way to the event.
    while boundary < run.start:
        _warp_and_meter(net, boundary, wait)
        boundary += interval
    net.warp_to(run.start - 2)
    run.accepted_devices = {(row[0], row[2]) for row in net.participations("accepted")}
    to_apply = len(run.accepted_devices) if lead else len(net.participations("committed"))
    wait(lambda: len(net.participations("applied")) >= to_apply, 60, "the nodes to apply their setpoints")
    run.applied_devices = {(row[0], row[2]) for row in net.participations("applied")}
    # Every node meters the boundary at the start before the clock jumps on (with every commitment held
    # out, nothing above waited for the nodes' clocks to pass the start).
    wait(lambda: net.metered_to() >= run.start, 60, "every node to meter the interval ending at the start")
    run.dispatch_latency_ms = [row[5] for row in net.participations() if row[5] is not None]
    step(f"event started: {len(net.participations('applied'))} setpoints applied, "
         f"{len(net.participations('held_out'))} commitments held out by the randomized draw")
    hook("event_started", net)

    # Through the event: the boundary at its end meters the last interval and restores the devices.
    for k in range(1, spec.event_intervals + 1):
        if k == spec.event_intervals // 2 + 1:
            hook("mid_event", net)
        _warp_and_meter(net, run.start + k * interval, wait)
    wait(lambda: net.outbox_pending() == 0, 120, "the event's readings to reach the oracles")
    hook("event_ended", net)
    step("event over: every reading delivered")

    # Settlement: past the oracles' data grace, a k-of-n report lands, then the challenge window passes.
    net.warp_to(run.end + interval + 180)
    epoch_before = hub.functions.currentEpoch().call()
    wait(lambda: hub.functions.pendingReport().call()[1] == 1, 180, "a k-of-n settlement report")
    pending = hub.functions.pendingReport().call()
    step(f"report submitted with {len(pending[3])} oracle signatures")
    hook("report_submitted", net)
    window = hub.functions.challengeWindow().call()
    net.warp_to(net.chain_time() + window + 1)
    wait(lambda: hub.functions.currentEpoch().call() > epoch_before, 120, "an oracle to finalize the report")
    run.epoch = hub.functions.currentEpoch().call()
    step(f"epoch {run.epoch} final: escrow paid, emission minted, rewards root installed")
    hook("finalized", net)

    # Claims: each owner with a leaf claims it (the nodes decide it is worth the gas).
    owners = {node.owner for node in net.nodes}

    def claims_done():
        events = distributor.events.Claimed().get_logs(from_block=net.deployed_block)
        for event in events:
            if event.args.account in owners:
                run.claimed.setdefault(event.args.account, {})[event.args.token] = event.args.cumulativeClaimed
        return not expect_claims or _expected_claimers(net, run) <= set(run.claimed)

    wait(claims_done, claim_timeout, "the nodes to claim their rewards")
    step(f"{len(run.claimed)} owners claimed their rewards")
    if net.api_url:  # the buyer reads the outcome with its own tool, once the API has the report
        buyer = _demo_buyer(net)
        for zone, request_id in run.request_ids.items():
            run.buyer_status[zone] = wait(lambda: (s := buyer.status(request_id)) and s["deliveredWh"] is not None
                                          and s, 60, f"the API to serve request {request_id}'s settlement")
            step(f"negawatt buyer status {request_id}: {run.buyer_status[zone]['verdict']}")
    return run


def _open_from_forecasts(net: Devnet, run: EventRun, step: Callable[[str], None], wait) -> None:
    """Size each zone's request with `negawatt buyer forecast` and open it with `negawatt buyer open`."""
    buyer = _demo_buyer(net)
    price, availability = _musd(PRICE_PER_KWH), _musd(AVAILABILITY_PER_KWH)
    for zone in range(1, net.spec.zones + 1):
        sites = sum(1 for node in net.nodes if node.zone == zone and any(k == "site_meter" for _, k, _ in node.devices))
        supply = wait(lambda: (s := _forecast_or_none(buyer, zone, run, price)) and s["sites"] >= sites and s,
                      FORECAST_WAIT_SECONDS, f"every site of zone {zone} to publish a forecast covering the event")
        gross = max((p["watts"] for p in supply["curve"] if int(p["price"]) <= PRICE_PER_KWH), default=0)
        target = supply["sizeNetOfHoldoutW"]
        if target <= 0:
            raise DevnetError(f"zone {zone}: the forecast supply at the ceiling is {gross} W; nothing to request")
        # the most the request can pay (integer base units, as the buyer's check computes it), plus 1 %
        escrow = max_payment(target, run.end - run.start, PRICE_PER_KWH, AVAILABILITY_PER_KWH) * 101 // 100
        net.buyer.send(net.contract("MockStablecoin").functions.mint(net.buyer.address, escrow))  # the devnet faucet
        opened = buyer.open(zone, run.start, run.end, target, price, availability, _musd(escrow))
        request_id = int(opened["requestId"])
        run.request_ids[zone], run.targets_w[zone] = request_id, target
        run.budgets[zone] = net.contract("FlexMarket").functions.getRequest(request_id).call()[10]  # deposited
        run.forecast_w[zone] = gross
        step(f"zone {zone}: forecast supply {gross / 1000:.1f} kW from {supply['sites']} sites at or below 0.30 "
             f"mUSD/kWh; {supply['holdoutBps'] / 100:.0f} % of the sites are held out, so the buyer asks for "
             f"{target / 1000:.1f} kW (80 % of what can be accepted): request {request_id} opened with "
             f"`negawatt buyer open` ({opened['funding']}), escrow {run.budgets[zone] / 1e6:.2f} mUSD")


def _musd(base_units: int) -> str:
    """mUSD base units (6 decimals) as the exact decimal text `negawatt buyer` takes."""
    return f"{base_units // 10**6}.{base_units % 10**6:06d}"


def _demo_buyer(net: Devnet) -> DemoBuyer:
    """The buyer's tools with the devnet buyer's key (the one `net.buyer` sends with)."""
    return DemoBuyer(net.run_dir, net.rpc_url, net.manifest_path, net.api_url, bytes(net.buyer.account.key),
                     net.password)


def _forecast_or_none(buyer: DemoBuyer, zone: int, run: EventRun, price: str) -> dict | None:
    try:
        return buyer.forecast(zone, run.start, run.end, price, TARGET_SHARE_BPS)
    except DevnetError:  # no forecast yet: the nodes publish theirs once they run
        return None


def _open_by_capacity(net: Devnet, run: EventRun, step: Callable[[str], None], market, stablecoin) -> None:
    """Without an API there are no forecasts: a quarter of each zone's registered capacity."""
    hours_ppm = (run.end - run.start) * 1_000_000 // 3_600
    for zone in range(1, net.spec.zones + 1):
        capacity = sum(c for node in net.nodes if node.zone == zone for _, kind, c in node.devices
                       if kind != "site_meter")
        target = capacity * CAPACITY_SHARE_BPS // 10_000
        budget = target * hours_ppm * PRICE_PER_KWH // (1_000 * 1_000_000) * 2
        request_id = open_funded_request(net.buyer, stablecoin, market, zone, run.start, run.end, target,
                                         PRICE_PER_KWH, budget)
        run.request_ids[zone], run.targets_w[zone], run.budgets[zone] = request_id, target, budget
        step(f"zone {zone}: request {request_id} for {target / 1000:.1f} kW at 0.30 mUSD/kWh, escrow "
             f"{budget / 1e6:.2f} mUSD")


def _cleared(net: Devnet, run: EventRun) -> bool:
    """Whether every request with a dispatchable commitment has its allocation on chain (a request
    whose every commitment was held out has nothing to accept, and nothing is posted for it)."""
    market = net.contract("FlexMarket")
    posted = {int(e.args.requestId) for e in market.events.AllocationPosted().get_logs(from_block=net.deployed_block)}
    waiting = {row[1] for row in net.participations() if row[4] not in ("held_out", "cancelled", "withdrawn")}
    return waiting <= posted


def published_allocation(net: Devnet, request_id: int) -> dict | None:
    """A live oracle's published allocation of `request_id` (oracle.allocation_api), or None."""
    import httpx

    for oracle in net.oracles:
        if not net.group.processes[oracle.name].alive():
            continue
        try:
            response = httpx.get(f"{oracle.url}/v1/allocations/{request_id}", timeout=10)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            return response.json()["allocation"]
    return None


def _expected_claimers(net: Devnet, run: EventRun) -> set[str]:
    """Owners who have a positive amount in the final report's leaves."""
    report = published_report(net, run.epoch)
    owners = {node.owner for node in net.nodes}
    return {leaf["account"] for leaf in report["ledger"] if leaf["account"] in owners and int(leaf["amount"]) > 0}


def published_report(net: Devnet, epoch: int, timeout: float = 30) -> dict:
    """The final report of `epoch` as a live oracle publishes it (leaves, proofs, per-device results).
    An oracle marks the report final just after its finalize transaction is mined, so the chain can
    show the new epoch a moment before any oracle serves it: this waits up to `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return _published_report_once(net, epoch)
        except DevnetError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _published_report_once(net: Devnet, epoch: int) -> dict:
    import httpx

    for oracle in net.oracles:
        if not net.group.processes[oracle.name].alive():  # a killed oracle publishes nothing
            continue
        try:
            response = httpx.get(f"{oracle.url}/v1/reports/{epoch}", timeout=10)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            return response.json()
    raise DevnetError(f"no live oracle publishes the report of epoch {epoch}")


def _warp_and_meter(net: Devnet, boundary: int, wait) -> None:
    """Move the chain to just past `boundary` and wait until every node metered the interval ending
    there and the running oracles acknowledged it. The oracles settle once a window's end plus their
    data grace has passed on their clock, so with compressed time the devnet must not move the
    clock on before the readings arrived (on a real network the grace covers the upload)."""
    net.warp_to(boundary + 1)
    wait(lambda: net.metered_to() >= boundary, 60, f"every node to meter the interval ending {boundary}")
    wait(lambda: net.outbox_pending() == 0, 60, f"the readings of the interval ending {boundary} to reach the oracles")
