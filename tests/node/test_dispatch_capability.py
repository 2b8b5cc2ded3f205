"""A capability test as a node lives it, on anvil: a request of the manifest's test budget account
needs no offer (nothing is signed), the node computes the test draw for its site alone once the gate
block exists, and a tested site's devices go to 0 W for the window and back after it; an untested
site is never touched, and a node without a site meter is not enrolled."""

from __future__ import annotations

from dispatch_setup import SettableClock, registered_charger
from eth_account import Account

from node.dispatch import Dispatcher, NodeDevice, Policy, RequestWatcher, open_dispatch_db
from node.outbox import Outbox
from protocol.capability import CapabilityRules, is_tested
from protocol.holdout import GateSeeds

ORACLE = "http://127.0.0.1:9"
SITE = "0x" + "5e" * 20
GATE_LEAD = 120
TEST_BPS = 5_000


def test_a_tested_site_is_curtailed_to_zero_and_an_untested_one_is_not(devnet_factory, tmp_path):
    tester = Account.from_key(bytes.fromhex("aa" * 32))  # not the devnet's buyer: its requests are ordinary
    net = devnet_factory({"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18,
                          "holdout_bps": 5_000, "gate_lead_seconds": GATE_LEAD,
                          "capability_test_bps": TEST_BPS})
    chain = registered_charger(net)
    web3, buyer, market, usd = chain.web3, chain.buyer, chain.market, chain.usd
    rules = CapabilityRules(buyer.address, TEST_BPS)  # this test's budget account is the devnet's buyer
    assert CapabilityRules.from_parameters(chain.manifest.parameters).test_bps == TEST_BPS
    assert not CapabilityRules(tester.address).is_test(buyer.address)
    clock = SettableClock(chain.now)
    db = open_dispatch_db(str(tmp_path / "dispatch.sqlite"))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    device = NodeDevice(chain.key.address, bytes(chain.key.key), chain.ev, zone=3, capacity_w=7_400)
    seeds = GateSeeds(web3)
    dispatcher = Dispatcher(db, outbox, [device], Policy(min_price_per_kwh=10**12), chain.manifest.chainId,
                            chain.registry.address, lambda: [ORACLE], clock=clock, site=SITE, seed_of=seeds.seed,
                            tests=rules)
    alone = Dispatcher(open_dispatch_db(str(tmp_path / "alone.sqlite")), Outbox(tmp_path / "alone-outbox.sqlite"),
                       [device], Policy(), chain.manifest.chainId, chain.registry.address, lambda: [ORACLE],
                       clock=clock, seed_of=seeds.seed, tests=rules)
    watcher = RequestWatcher(web3, market, db, chain.manifest.start_block, confirmations=0)
    buyer.send(usd.functions.mint(buyer.address, 10**10))
    buyer.send(usd.functions.approve(market.address, 10**10))
    first = (chain.now // 60 + 10) * 60
    starts = [first + k * 600 for k in range(8)]  # eight 5-minute tests: eight independent draws
    for start in starts:
        buyer.send(market.functions.openRequest(3, start, start + 300, 1, 250_000, usd.address, 10**7))
    opened, _ = watcher.poll()
    clock.now = chain.now + 1
    for request in opened:
        # the owner's minimum price is far above the test's: a test asks no price, it is not declined
        assert dispatcher.on_request(request) == 0
        assert [d["decision"] for d in dispatcher.decisions(request.request_id)] == ["capability_test"]
        alone.on_request(request)
        assert [d["decision"] for d in alone.decisions(request.request_id)] == ["not_enrolled"]
    assert outbox._db.execute("SELECT COUNT(*) FROM commitments").fetchone() == (0,)  # nothing signed
    outcomes = []
    for request, start in zip(opened, starts):
        web3.provider.make_request("evm_setNextBlockTimestamp", [start - GATE_LEAD + 5])
        web3.provider.make_request("evm_mine", [])
        clock.now = start - GATE_LEAD + 10
        dispatcher.step()
        tested = is_tested(seeds.seed(start - GATE_LEAD), request.request_id, SITE, TEST_BPS)
        outcomes.append(tested)
        decisions = [d["decision"] for d in dispatcher.decisions(request.request_id)]
        assert decisions == ["capability_test", "tested" if tested else "not_tested"], decisions
        chain.ev.advance(start)
        clock.now = start + 1
        dispatcher.step()
        (state,) = db.execute("SELECT state FROM participations WHERE request_id = ?", (request.request_id,)).fetchone()
        assert state == ("applied" if tested else "not_tested")
        if tested:
            assert chain.ev.setpoint_w == 0  # the whole capacity: the device goes to 0 W
        else:
            assert chain.ev.setpoint_w is None
        clock.now = start + 300
        dispatcher.step()
        (state,) = db.execute("SELECT state FROM participations WHERE request_id = ?", (request.request_id,)).fetchone()
        assert state == ("restored" if tested else "not_tested")
        assert chain.ev.setpoint_w is None
    assert any(outcomes) and not all(outcomes)  # both cases were exercised by the fixed chain's draws
    assert db.execute("SELECT COUNT(*) FROM participations WHERE state = 'committed'").fetchone() == (0,)
