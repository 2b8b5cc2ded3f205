"""Dispatch end to end on anvil: a request in the node's zone is seen on-chain, the policy commits
an EV charger that can shed load, the signed commitment is queued for the oracles, the setpoint is
applied when the window starts and restored when it ends; a request below the owner's price, or
in another zone, is declined with its reason; a restarted watcher resumes from its cursor."""

from __future__ import annotations

import time

import pytest
from dispatch_setup import SettableClock, registered_charger

from node.dispatch import Dispatcher, NodeDevice, Policy, RequestWatcher, open_dispatch_db
from node.outbox import Outbox

ORACLE = "http://127.0.0.1:9"  # the commitments only need to be queued for some oracle here


def test_a_request_is_committed_applied_and_restored(devnet, tmp_path):
    chain = registered_charger(devnet)
    web3, manifest, buyer, registry, market, usd = (chain.web3, chain.manifest, chain.buyer, chain.registry,
                                                    chain.market, chain.usd)
    key, ev, now = chain.key, chain.ev, chain.now
    clock = SettableClock(now)
    db = open_dispatch_db(str(tmp_path / "dispatch.sqlite"))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    device = NodeDevice(key.address, bytes(key.key), ev, zone=3, capacity_w=7_400)
    dispatcher = Dispatcher(db, outbox, [device], Policy(min_price_per_kwh=100_000), manifest.chainId,
                            registry.address, lambda: [ORACLE], clock=clock)
    watcher = RequestWatcher(web3, market, db, manifest.start_block, confirmations=0)

    buyer.send(usd.functions.mint(buyer.address, 10**9))
    buyer.send(usd.functions.approve(market.address, 10**9))
    start = (now // 60 + 5) * 60
    buyer.send(market.functions.openRequest(3, start, start + 600, 5_000, 250_000, usd.address, 10**8))
    buyer.send(market.functions.openRequest(3, start, start + 600, 5_000, 50_000, usd.address, 10**8))  # too cheap
    buyer.send(market.functions.openRequest(9, start, start + 600, 5_000, 250_000, usd.address, 10**8))  # elsewhere
    buyer.send(market.functions.openRequest(3, start + 300, start + 900, 5_000, 250_000, usd.address, 10**8))  # overlaps

    opened, cancelled = watcher.poll()
    assert [r.request_id for r in opened] == [1, 2, 3, 4] and cancelled == []
    assert watcher.poll() == ([], [])  # the cursor moved on
    again = RequestWatcher(web3, market, open_dispatch_db(str(tmp_path / "dispatch.sqlite")), manifest.start_block,
                           confirmations=0)
    assert again.poll() == ([], [])  # and survives a restart

    clock.now = now + 1
    for request in opened:
        dispatcher.on_request(request)
    decisions = {r: dispatcher.decisions(r) for r in (1, 2, 3, 4)}
    assert [d["decision"] for d in decisions[1]] == ["committed"]
    assert [d["decision"] for d in decisions[2]] == ["declined"] and "below the minimum" in decisions[2][0]["reason"]
    assert decisions[3] == []  # not our zone: nothing to decide
    assert [d["decision"] for d in decisions[4]] == ["declined"] and "overlapping" in decisions[4][0]["reason"]
    due = outbox.due(ORACLE, time.time())
    assert [(d.kind, d.payload["requestId"]) for d in due] == [("commitment", 1)]
    watts = due[0].payload["watts"]
    assert 100 <= watts <= 7_400 * 8_000 // 10_000

    clock.now = start - 1
    dispatcher.step()
    assert db.execute("SELECT state FROM participations").fetchall() == [("committed",)]
    ev.advance(start)
    before = ev.power_w()
    clock.now = start + 0.05
    dispatcher.step()
    assert db.execute("SELECT state FROM participations").fetchall() == [("applied",)]
    assert ev.power_w() <= max(0, before - watts)
    assert dispatcher.latencies_ms == [pytest.approx(50.0, abs=1)]  # window start -> applied, on the node's clock
    # (how fast the running node applies setpoints is measured by `python -m bench node`)

    clock.now = start + 600
    dispatcher.step()
    assert db.execute("SELECT state FROM participations").fetchall() == [("restored",)]
    ev.advance(start + 660)
    assert ev.power_w() == 7_400
    assert [d["decision"] for d in dispatcher.decisions(1)] == ["committed", "applied", "restored"]
