"""The randomized holdout as a node lives it, on anvil: the market's rules reach the node with the
request (RequestRules), commitments close at the gate, and once a block at or after the gate exists
the node computes the draw alone and never dispatches a held-out site. A dispatched site curtails
only once the posted allocation accepts it (tests/node/test_dispatch_acceptance.py)."""

from __future__ import annotations

import pytest
from allocation_peer import AllocationPeer
from dispatch_setup import SettableClock, registered_charger
from uvicorn_server import ServedApps

from node.dispatch import Dispatcher, NodeDevice, Policy, RequestWatcher, open_dispatch_db
from node.outbox import Outbox
from protocol.clearing import Offer
from protocol.holdout import GateSeeds, is_held_out

ORACLE = "http://127.0.0.1:9"
SITE = "0x" + "5e" * 20
GATE_LEAD = 120


def _first_block_at_or_after(web3, timestamp: int) -> bytes:
    """An independent answer: a linear scan from the genesis."""
    for number in range(web3.eth.block_number + 1):
        block = web3.eth.get_block(number)
        if block["timestamp"] >= timestamp:
            return bytes(block["hash"])
    raise AssertionError("no such block")


@pytest.fixture
def serve_app():
    served = ServedApps()
    yield served
    served.stop_all()


def test_held_out_sites_are_not_dispatched_and_the_others_are(devnet_factory, tmp_path, serve_app):
    net = devnet_factory({"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18,
                          "holdout_bps": 5_000, "gate_lead_seconds": GATE_LEAD})
    chain = registered_charger(net)
    peer = AllocationPeer(net, serve_app)
    web3, buyer, market, usd = chain.web3, chain.buyer, chain.market, chain.usd
    clock = SettableClock(chain.now)
    db = open_dispatch_db(str(tmp_path / "dispatch.sqlite"))
    device = NodeDevice(chain.key.address, bytes(chain.key.key), chain.ev, zone=3, capacity_w=7_400)
    seeds = GateSeeds(web3)
    dispatcher = Dispatcher(db, Outbox(tmp_path / "outbox.sqlite"), [device], Policy(), chain.manifest.chainId,
                            chain.registry.address, lambda: [peer.url], clock=clock, site=SITE, seed_of=seeds.seed)
    watcher = RequestWatcher(web3, market, db, chain.manifest.start_block, confirmations=0)
    buyer.send(usd.functions.mint(buyer.address, 10**10))
    buyer.send(usd.functions.approve(market.address, 10**10))
    first = (chain.now // 60 + 10) * 60
    starts = [first + k * 600 for k in range(8)]  # eight disjoint windows: eight independent draws
    for start in starts:
        buyer.send(market.functions.openRequest(3, start, start + 300, 5_000, 250_000, usd.address, 10**8))
    opened, _ = watcher.poll()
    assert [(r.holdout_bps, r.gate_closure) for r in opened] == [(5_000, s - GATE_LEAD) for s in starts]
    clock.now = chain.now + 1
    for request in opened:
        dispatcher.on_request(request)
    for request, start in zip(opened, starts):
        # the chain moves past the gate (a block at or after it exists), then the window starts
        web3.provider.make_request("evm_setNextBlockTimestamp", [start - GATE_LEAD + 5])
        web3.provider.make_request("evm_mine", [])
        clock.now = start - GATE_LEAD + 10
        dispatcher.step()  # the draw is known now, before the start
        seed = _first_block_at_or_after(web3, start - GATE_LEAD)
        assert seeds.seed(start - GATE_LEAD) == seed
        held = is_held_out(seed, request.request_id, SITE, 5_000)
        decisions = [d["decision"] for d in dispatcher.decisions(request.request_id)]
        assert decisions[:2] == ["committed", "held_out" if held else "dispatched"], decisions
        if not held:  # the oracles clear the dispatched site and post the allocation before the start
            (watts,) = db.execute("SELECT watts FROM participations WHERE request_id = ?",
                                  (request.request_id,)).fetchone()
            peer.post(request.request_id, 5_000, 250_000, [Offer(SITE, device.address, 0, watts, 0)])
            watcher.poll()
            for request_id, root, price in watcher.allocations():
                dispatcher.on_allocation(request_id, root, price)
            dispatcher.step()
        chain.ev.advance(start)
        clock.now = start + 1
        dispatcher.step()
        state = db.execute("SELECT state FROM participations WHERE request_id = ?", (request.request_id,)).fetchone()
        assert state == (("held_out",) if held else ("applied",))
        clock.now = start + 300
        dispatcher.step()


def test_a_commitment_after_the_gate_is_not_made(devnet_factory, tmp_path):
    net = devnet_factory({"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18,
                          "holdout_bps": 1_500, "gate_lead_seconds": 600})
    chain = registered_charger(net)
    web3, buyer, market, usd = chain.web3, chain.buyer, chain.market, chain.usd
    clock = SettableClock(chain.now)
    db = open_dispatch_db(str(tmp_path / "dispatch.sqlite"))
    device = NodeDevice(chain.key.address, bytes(chain.key.key), chain.ev, zone=3, capacity_w=7_400)
    dispatcher = Dispatcher(db, Outbox(tmp_path / "outbox.sqlite"), [device], Policy(), chain.manifest.chainId,
                            chain.registry.address, lambda: [ORACLE], clock=clock)
    buyer.send(usd.functions.mint(buyer.address, 10**10))
    buyer.send(usd.functions.approve(market.address, 10**10))
    start = (chain.now // 60 + 15) * 60
    buyer.send(market.functions.openRequest(3, start, start + 300, 5_000, 250_000, usd.address, 10**8))
    (request,), _ = RequestWatcher(web3, market, db, chain.manifest.start_block, confirmations=0).poll()
    clock.now = request.gate_time + 1  # the node saw it only after the gate closed
    assert dispatcher.on_request(request) == 0
    assert [(d["decision"], d["reason"]) for d in dispatcher.decisions(request.request_id)] == [
        ("declined", "too close to the gate closure to commit")]
