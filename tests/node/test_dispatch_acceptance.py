"""A node curtails only what the on-chain allocation accepted (issue 14), on anvil with a real
clearing peer over HTTP: a partial acceptance sheds the accepted watts, not the offer; a device the
allocation does not accept, a request with no allocation and a proof that does not verify against
the on-chain root (a lying oracle) each leave the device alone. The offer carries the owner's prices
(a confident tranche and, with extra_share_bps, a dearer one)."""

from __future__ import annotations

import pytest
from allocation_peer import AllocationPeer
from dispatch_setup import SettableClock, registered_charger
from uvicorn_server import ServedApps

from node.dispatch import Dispatcher, NodeDevice, Policy, RequestWatcher, offer_tranches, open_dispatch_db
from node.outbox import Outbox
from protocol.clearing import Offer
from protocol.messages import decode_commitment

GATE_LEAD = 120
OTHER = "0x" + "0d" * 20


@pytest.fixture
def serve_app():
    served = ServedApps()
    yield served
    served.stop_all()


@pytest.fixture
def market(devnet_factory, tmp_path, serve_app):
    net = devnet_factory({"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18,
                          "gate_lead_seconds": GATE_LEAD})
    chain = registered_charger(net)
    peer = AllocationPeer(net, serve_app)
    clock = SettableClock(chain.now)
    db = open_dispatch_db(str(tmp_path / "dispatch.sqlite"))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    device = NodeDevice(chain.key.address, bytes(chain.key.key), chain.ev, zone=3, capacity_w=7_400)
    policy = Policy(min_price_per_kwh=100_000, extra_share_bps=2_500, max_share_bps=10_000)
    dispatcher = Dispatcher(db, outbox, [device], policy, chain.manifest.chainId, chain.registry.address,
                            lambda: [peer.url], clock=clock, retry_seconds=0)
    watcher = RequestWatcher(chain.web3, chain.market, db, chain.manifest.start_block, confirmations=0)
    chain.buyer.send(chain.usd.functions.mint(chain.buyer.address, 10**10))
    chain.buyer.send(chain.usd.functions.approve(chain.market.address, 10**10))

    class Market:
        def open(self):
            start = (chain.web3.eth.get_block("latest")["timestamp"] // 60 + 10) * 60
            chain.buyer.send(chain.market.functions.openRequest(3, start, start + 300, 5_000, 250_000,
                                                                chain.usd.address, 10**8))
            (request,), _ = watcher.poll()
            clock.now = chain.web3.eth.get_block("latest")["timestamp"] + 1
            assert dispatcher.on_request(request) > 0
            return request

        def past_gate(self, request):
            chain.web3.provider.make_request("evm_setNextBlockTimestamp", [request.gate_time + 5])
            chain.web3.provider.make_request("evm_mine", [])
            clock.now = request.gate_time + 10

        def follow(self):
            watcher.poll()
            for request_id, root, price in watcher.allocations():
                dispatcher.on_allocation(request_id, root, price)
            dispatcher.step()

        def run_window(self, request):
            chain.ev.advance(request.start)
            clock.now = request.start + 1
            dispatcher.step()
            state = self.state(request)
            clock.now = request.end
            dispatcher.step()
            return state

        def state(self, request):
            return db.execute("SELECT state, watts FROM participations WHERE request_id = ?",
                              (request.request_id,)).fetchone()

    m = Market()
    m.chain, m.peer, m.device, m.dispatcher, m.outbox, m.policy = chain, peer, device, dispatcher, outbox, policy
    return m


def _offer(market, request):
    """The device's signed offer, as queued for the oracles."""
    (item,) = [d for d in market.outbox.due(market.peer.url, now=10**12) if d.kind == "commitment"
               and d.payload["requestId"] == request.request_id]
    return decode_commitment(item.payload)


def test_a_partial_acceptance_sheds_only_the_accepted_watts(market):
    request = market.open()
    offer = _offer(market, request)
    # The owner's policy: 75 % confident at 0.10, 25 % at 0.10 x 1.5 = 0.15 per kWh (the ceiling is 0.25).
    assert (offer.min_price_per_kwh, offer.extra_min_price_per_kwh) == (100_000, 150_000)
    assert offer.extra_watts == offer.total_watts * 2_500 // 10_000
    market.past_gate(request)
    accepted_w = 1_100  # target 1 kW + the 10 % margin: less than the confident tranche, partly accepted
    assert offer.watts > accepted_w
    market.peer.post(request.request_id, 1_000, 250_000,
                     [Offer(market.device.address, market.device.address, 0, offer.watts, offer.min_price_per_kwh)])
    market.follow()
    assert market.state(request) == ("accepted", accepted_w)
    power_before = market.device.driver.power_w()
    state, watts = market.run_window(request)
    assert (state, watts) == ("applied", accepted_w)
    decisions = market.dispatcher.decisions(request.request_id)
    applied = next(d for d in decisions if d["decision"] == "applied")
    assert f"setpoint {max(0, power_before - accepted_w)} W" in applied["reason"]


def test_a_device_the_allocation_does_not_accept_is_left_alone(market):
    request = market.open()
    market.past_gate(request)
    market.peer.post(request.request_id, 2_000, 250_000, [Offer(OTHER, OTHER, 0, 3_000, 50_000)])
    market.follow()
    assert market.state(request)[0] == "not_accepted"
    assert market.run_window(request)[0] == "not_accepted"
    assert market.device.driver.setpoint_w is None


def test_no_allocation_no_curtailment(market):
    request = market.open()
    market.past_gate(request)
    market.follow()
    assert market.run_window(request)[0] == "committed"  # never applied
    assert market.device.driver.setpoint_w is None
    market.dispatcher.step()
    assert "applied" not in [d["decision"] for d in market.dispatcher.decisions(request.request_id)]


def test_a_proof_that_does_not_verify_is_refused(market):
    request = market.open()
    offer = _offer(market, request)
    market.past_gate(request)
    market.peer.tamper = 500  # the oracle claims 500 W more than the leaf under the on-chain root
    market.peer.post(request.request_id, 1_000, 250_000,
                     [Offer(market.device.address, market.device.address, 0, offer.watts, offer.min_price_per_kwh)])
    market.follow()
    assert market.state(request)[0] == "committed"
    assert market.run_window(request)[0] == "committed"
    assert market.device.driver.setpoint_w is None


def test_offer_tranches_stay_within_the_ceiling():
    class Request:
        price_per_kwh = 120_000

    policy = Policy(min_price_per_kwh=100_000, extra_share_bps=4_000, extra_premium_bps=5_000)
    assert offer_tranches(policy, Request(), 5_000) == (3_000, 100_000, 2_000, 120_000)
    assert offer_tranches(Policy(min_price_per_kwh=7), Request(), 5_000) == (5_000, 7, 0, 0)
