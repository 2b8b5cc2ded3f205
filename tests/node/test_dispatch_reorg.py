"""A commitment made from a block that is later reorganised away is withdrawn (anvil, evm_snapshot /
evm_revert, as tests/api/test_indexer_reorg.py does for the API): the node sees a request and
commits; the chain is reverted to before the request and mined forward on another branch; the
node's next poll notices the abandoned block, marks the participation withdrawn and never applies
it. A request opened on the new branch is decided afresh."""

from __future__ import annotations

from eth_account import Account

from node.devices.factory import build_device
from node.dispatch import Dispatcher, NodeDevice, Policy, RequestWatcher, open_dispatch_db
from node.outbox import Outbox
from protocol import eip712
from protocol.chain import Transactor

ORACLE = "http://127.0.0.1:9"


class SettableClock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def rpc(web3, method: str, params: list):
    response = web3.provider.make_request(method, params)
    assert "error" not in response, response
    return response["result"]


def test_a_reorganised_request_withdraws_the_commitment(devnet, tmp_path):
    web3, manifest = devnet.web3(), devnet.manifest()
    abis = [entry.abi for entry in manifest.contracts.values()]
    owner = Transactor(web3, devnet.keys[1], abis=abis)
    buyer = Transactor(web3, devnet.keys[2], abis=abis)
    registry, market = manifest.contract(web3, "DeviceRegistry"), manifest.contract(web3, "FlexMarket")
    usd = manifest.contract(web3, "MockStablecoin")

    now = web3.eth.get_block("latest")["timestamp"]
    key = Account.create()
    deadline = now + 3_600
    permit = {"owner": owner.address, "device": key.address, "nonce": 0, "deadline": deadline}
    owner.send(registry.functions.register(key.address, 0, 7_400, 3, deadline, eip712.sign(
        key.key, "DevicePermit", permit, manifest.chainId, registry.address)))
    arrival = (now // 60 - 10) * 60
    ev = build_device({"kind": "ev_charger", "device_id": key.address, "seed": 1, "max_power_w": 7_400,
                       "sessions": [{"arrival": arrival, "departure": arrival + 12 * 3_600,
                                     "energy_needed_wh": 20_000}]}, start_time=arrival)
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
