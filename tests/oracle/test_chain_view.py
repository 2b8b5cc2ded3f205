"""oracle.chain_view against a real anvil devnet (a fresh one per test): devices and requests from
events, lookups that sync on a miss, confirmations, bounded log ranges, and resuming from the
stored cursor after a restart."""

from __future__ import annotations

import logging

from eth_account import Account

from oracle import db
from oracle.chain_view import ChainView, RequestStatus


class RecordingView(ChainView):
    """A ChainView that records the block ranges its follower asks the RPC for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ranges: list[tuple[int, int]] = []
        fetch = self.follower.fetch

        def recording_fetch(first, last):
            self.ranges.append((first, last))
            return fetch(first, last)

        self.follower.fetch = recording_fetch


def engine_at(path):
    engine = db.make_engine(str(path))
    db.init_db(engine)
    return engine


def test_devices_and_requests_follow_the_chain(tmp_path, devnet, devnet_ops):
    ops = devnet_ops
    view = ChainView(ops.web3, ops.manifest, engine_at(tmp_path / "view.sqlite"))
    assert view.sync() == ops.head()

    device = ops.register(capacity_w=3_300, zone=12, kind=3)   # after the view started
    info = view.device(device.address.lower())                  # a miss syncs once
    assert (info.address, info.owner, info.capacity_w, info.zone, info.kind, info.active) == (
        device.address, ops.owner.address, 3_300, 12, 3, True)
    assert view.device(Account.create().address) is None
    assert view.device("not an address") is None

    request_id = ops.open_request(zone=12, start_in=1_800, duration=600, target_w=7_000, price_per_kwh=123,
                                  budget=10**8)
    request = view.request(request_id)
    assert request is not None and request.status is RequestStatus.OPEN
    assert (request.buyer, request.zone, request.end - request.start, request.target_w, request.price_per_kwh,
            request.payment_token, request.max_budget) == (
        ops.buyer.address, 12, 600, 7_000, 123, ops.stablecoin.address, 10**8)
    assert view.request(request_id + 1) is None

    ops.deactivate(device.address)
    ops.cancel(request_id)
    view.sync()
    assert view.device(device.address).active is False
    assert view.request(request_id).status is RequestStatus.CANCELLED
    ops.reactivate(device.address)
    new_owner = ops.buyer.address
    ops.transfer(device.address, ops.buyer)
    view.sync()
    assert view.device(device.address).active is True
    assert view.device(device.address).owner == new_owner

    second = ops.register(capacity_w=1_000, zone=12)
    ops.unregister(second.address)
    view.sync()
    assert view.device(second.address) is None
    assert set(view.devices()) == {device.address}


def test_a_restarted_view_replays_up_to_its_cursor_and_resumes_after_it(tmp_path, devnet, devnet_ops):
    ops = devnet_ops
    engine = engine_at(tmp_path / "view.sqlite")
    first_device = ops.register()
    view = ChainView(ops.web3, ops.manifest, engine)
    cursor = view.sync()
    assert view.stored_cursor() == cursor == ops.head()
    ops.mine(3)
    view.sync()
    cursor = view.cursor
    del view  # "restart"

    later_device = ops.register()                 # in block cursor + 1, after the stored cursor
    request_id = ops.open_request(zone=4)
    head = ops.head()
    restarted = RecordingView(ops.web3, ops.manifest, engine)
    assert restarted.cursor is None and restarted.stored_cursor() == cursor
    assert restarted.sync() == head
    start = restarted.start_block
    # the history up to the cursor is replayed, then processing resumes right after the cursor
    assert restarted.ranges == [(start, cursor), (cursor + 1, head)]
    assert {first_device.address, later_device.address} <= set(restarted.devices())
    assert restarted.request(request_id, refresh=False) is not None
    assert restarted.stored_cursor() == head


def test_only_confirmed_blocks_count_and_ranges_are_bounded(tmp_path, devnet, devnet_ops):
    ops = devnet_ops
    view = RecordingView(ops.web3, ops.manifest, engine_at(tmp_path / "view.sqlite"), confirmations=2,
                         block_range=3)
    device = ops.register()
    registered_in = ops.head()
    assert view.device(device.address) is None   # 0 confirmations so far
    assert view.cursor == registered_in - 2
    ops.mine(1)
    assert view.device(device.address) is None
    ops.mine(1)
    assert view.device(device.address) is not None
    assert view.cursor == registered_in
    assert all(last - first < 3 for first, last in view.ranges)
    covered = [block for first, last in view.ranges for block in range(first, last + 1)]
    assert covered == list(range(view.start_block, registered_in + 1))  # every block once, in order


def test_a_cursor_from_another_chain_is_discarded(tmp_path, devnet, devnet_ops, caplog):
    ops = devnet_ops
    engine = engine_at(tmp_path / "view.sqlite")
    device = ops.register()
    view = ChainView(ops.web3, ops.manifest, engine)
    db.put_value(engine, view.cursor_key, {"block": ops.head(), "hash": "0x" + "00" * 32})
    with caplog.at_level(logging.WARNING, logger="oracle.chain_view"):
        assert view.sync() == ops.head()
    assert "not on this chain" in caplog.text
    assert view.device(device.address, refresh=False) is not None
    db.put_value(engine, view.cursor_key, {"block": ops.head() + 1_000, "hash": "0x" + "11" * 32})
    fresh = ChainView(ops.web3, ops.manifest, engine)
    assert fresh.sync() == ops.head() and fresh.device(device.address, refresh=False) is not None


def test_a_reorg_rebuilds_the_view_up_to_the_fork(tmp_path, devnet, devnet_ops, caplog):
    ops = devnet_ops
    kept = ops.register(zone=5)
    view = ChainView(ops.web3, ops.manifest, engine_at(tmp_path / "view.sqlite"))
    view.sync()
    snapshot = ops.web3.provider.make_request("evm_snapshot", [])["result"]
    fork_head = ops.head()
    orphan = ops.register(zone=5)
    request_id = ops.open_request(zone=5)
    view.sync()
    assert view.device(orphan.address, refresh=False) is not None
    assert view.request(request_id, refresh=False) is not None
    abandoned = ops.head()

    assert ops.web3.provider.make_request("evm_revert", [snapshot])["result"] is True
    replacement = ops.register(zone=5)
    ops.mine(abandoned - ops.head() + 1)
    with caplog.at_level(logging.WARNING, logger="oracle.chain_view"):
        assert view.sync() == ops.head()
    assert f"rebuilding up to block {fork_head}" in caplog.text
    assert set(view.devices()) == {kept.address, replacement.address}
    assert view.request(request_id, refresh=False) is None


def test_m4_the_bond_book_agrees_with_staking_cover(devnet_ops):
    """oracle.bonds against the contract: BondBook.covers says what Staking.coversCommitment says."""
    from oracle.bonds import read_bond_book

    ops = devnet_ops
    staking = ops.manifest.contract(ops.web3, "Staking")
    ops.stake(ops.owner, 3 * staking.functions.bondPerKW().call() + 7)
    book = read_bond_book(staking, [ops.owner.address, ops.buyer.address])
    for owner in (ops.owner.address, ops.buyer.address):
        for watts in (0, 1, 2_999, 3_000, 3_001, 3_007, 3_008, 10_000):
            assert book.covers(owner, watts) == staking.functions.coversCommitment(owner, watts).call(), (owner, watts)
    # Read in JSON-RPC batches of any size, the book is the same.
    assert read_bond_book(staking, [ops.owner.address, ops.buyer.address], batch_size=1) == book
    assert book.available[ops.owner.address.lower()] > 0


def test_a_known_device_is_answered_without_a_sync(tmp_path, devnet, devnet_ops):
    ops = devnet_ops
    devices = [ops.register() for _ in range(3)]
    view = ChainView(ops.web3, ops.manifest, engine_at(tmp_path / "view.sqlite"))
    view.sync()
    polls = []
    poll = view.follower.poll
    view.follower.poll = lambda projection: polls.append(1) or poll(projection)
    for _ in range(50):
        for device in devices:
            assert view.device(device.address) is not None
    assert polls == []  # answered from the cache: the follower (the JSON-RPC side) was not asked
    assert view.device(Account.create().address) is None  # a miss does ask the chain once
    assert polls == [1]


def test_concurrent_misses_share_one_sync(tmp_path, devnet, devnet_ops):
    import threading
    import time

    ops = devnet_ops
    view = ChainView(ops.web3, ops.manifest, engine_at(tmp_path / "view.sqlite"))
    view.sync()
    device = ops.register()  # registered after the view's last sync: every lookup below misses
    polls = []
    poll = view.follower.poll
    view.follower.poll = lambda projection: polls.append(1) or poll(projection)
    found = []
    with view._lock:  # the misses all ask while a sync is in progress; they must then share one
        threads = [threading.Thread(target=lambda: found.append(view.device(device.address))) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
    for thread in threads:
        thread.join(timeout=30)
    assert len(found) == 8 and all(info is not None and info.address == device.address for info in found)
    assert len(polls) == 1
