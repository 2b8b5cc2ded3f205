"""protocol.follower on anvil: typed events in bounded ranges, a cursor that survives a restart,
confirmations that hold back recent blocks, and a reorg (evm_snapshot / evm_revert) detected by
block hash and rolled back to the fork point."""

from __future__ import annotations

from protocol.chain import Transactor
from protocol.events import EventDecoder
from protocol.follower import Batch, Cursor, Follower, Rollback


class MemoryStore:
    """A CursorStore in memory (shared by "restarted" followers)."""

    def __init__(self):
        self.cursor: Cursor | None = None

    def load(self):
        return self.cursor

    def save(self, cursor):
        self.cursor = cursor


class Balances:
    """A projection: the MockStablecoin Transfer events applied, undone back to a fork point."""

    def __init__(self):
        self.events = []
        self.rollbacks: list[Rollback] = []
        self.batches: list[Batch] = []

    def apply(self, batch):
        self.batches.append(batch)
        self.events.extend(batch.events)

    def rollback(self, rollback):
        self.rollbacks.append(rollback)
        self.events = [e for e in self.events if e.block <= rollback.fork]

    def transfers(self):
        return [(e.args["to"], e.args["value"]) for e in self.events]


def setup(devnet, **kwargs):
    web3, manifest = devnet.web3(), devnet.manifest()
    usd = manifest.contract(web3, "MockStablecoin")
    sender = Transactor(web3, devnet.keys[2], abis=[e.abi for e in manifest.contracts.values()])
    decoder = EventDecoder(manifest, web3, contracts=("MockStablecoin",))
    store = MemoryStore()
    follower = Follower(web3, decoder, store, manifest.start_block, **kwargs)
    return web3, usd, sender, store, follower


def recording(follower):
    ranges = []
    fetch = follower.fetch

    def record(first, last):
        ranges.append((first, last))
        return fetch(first, last)

    follower.fetch = record
    return ranges


def rpc(web3, method, params):
    response = web3.provider.make_request(method, params)
    assert "error" not in response, response
    return response["result"]


def test_events_are_typed_and_ranges_bounded(devnet):
    web3, usd, sender, store, follower = setup(devnet, max_range=3)
    for amount in (1, 2, 3, 4):
        sender.send(usd.functions.mint(sender.address, amount))
        rpc(web3, "evm_mine", [])
    ranges = recording(follower)
    balances = Balances()
    assert follower.poll(balances).block == web3.eth.block_number
    assert all(last - first < 3 for first, last in ranges)
    covered = [block for first, last in ranges for block in range(first, last + 1)]
    assert covered == list(range(follower.start_block, web3.eth.block_number + 1))  # every block once, in order
    minted = [e for e in balances.events if e.args["to"] == sender.address]
    assert [(e.contract, e.name, e.args["value"]) for e in minted] == [("MockStablecoin", "Transfer", a)
                                                                        for a in (1, 2, 3, 4)]
    assert minted[0].args["from"] == "0x" + "00" * 20
    assert store.cursor.hash == "0x" + bytes(web3.eth.get_block(store.cursor.block)["hash"]).hex()


def test_the_cursor_resumes_after_a_restart(devnet):
    web3, usd, sender, store, follower = setup(devnet)
    follower.poll(Balances())
    cursor = store.cursor.block
    sender.send(usd.functions.mint(sender.address, 7))
    restarted = Follower(follower.web3, follower.decoder, store, follower.start_block)
    ranges = recording(restarted)
    balances = Balances()
    assert restarted.poll(balances).block == web3.eth.block_number
    assert ranges == [(cursor + 1, web3.eth.block_number)]
    assert balances.transfers() == [(sender.address, 7)]


def test_confirmations_hold_back_recent_blocks(devnet):
    web3, usd, sender, store, follower = setup(devnet, confirmations=2)
    balances = Balances()
    follower.poll(balances)
    sender.send(usd.functions.mint(sender.address, 5))
    minted_in = web3.eth.block_number
    assert follower.poll(balances).block == minted_in - 2
    rpc(web3, "evm_mine", [])
    assert follower.poll(balances).block == minted_in - 1
    assert (sender.address, 5) not in balances.transfers()
    rpc(web3, "evm_mine", [])
    assert follower.poll(balances).block == minted_in
    assert balances.transfers()[-1] == (sender.address, 5)


def test_a_reorg_is_rolled_back_to_the_fork_point(devnet):
    web3, usd, sender, store, follower = setup(devnet)
    balances = Balances()
    sender.send(usd.functions.mint(sender.address, 1))
    follower.poll(balances)
    snapshot = rpc(web3, "evm_snapshot", [])
    fork_head = web3.eth.block_number
    sender.send(usd.functions.mint(sender.address, 100))
    sender.send(usd.functions.mint(sender.address, 200))
    follower.poll(balances)
    abandoned = web3.eth.block_number
    assert balances.transfers()[-2:] == [(sender.address, 100), (sender.address, 200)]

    assert rpc(web3, "evm_revert", [snapshot]) is True
    sender.send(usd.functions.mint(sender.address, 3))
    for _ in range(abandoned - web3.eth.block_number + 1):
        rpc(web3, "evm_mine", [])
    assert follower.poll(balances).block == web3.eth.block_number
    assert balances.rollbacks == [Rollback(fork_head, abandoned, False)]
    assert balances.transfers()[-2:] == [(sender.address, 1), (sender.address, 3)]

    # a cursor no kept hash vouches for (another chain) rolls everything back
    store.save(Cursor(web3.eth.block_number, {web3.eth.block_number: "0x" + "00" * 32}))
    fresh = Balances()
    follower.poll(fresh)
    assert fresh.rollbacks == [Rollback(follower.start_block - 1, web3.eth.block_number, True)]
    assert fresh.transfers() == balances.transfers()
