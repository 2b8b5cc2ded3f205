"""RewardDistributor: cumulative claims against the StandardMerkleTree root built in Python."""

from __future__ import annotations

import pytest
from contract_asserts import isolated, reverts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.merkle import RewardLeaf, RewardsTree

USD = 10**6


@pytest.fixture
def root_setter(admin):
    """The admin stands in for the OracleHub here (the deployed distributor's root setter is bound to the hub)."""
    return admin


@pytest.fixture
def distributor(project, admin, guardian, root_setter):
    """A RewardDistributor like the deployed one, with its hub role bound to `root_setter`."""
    fresh = admin.deploy(project.RewardDistributor, admin.address, guardian.address)
    fresh.bindHub(root_setter.address, sender=admin)
    return fresh


@pytest.fixture
def publish(distributor, usd, root_setter):
    """Install a tree over `leaves` as epoch `epoch`, funding the distributor with `fund` mUSD."""

    def do(leaves: list[RewardLeaf], epoch: int, fund: int = 0) -> RewardsTree:
        tree = RewardsTree(leaves)
        if fund:
            usd.mint(distributor.address, fund, sender=root_setter)
        distributor.setRoot(tree.root, epoch, sender=root_setter)
        return tree

    return do


def test_set_root_is_reserved_to_the_root_setter(distributor, other, root_setter):
    with reverts(distributor.AccessControlUnauthorizedAccount):
        distributor.setRoot(b"\x01" * 32, 1, sender=other)
    tx = distributor.setRoot(b"\x01" * 32, 1, sender=root_setter)
    event = tx.decode_logs(distributor.RootUpdated)[0]
    assert (event.epoch, bytes(event.root), bytes(event.previousRoot)) == (1, b"\x01" * 32, bytes(32))
    assert bytes(distributor.root()) == b"\x01" * 32 and distributor.epoch() == 1


def test_first_claim_pays_the_cumulative_amount(distributor, usd, publish, owner, other):
    leaf = RewardLeaf(owner.address, usd.address, 70 * USD)
    tree = publish([leaf, RewardLeaf(other.address, usd.address, 30 * USD)], epoch=1, fund=100 * USD)
    tx = distributor.claim(owner.address, usd.address, leaf.amount, tree.proof(leaf), sender=owner)
    event = tx.decode_logs(distributor.Claimed)[0]
    assert (event.account, event.token, event.amount, event.cumulativeClaimed) == (
        owner.address, usd.address, 70 * USD, 70 * USD)
    assert usd.balanceOf(owner.address) == 70 * USD
    assert distributor.claimed(owner.address, usd.address) == 70 * USD


def test_next_claim_pays_only_the_difference(distributor, usd, publish, owner, other):
    first = RewardLeaf(owner.address, usd.address, 70 * USD)
    tree = publish([first, RewardLeaf(other.address, usd.address, 30 * USD)], epoch=1, fund=100 * USD)
    distributor.claim(owner.address, usd.address, first.amount, tree.proof(first), sender=owner)
    grown = RewardLeaf(owner.address, usd.address, 95 * USD)
    tree = publish([grown, RewardLeaf(other.address, usd.address, 30 * USD)], epoch=2, fund=25 * USD)
    distributor.claim(owner.address, usd.address, grown.amount, tree.proof(grown), sender=owner)
    assert usd.balanceOf(owner.address) == 95 * USD
    assert usd.balanceOf(distributor.address) == 30 * USD


def test_anyone_may_claim_but_funds_go_to_the_account(distributor, usd, publish, owner, other):
    leaf = RewardLeaf(owner.address, usd.address, 5 * USD)
    tree = publish([leaf], epoch=1, fund=5 * USD)
    distributor.claim(owner.address, usd.address, leaf.amount, tree.proof(leaf), sender=other)
    assert usd.balanceOf(owner.address) == 5 * USD and usd.balanceOf(other.address) == 0


def test_double_claim_is_rejected(distributor, usd, publish, owner):
    leaf = RewardLeaf(owner.address, usd.address, 5 * USD)
    tree = publish([leaf], epoch=1, fund=10 * USD)
    distributor.claim(owner.address, usd.address, leaf.amount, tree.proof(leaf), sender=owner)
    with reverts(distributor.NothingToClaim, account=owner.address, token=usd.address,
                     cumulativeAmount=5 * USD, claimed=5 * USD):
        distributor.claim(owner.address, usd.address, leaf.amount, tree.proof(leaf), sender=owner)


@pytest.mark.parametrize("field", ["account", "token", "amount"])
def test_a_leaf_not_in_the_root_is_rejected(distributor, usd, token, publish, owner, other, field):
    leaf = RewardLeaf(owner.address, usd.address, 5 * USD)
    other_leaf = RewardLeaf(other.address, usd.address, 9 * USD)
    tree = publish([leaf, other_leaf], epoch=1, fund=14 * USD)
    forged = {
        "account": (other.address, usd.address, 5 * USD),
        "token": (owner.address, token.address, 5 * USD),
        "amount": (owner.address, usd.address, 6 * USD),
    }[field]
    with reverts(distributor.InvalidProof, account=forged[0], token=forged[1], cumulativeAmount=forged[2]):
        distributor.claim(*forged, tree.proof(leaf), sender=owner)


def test_claim_many_collects_several_tokens(distributor, usd, token, publish, owner, minter):
    usd_leaf = RewardLeaf(owner.address, usd.address, 5 * USD)
    nega_leaf = RewardLeaf(owner.address, token.address, 3 * 10**18)
    tree = publish([usd_leaf, nega_leaf], epoch=1, fund=5 * USD)
    token.mint(distributor.address, 3 * 10**18, sender=minter)
    tx = distributor.claimMany(owner.address, [usd.address, token.address], [usd_leaf.amount, nega_leaf.amount],
                               [tree.proof(usd_leaf), tree.proof(nega_leaf)], sender=owner)
    assert len(tx.decode_logs(distributor.Claimed)) == 2
    assert usd.balanceOf(owner.address) == 5 * USD and token.balanceOf(owner.address) == 3 * 10**18


def test_l5_a_front_run_claim_does_not_make_claim_many_revert(distributor, usd, token, publish, owner, other,
                                                               minter):
    """The attack: someone claims one of the owner's leaves for it just before the owner's claimMany;
    the batch used to revert with NothingToClaim. The claimed leaf is now skipped."""
    usd_leaf = RewardLeaf(owner.address, usd.address, 5 * USD)
    nega_leaf = RewardLeaf(owner.address, token.address, 3 * 10**18)
    tree = publish([usd_leaf, nega_leaf], epoch=1, fund=5 * USD)
    token.mint(distributor.address, 3 * 10**18, sender=minter)
    distributor.claim(owner.address, usd.address, usd_leaf.amount, tree.proof(usd_leaf), sender=other)
    tx = distributor.claimMany(owner.address, [usd.address, token.address], [usd_leaf.amount, nega_leaf.amount],
                               [tree.proof(usd_leaf), tree.proof(nega_leaf)], sender=owner)
    assert [log.token for log in tx.decode_logs(distributor.Claimed)] == [token.address]
    assert usd.balanceOf(owner.address) == 5 * USD and token.balanceOf(owner.address) == 3 * 10**18
    with reverts(distributor.NothingToClaim):  # all of it claimed: still an error, not a silent no-op
        distributor.claimMany(owner.address, [usd.address, token.address], [usd_leaf.amount, nega_leaf.amount],
                              [tree.proof(usd_leaf), tree.proof(nega_leaf)], sender=owner)
    with reverts(distributor.InvalidProof):  # a skipped leaf's proof is still checked
        distributor.claimMany(owner.address, [usd.address, token.address], [usd_leaf.amount + 1, nega_leaf.amount],
                              [tree.proof(usd_leaf), tree.proof(nega_leaf)], sender=owner)


def test_claim_many_rejects_arrays_of_different_lengths(distributor, usd, owner):
    with reverts(distributor.LengthMismatch):
        distributor.claimMany(owner.address, [usd.address], [1, 2], [[]], sender=owner)


def test_claims_are_paused_by_the_guardian(distributor, usd, publish, owner, guardian, other):
    leaf = RewardLeaf(owner.address, usd.address, 5 * USD)
    tree = publish([leaf], epoch=1, fund=5 * USD)
    with reverts(distributor.AccessControlUnauthorizedAccount):
        distributor.pause(sender=other)
    distributor.pause(sender=guardian)
    assert distributor.paused() and bytes(distributor.root()) == tree.root
    with reverts(distributor.EnforcedPause):
        distributor.claim(owner.address, usd.address, leaf.amount, tree.proof(leaf), sender=owner)
    with reverts(distributor.EnforcedPause):
        distributor.claimMany(owner.address, [usd.address], [leaf.amount], [tree.proof(leaf)], sender=owner)
    distributor.unpause(sender=guardian)
    distributor.claim(owner.address, usd.address, leaf.amount, tree.proof(leaf), sender=owner)
    assert usd.balanceOf(owner.address) == 5 * USD


def test_a_root_installed_while_paused_applies_on_unpause(distributor, usd, publish, owner, guardian):
    first = RewardLeaf(owner.address, usd.address, 5 * USD)
    publish([first], epoch=1, fund=5 * USD)
    distributor.pause(sender=guardian)
    grown = RewardLeaf(owner.address, usd.address, 8 * USD)
    tree = publish([grown], epoch=2, fund=3 * USD)
    assert bytes(distributor.root()) == tree.root and distributor.epoch() == 2
    distributor.unpause(sender=guardian)
    distributor.claim(owner.address, usd.address, grown.amount, tree.proof(grown), sender=owner)
    assert usd.balanceOf(owner.address) == 8 * USD


def test_the_pause_marker_cannot_be_installed_as_a_root(distributor, root_setter):
    with reverts(distributor.ReservedRoot):
        distributor.setRoot(b"\xff" * 32, 1, sender=root_setter)


def test_views_agree_with_python(distributor, usd, publish, owner):
    leaf = RewardLeaf(owner.address, usd.address, 5 * USD)
    tree = publish([leaf, RewardLeaf(usd.address, usd.address, 1)], epoch=1)
    assert bytes(distributor.leafHash(leaf.account, leaf.token, leaf.amount)) == leaf.hash()
    assert distributor.verify(leaf.account, leaf.token, leaf.amount, tree.proof(leaf))
    assert not distributor.verify(leaf.account, leaf.token, leaf.amount + 1, tree.proof(leaf))


# ---------------------------------------------------------------- invariants


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amounts=st.lists(st.integers(1, 10**12), min_size=1, max_size=9, unique=True), pick=st.integers(0, 8),
       tamper=st.sampled_from(["none", "amount", "sibling", "drop", "extra"]))
def test_claim_accepts_exactly_the_proofs_openzeppelin_accepts(
    chain, distributor, usd, publish, owner, amounts, pick, tamper
):
    """The claim path's own proof loop agrees with OpenZeppelin's MerkleProof (used by `verify`)."""
    with isolated(chain):
        leaves = [RewardLeaf(owner.address, usd.address, a) for a in amounts]
        tree = publish(leaves, epoch=1, fund=max(amounts))
        leaf = leaves[pick % len(leaves)]
        proof, amount = list(tree.proof(leaf)), leaf.amount
        untouched = tamper == "none" or (tamper in ("sibling", "drop") and not proof)
        if tamper == "amount":
            amount += 1
        elif tamper == "sibling" and proof:
            proof[0] = bytes([proof[0][0] ^ 1]) + proof[0][1:]
        elif tamper == "drop" and proof:
            proof = proof[:-1]
        elif tamper == "extra":
            proof = proof + [b"\x05" * 32]
        accepted_by_openzeppelin = distributor.verify(owner.address, usd.address, amount, proof)
        assert accepted_by_openzeppelin == untouched
        if accepted_by_openzeppelin:
            distributor.claim(owner.address, usd.address, amount, proof, sender=owner)
            assert distributor.claimed(owner.address, usd.address) == amount
        else:
            with reverts(distributor.InvalidProof):
                distributor.claim(owner.address, usd.address, amount, proof, sender=owner)

increments = st.lists(st.lists(st.integers(0, 50 * USD), min_size=3, max_size=3), min_size=1, max_size=4)
claim_plans = st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=4, max_size=4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(epochs=increments, plans=claim_plans)
def test_claimed_never_exceeds_the_cumulative_amount_in_the_root(
    chain, distributor, usd, publish, accounts, epochs, plans
):
    """Over epochs of growing cumulative totals and arbitrary claim timing: every account's
    claimed total stays <= its cumulative amount in the current root, a repeated claim of the same
    leaf never pays twice, and the distributor's balance is exactly what is still owed."""
    holders = [accounts[13], accounts[14], accounts[15]]
    with isolated(chain):
        cumulative = [0, 0, 0]
        for epoch, (increment, plan) in enumerate(zip(epochs, plans), start=1):
            cumulative = [c + i for c, i in zip(cumulative, increment)]
            leaves = [RewardLeaf(h.address, usd.address, c) for h, c in zip(holders, cumulative)]
            tree = publish(leaves, epoch=epoch, fund=sum(increment))
            for holder, leaf, claim_now in zip(holders, leaves, plan):
                already = distributor.claimed(holder.address, usd.address)
                if claim_now and leaf.amount > already:
                    distributor.claim(holder.address, usd.address, leaf.amount, tree.proof(leaf), sender=holder)
                    with reverts(distributor.NothingToClaim):
                        distributor.claim(holder.address, usd.address, leaf.amount, tree.proof(leaf), sender=holder)
                assert distributor.claimed(holder.address, usd.address) <= leaf.amount
            owed = sum(c - distributor.claimed(h.address, usd.address) for h, c in zip(holders, cumulative))
            assert usd.balanceOf(distributor.address) == owed
            for holder in holders:
                assert usd.balanceOf(holder.address) == distributor.claimed(holder.address, usd.address)


def test_m3_claims_resume_when_a_pause_expires_without_an_unpause(distributor, usd, publish, owner, guardian, chain):
    """The attack: the guardian pauses claims and never unpauses. After MAX_PAUSE_DURATION claims work again
    against the root held during the pause, and a root installed after the expiry is the live one."""
    leaf = RewardLeaf(owner.address, usd.address, 5 * USD)
    tree = publish([leaf], epoch=1, fund=5 * USD)
    tx = distributor.pause(sender=guardian)
    chain.mine(timestamp=chain.blocks[tx.block_number].timestamp + distributor.MAX_PAUSE_DURATION())
    assert not distributor.paused() and bytes(distributor.root()) == tree.root
    distributor.claim(owner.address, usd.address, leaf.amount, tree.proof(leaf), sender=owner)
    assert usd.balanceOf(owner.address) == 5 * USD
    grown = RewardLeaf(owner.address, usd.address, 9 * USD)
    later = publish([grown], epoch=2, fund=4 * USD)
    assert bytes(distributor.root()) == later.root
    distributor.claim(owner.address, usd.address, grown.amount, later.proof(grown), sender=owner)
    assert usd.balanceOf(owner.address) == 9 * USD
