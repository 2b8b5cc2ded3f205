"""A commitment made from a block that is later reorganised away is withdrawn (anvil, evm_snapshot /
evm_revert, as tests/api/test_indexer_reorg.py does for the API): the node sees a request and
commits; the chain is reverted to before the request and mined forward on another branch; the
node's next poll notices the abandoned block, marks the participation withdrawn and never applies
it. A request opened on the new branch is decided afresh."""

from __future__ import annotations

from dispatch_setup import SettableClock, registered_charger

from node.dispatch import Dispatcher, NodeDevice, Policy, RequestWatcher, open_dispatch_db
from node.outbox import Outbox

ORACLE = "http://127.0.0.1:9"


def rpc(web3, method: str, params: list):
    response = web3.provider.make_request(method, params)
    assert "error" not in response, response
    return response["result"]


def test_a_reorganised_request_withdraws_the_commitment(devnet, tmp_path):
    chain = registered_charger(devnet)
    web3, manifest, buyer, registry, market, usd = (chain.web3, chain.manifest, chain.buyer, chain.registry,
                                                    chain.market, chain.usd)
    key, ev, now = chain.key, chain.ev, chain.now
    clock = SettableClock(now + 1)
    db = open_dispatch_db(str(tmp_path / "dispatch.sqlite"))
    device = NodeDevice(key.address, bytes(key.key), ev, zone=3, capacity_w=7_400)
    dispatcher = Dispatcher(db, Outbox(tmp_path / "outbox.sqlite"), [device], Policy(min_price_per_kwh=100_000),
                            manifest.chainId, registry.address, lambda: [ORACLE], clock=clock)
    watcher = RequestWatcher(web3, market, db, manifest.start_block, confirmations=0,
                             on_rollback=dispatcher.on_rollback)
    buyer.send(usd.functions.mint(buyer.address, 10**9))
    buyer.send(usd.functions.approve(market.address, 10**9))
    assert watcher.poll() == ([], [])

    snapshot = rpc(web3, "evm_snapshot", [])
    fork_head = web3.eth.block_number
    start = (now // 60 + 5) * 60
    buyer.send(market.functions.openRequest(3, start, start + 600, 5_000, 250_000, usd.address, 10**8))
    opened, _ = watcher.poll()
    assert [(r.request_id, r.opened_block) for r in opened] == [(1, fork_head + 1)]
    assert dispatcher.on_request(opened[0]) > 0
    assert db.execute("SELECT request_id, state FROM participations").fetchall() == [(1, "committed")]
    abandoned_head = web3.eth.block_number

    assert rpc(web3, "evm_revert", [snapshot]) is True
    assert web3.eth.block_number == fork_head
    buyer.send(usd.functions.mint(buyer.address, 1))  # another branch: no request in it
    for _ in range(abandoned_head - web3.eth.block_number + 2):
        rpc(web3, "evm_mine", [])

    assert watcher.poll() == ([], [])
    assert watcher.cursor() == web3.eth.block_number
    assert db.execute("SELECT request_id, state FROM participations").fetchall() == [(1, "withdrawn")]
    decisions = dispatcher.decisions(1)
    assert [d["decision"] for d in decisions] == ["committed", "withdrawn"]
    assert f"fork at block {fork_head}" in decisions[-1]["reason"]

    clock.now = start + 1  # the window starts: a withdrawn commitment is never applied
    assert dispatcher.step() == 0
    assert db.execute("SELECT state FROM participations").fetchall() == [("withdrawn",)]

    # a request opened on the new branch (it gets id 1 again) is decided afresh
    buyer.send(market.functions.openRequest(3, start + 900, start + 1_500, 5_000, 250_000, usd.address, 10**8))
    clock.now = now + 2
    opened, _ = watcher.poll()
    assert [r.request_id for r in opened] == [1]
    assert dispatcher.on_request(opened[0]) > 0
    assert db.execute("SELECT request_id, state, start FROM participations").fetchall() == [
        (1, "committed", start + 900)]
