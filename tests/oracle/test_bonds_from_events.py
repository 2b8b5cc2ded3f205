"""oracle.bonds.bond_book_from_view against the Staking contract on a real anvil devnet (a fresh one
per test): the chain view's stakes, indexed from Staking's events, are what bondedOf, lockedOf and
bondPerKW return at the view's cursor, through stakes, unstakes, withdrawals, slashes (with debt
and its repayment), locks and bondPerKW changes, after a restart and after a reorg.

Slashes and locks are sent from the OracleHub's own address (anvil impersonation): the hub is the
only holder of SLASHER_ROLE and LOCKER_ROLE, and nobody can grant those roles (audit M-3)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import db
from oracle.bonds import bond_book_from_view, read_bond_book
from oracle.chain_view import ChainView
from protocol.chain import ChainError, Transactor

TOKEN = 10**18
FUNDS = 10**6 * TOKEN  # every account's token balance (the token is capped), approved to Staking once


def engine_at(path):
    engine = db.make_engine(str(path))
    db.init_db(engine)
    return engine


class StakingOps:
    """Staking transactions from anvil's funded keys 3..6, the admin (key 0) and the OracleHub."""

    def __init__(self, ops: Any, accounts: int = 4):
        self.ops = ops
        self.web3 = ops.web3
        manifest = ops.manifest
        abis = [entry.abi for entry in manifest.contracts.values()]
        self.staking = manifest.contract(self.web3, "Staking")
        self.token = manifest.contract(self.web3, "NegawattToken")
        self.admin = Transactor(self.web3, ops.devnet.keys[0], abis=abis)
        self.accounts = [Transactor(self.web3, key, abis=abis) for key in ops.devnet.keys[3:3 + accounts]]
        self.hub = manifest.address("OracleHub")
        self.unbonding_delay = int(self.staking.functions.unbondingDelay().call())
        rpc = self.web3.provider.make_request
        assert "error" not in rpc("anvil_impersonateAccount", [self.hub])
        assert "error" not in rpc("anvil_setBalance", [self.hub, hex(10**20)])
        self.admin.send(self.token.functions.grantRole(self.token.functions.MINTER_ROLE().call(), self.admin.address))
        for account in self.accounts:
            self.admin.send(self.token.functions.mint(account.address, FUNDS))
            account.send(self.token.functions.approve(self.staking.address, FUNDS))

    @property
    def addresses(self) -> list[str]:
        return [account.address for account in self.accounts]

    # the contract's state, read directly ------------------------------------------------------------

    def bonded(self, i: int) -> int:
        return int(self.staking.functions.bondedOf(self.accounts[i].address).call())

    def locked(self, i: int) -> int:
        return int(self.staking.functions.lockedOf(self.accounts[i].address).call())

    def unbonding(self, i: int) -> int:
        return int(self.staking.functions.stakeOf(self.accounts[i].address).call()[1])

    # the operations -------------------------------------------------------------------------------

    def stake(self, i: int, amount: int) -> None:
        self.accounts[i].send(self.staking.functions.stake(amount))

    def request_unstake(self, i: int, amount: int) -> None:
        self.accounts[i].send(self.staking.functions.requestUnstake(amount))

    def withdraw(self, i: int) -> None:
        """Wait out the unbonding delay on the chain's clock, then withdraw."""
        self.web3.provider.make_request("evm_increaseTime", [self.unbonding_delay + 1])
        self.ops.mine(1)  # the gas estimate runs on the latest block: it must be past releaseAt
        self.accounts[i].send(self.staking.functions.withdraw())

    def slash(self, i: int, amount: int, bond: bool = False) -> None:
        """A penalty (`slash`, above the lock) or an upheld challenge (`slashBond`), sent by the hub."""
        function = self.staking.functions.slashBond if bond else self.staking.functions.slash
        self._as_hub(function(self.accounts[i].address, amount, self.admin.address))

    def set_lock(self, i: int, amount: int) -> None:
        self._as_hub(self.staking.functions.setLock(self.accounts[i].address, amount))

    def set_bond_per_kw(self, value: int) -> None:
        self.admin.send(self.staking.functions.setBondPerKW(value))

    def _as_hub(self, call: Any) -> None:
        tx_hash = call.transact({"from": self.hub})
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1, receipt


def contract_stakes(staking_ops: StakingOps, block: int | str = "latest") -> dict[str, tuple[int, int]]:
    """(bondedOf, lockedOf) of every account read with eth_call at `block`."""
    functions = staking_ops.staking.functions
    return {address.lower(): (int(functions.bondedOf(address).call(block_identifier=block)),
                              int(functions.lockedOf(address).call(block_identifier=block)))
            for address in staking_ops.addresses}


def assert_view_matches_contract(view: ChainView, staking_ops: StakingOps) -> None:
    """The view (synced to the head) holds what the contract holds, and the two books are equal."""
    assert view.sync() == staking_ops.ops.head()
    stakes = view.stakes(staking_ops.addresses)
    assert stakes.block == view.cursor
    assert stakes.of == contract_stakes(staking_ops)
    assert stakes.bond_per_kw == staking_ops.staking.functions.bondPerKW().call()
    assert bond_book_from_view(view, staking_ops.addresses) == read_bond_book(staking_ops.staking,
                                                                              staking_ops.addresses)


def test_the_view_book_follows_every_staking_operation(tmp_path, devnet, devnet_ops):
    ops = devnet_ops
    s = StakingOps(ops)
    view = ChainView(ops.web3, ops.manifest, engine_at(tmp_path / "view.sqlite"))
    assert_view_matches_contract(view, s)  # nobody staked: all (0, 0), the deployment's bondPerKW
    assert view.stakes(s.addresses).bond_per_kw > 0

    s.stake(0, 50 * TOKEN)
    s.stake(1, 30 * TOKEN)
    s.stake(1, 5 * TOKEN)
    s.stake(2, 10 * TOKEN)
    s.set_lock(2, 8 * TOKEN)                  # an oracle's operating bond
    s.request_unstake(0, 20 * TOKEN)          # UnstakeRequested carries unbonding, not bonded
    s.request_unstake(0, 5 * TOKEN)
    assert_view_matches_contract(view, s)
    assert view.stakes([s.addresses[0]]).of[s.addresses[0].lower()] == (25 * TOKEN, 0)

    s.slash(0, 30 * TOKEN)                    # more than bonded: the rest from unbonding
    s.slash(2, 5 * TOKEN)                     # a penalty stops at the lock: 2 taken, 3 become debt
    s.slash(1, 0)                             # a zero slash is still an event, changing nothing
    s.set_bond_per_kw(7 * TOKEN)
    assert_view_matches_contract(view, s)
    assert s.bonded(2) == s.locked(2) == 8 * TOKEN
    assert bond_book_from_view(view, [s.addresses[2]]).available[s.addresses[2].lower()] == 0

    s.stake(2, 4 * TOKEN)                     # pays the 3 of debt first: bonded grows by 1
    assert s.bonded(2) == 9 * TOKEN
    s.slash(2, 20 * TOKEN, bond=True)         # an upheld challenge reaches the locked part
    s.set_lock(3, 1 * TOKEN)                  # a lock on an account with no stake
    s.withdraw(0)                             # changes neither bonded nor the lock
    s.set_lock(2, 0)
    assert_view_matches_contract(view, s)
    book = bond_book_from_view(view, s.addresses)
    assert book.bond_per_kw == 7 * TOKEN
    for owner in s.addresses:
        for watts in (0, 1, 999, 1_000, 3_000, 10_000):
            assert book.covers(owner, watts) == s.staking.functions.coversCommitment(owner, watts).call()

    # An owner the view never saw, in any case, is in the book with nothing available.
    stranger = ops.buyer.address
    assert bond_book_from_view(view, [stranger.upper().replace("0X", "0x")]).available == {stranger.lower(): 0}


def test_a_restarted_or_fresh_view_rebuilds_the_same_stakes(tmp_path, devnet, devnet_ops):
    ops = devnet_ops
    s = StakingOps(ops, accounts=2)
    engine = engine_at(tmp_path / "view.sqlite")
    view = ChainView(ops.web3, ops.manifest, engine)
    s.stake(0, 12 * TOKEN)
    s.set_lock(0, 2 * TOKEN)
    view.sync()
    before = view.stakes(s.addresses)
    del view  # "restart"

    s.request_unstake(0, 3 * TOKEN)           # after the stored cursor
    s.stake(1, 6 * TOKEN)
    restarted = ChainView(ops.web3, ops.manifest, engine)
    assert restarted.stored_cursor() == before.block
    assert_view_matches_contract(restarted, s)  # replayed up to the cursor, then resumed after it
    fresh = ChainView(ops.web3, ops.manifest, engine_at(tmp_path / "fresh.sqlite"))
    assert fresh.stakes(s.addresses) == restarted.stakes(s.addresses)  # an unsynced view syncs first


def test_the_book_is_the_contract_at_the_confirmed_cursor(tmp_path, devnet, devnet_ops):
    """With confirmations, a stake counts once its block is confirmed, and the view's book is the
    contract's state at the cursor block: two oracles at the same confirmed block read the same book."""
    ops = devnet_ops
    s = StakingOps(ops, accounts=2)
    peers = [ChainView(ops.web3, ops.manifest, engine_at(tmp_path / f"peer{i}.sqlite"), confirmations=2)
             for i in range(2)]
    s.stake(0, 9 * TOKEN)
    staked_in = ops.head()
    peers[0].sync()
    assert peers[0].cursor == staked_in - 2
    assert peers[0].stakes(s.addresses).of[s.addresses[0].lower()] == (0, 0)  # not confirmed yet
    ops.mine(2)
    for peer in peers:
        peer.sync()
    stakes = peers[0].stakes(s.addresses)
    assert stakes.block == staked_in and stakes.of[s.addresses[0].lower()] == (9 * TOKEN, 0)
    s.set_lock(0, 4 * TOKEN)                  # the head moves on; the confirmed cursor does not see it
    s.stake(1, TOKEN)
    assert stakes.of == contract_stakes(s, block=stakes.block) != contract_stakes(s)
    first, second = (bond_book_from_view(peer, s.addresses) for peer in peers)
    assert first == second and first.available[s.addresses[0].lower()] == 9 * TOKEN


def test_a_reorg_rolls_the_stakes_back_to_the_fork(tmp_path, devnet, devnet_ops, caplog):
    ops = devnet_ops
    s = StakingOps(ops, accounts=3)
    s.stake(0, 10 * TOKEN)
    s.stake(1, 10 * TOKEN)
    view = ChainView(ops.web3, ops.manifest, engine_at(tmp_path / "view.sqlite"))
    view.sync()
    kept = view.stakes(s.addresses)
    snapshot = ops.web3.provider.make_request("evm_snapshot", [])["result"]
    fork_head = ops.head()
    s.slash(0, 4 * TOKEN)                     # orphaned below
    s.set_lock(1, 10 * TOKEN)
    s.set_bond_per_kw(3 * TOKEN)
    s.stake(2, 5 * TOKEN)
    assert_view_matches_contract(view, s)
    abandoned = ops.head()

    assert ops.web3.provider.make_request("evm_revert", [snapshot])["result"] is True
    s.request_unstake(1, 6 * TOKEN)           # the replacement branch
    ops.mine(abandoned - ops.head() + 1)
    with caplog.at_level(logging.WARNING, logger="oracle.chain_view"):
        assert_view_matches_contract(view, s)
    assert f"rebuilding up to block {fork_head}" in caplog.text
    stakes = view.stakes(s.addresses)
    lowered = [a.lower() for a in s.addresses]
    assert stakes.of[lowered[0]] == kept.of[lowered[0]] == (10 * TOKEN, 0)   # the slash is gone
    assert stakes.of[lowered[1]] == (4 * TOKEN, 0)                            # the lock is gone
    assert stakes.of[lowered[2]] == (0, 0) and stakes.bond_per_kw == kept.bond_per_kw


OPERATIONS = ("stake", "unstake", "withdraw", "slash", "slash_bond", "lock", "bond_per_kw")
operation = st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 2), st.integers(0, 1_500))


@pytest.fixture
def random_run(tmp_path, devnet, devnet_ops):
    """One devnet, accounts and view for every example of the hypothesis test (state accumulates)."""
    s = StakingOps(devnet_ops, accounts=3)
    view = ChainView(devnet_ops.web3, devnet_ops.manifest, engine_at(tmp_path / "view.sqlite"))
    return s, view


def apply_operation(s: StakingOps, kind: str, i: int, per_mille: int) -> None:
    """Send one operation with an amount the contract accepts (a share of what the account has)."""
    bonded, locked, unbonding = s.bonded(i), s.locked(i), s.unbonding(i)
    if kind == "stake":
        s.stake(i, 1 + per_mille * 100 * TOKEN // 1_000)
    elif kind == "unstake":
        unlocked = max(0, bonded - locked)
        if unlocked == 0:
            with pytest.raises(ChainError, match="ZeroAmount|InsufficientUnlockedStake"):
                s.request_unstake(i, 1)
        else:
            s.request_unstake(i, max(1, min(unlocked, unlocked * per_mille // 1_000)))
    elif kind == "withdraw":
        if unbonding > 0:
            s.withdraw(i)
    elif kind in ("slash", "slash_bond"):
        s.slash(i, (bonded + unbonding) * per_mille // 1_000, bond=kind == "slash_bond")  # > 1000: debt
    elif kind == "lock":
        s.set_lock(i, bonded * per_mille // 1_000)
    else:
        s.set_bond_per_kw(per_mille * TOKEN // 10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=10))
def test_any_sequence_of_staking_operations_keeps_the_books_equal(random_run, operations):
    s, view = random_run
    for kind, i, per_mille in operations:
        apply_operation(s, kind, i, per_mille)
    assert_view_matches_contract(view, s)
    memory = db.make_engine("sqlite://")
    db.init_db(memory)
    fresh = ChainView(s.web3, s.ops.manifest, memory)
    assert fresh.stakes(s.addresses) == view.stakes(s.addresses)  # the whole history replayed at once
