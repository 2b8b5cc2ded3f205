"""OracleHub: the oracle set, k-of-n signed reports, the challenge window and finalization."""

from __future__ import annotations

import pytest
from contract_asserts import isolated, reverts
from eth_account import Account
from eth_utils import keccak

from protocol import eip712
from protocol.merkle import RewardLeaf
from protocol.report import Penalty, RequestPayout, SettlementReport
from negawatt.deploy import TOKEN

USD = 10**6

PENDING, CHALLENGED, NONE = 1, 2, 0
MAX_PAUSE = 7 * 24 * 3600
DAY = 24 * 3600


@pytest.fixture(autouse=True)
def _oracles(oracle_set):
    """Every test here starts from five bonded oracles and threshold 3."""
    return oracle_set


@pytest.fixture
def settled_request(open_request, end_request):
    """An ended request with 1,000 mUSD escrowed."""
    request_id = open_request(budget=1_000 * USD)
    end_request(request_id)
    return request_id


@pytest.fixture
def leaves(owner, other, usd, treasury):
    return [
        RewardLeaf(owner.address, usd.address, 600 * USD),
        RewardLeaf(other.address, usd.address, 200 * USD),
        RewardLeaf(treasury.address, usd.address, 200 * USD),
    ]


# ---------------------------------------------------------------- oracle set


def test_oracle_set_is_listed_with_urls(hub, oracle_accounts):
    hub.setOracleUrl("https://oracle-0.example/ingest", sender=oracle_accounts[0])
    addresses, urls = hub.oracles()
    assert list(addresses) == [o.address for o in oracle_accounts]
    assert urls[0] == "https://oracle-0.example/ingest" and list(urls[1:]) == [""] * 4
    assert hub.threshold() == 3
    assert hub.isOracle(oracle_accounts[2].address) and not hub.isOracle(hub.address)


def test_add_oracle_locks_its_bond(hub, staking, token, minter, admin, accounts, params):
    newcomer = accounts[11]
    token.mint(newcomer.address, params.min_oracle_bond, sender=minter)
    token.approve(staking.address, params.min_oracle_bond, sender=newcomer)
    staking.stake(params.min_oracle_bond, sender=newcomer)
    tx = hub.addOracle(newcomer.address, sender=admin)
    assert [(e.oracle, e.index) for e in tx.decode_logs(hub.OracleAdded)] == [(newcomer.address, 5)]
    assert staking.lockedOf(newcomer.address) == params.min_oracle_bond
    with reverts(staking.InsufficientUnlockedStake):
        staking.requestUnstake(1, sender=newcomer)


def test_add_oracle_rejections(hub, admin, other, oracle_accounts, accounts, params):
    with reverts(hub.AccessControlUnauthorizedAccount):
        hub.addOracle(accounts[11].address, sender=other)
    with reverts(hub.ZeroAddress):
        hub.addOracle("0x" + "00" * 20, sender=admin)
    with reverts(hub.OracleAlreadyAdded, oracle=oracle_accounts[0].address):
        hub.addOracle(oracle_accounts[0].address, sender=admin)
    with reverts(hub.InsufficientOracleBond, oracle=accounts[11].address, bonded=0,
                     required=params.min_oracle_bond):
        hub.addOracle(accounts[11].address, sender=admin)


def test_the_set_holds_at_most_32_oracles(hub, admin):
    hub.setMinOracleBond(0, sender=admin)
    for _ in range(32 - 5):
        hub.addOracle(Account.create().address, sender=admin)
    with reverts(hub.TooManyOracles):
        hub.addOracle(Account.create().address, sender=admin)


def test_remove_oracle_swaps_in_the_last_and_unlocks(hub, staking, admin, oracle_accounts):
    tx = hub.removeOracle(oracle_accounts[1].address, sender=admin)
    assert [e.oracle for e in tx.decode_logs(hub.OracleRemoved)] == [oracle_accounts[1].address]
    addresses, _ = hub.oracles()
    assert list(addresses) == [oracle_accounts[i].address for i in (0, 4, 2, 3)]
    assert staking.lockedOf(oracle_accounts[1].address) == 0
    assert not hub.isOracle(oracle_accounts[1].address)


def test_remove_oracle_rejections(hub, admin, other, oracle_accounts):
    with reverts(hub.NotOracle, signer=other.address):
        hub.removeOracle(other.address, sender=admin)
    with reverts(hub.AccessControlUnauthorizedAccount):
        hub.removeOracle(oracle_accounts[0].address, sender=other)
    hub.removeOracle(oracle_accounts[0].address, sender=admin)
    hub.removeOracle(oracle_accounts[1].address, sender=admin)
    with reverts(hub.InvalidThreshold, threshold=3, oracleCount=2):
        hub.removeOracle(oracle_accounts[2].address, sender=admin)


def test_set_threshold(hub, admin, other):
    tx = hub.setThreshold(5, sender=admin)
    assert [e.threshold for e in tx.decode_logs(hub.ThresholdSet)] == [5]
    assert hub.threshold() == 5
    with reverts(hub.InvalidThreshold, threshold=6, oracleCount=5):
        hub.setThreshold(6, sender=admin)
    with reverts(hub.InvalidThreshold, threshold=0, oracleCount=5):
        hub.setThreshold(0, sender=admin)
    with reverts(hub.AccessControlUnauthorizedAccount):
        hub.setThreshold(2, sender=other)


def test_oracle_url_rules(hub, oracle_accounts, other):
    tx = hub.setOracleUrl("http://127.0.0.1:8101", sender=oracle_accounts[3])
    assert [(e.oracle, e.url) for e in tx.decode_logs(hub.OracleUrlSet)] == [
        (oracle_accounts[3].address, "http://127.0.0.1:8101")
    ]
    with reverts(hub.NotOracle, signer=other.address):
        hub.setOracleUrl("http://x", sender=other)
    with reverts(hub.InvalidUrl, length=0):
        hub.setOracleUrl("", sender=oracle_accounts[3])
    with reverts(hub.InvalidUrl, length=257):
        hub.setOracleUrl("h" * 257, sender=oracle_accounts[3])


def test_parameter_setters(hub, admin, other, treasury):
    tx = hub.setChallengeParams(600, 5 * TOKEN, 7 * TOKEN, 2_500, sender=admin)
    event = tx.decode_logs(hub.ChallengeParamsSet)[0]
    assert (event.window, event.bond, event.oracleSlashAmount, event.challengerRewardBps) == (
        600, 5 * TOKEN, 7 * TOKEN, 2_500)
    assert (hub.challengeWindow(), hub.challengeBond(), hub.oracleSlashAmount(), hub.challengerRewardBps()) == (
        600, 5 * TOKEN, 7 * TOKEN, 2_500)
    for bad in [(0, 1, 1, 1), (30 * 86400 + 1, 1, 1, 1), (600, 1, 1, 10_001), (600, 2**96, 1, 1), (600, 0, 1, 1)]:
        with reverts(hub.InvalidParameter):
            hub.setChallengeParams(*bad, sender=admin)
    with reverts(hub.AccessControlUnauthorizedAccount):
        hub.setChallengeParams(600, 1, 1, 1, sender=other)
    hub.setMinOracleBond(3, sender=admin)
    assert hub.minOracleBond() == 3
    hub.setTreasury(other.address, sender=admin)
    assert hub.treasury() == other.address
    with reverts(hub.ZeroAddress):
        hub.setTreasury("0x" + "00" * 20, sender=admin)


def test_domain_separator_matches_eth_account(hub, chain_id):
    from eth_account.messages import encode_typed_data

    report = SettlementReport(1, bytes(32), b"\x01" * 32)
    signable = encode_typed_data(
        full_message=eip712.typed_data("SettlementReport", report.message(), chain_id, hub.address)
    )
    assert bytes(hub.domainSeparator()) == signable.header
    assert bytes(hub.reportDigest(report.as_tuple())) == keccak(b"\x19\x01" + signable.header + signable.body)


# ---------------------------------------------------------------- submit


def test_submit_with_k_signatures_marks_requests_settling(
    hub, market, submit, make_report, settled_request, leaves, oracle_accounts, other, chain
):
    report, _ = make_report(leaves, payouts=[(settled_request, 900 * USD)])
    tx = submit(report, oracle_accounts[:3])
    event = tx.decode_logs(hub.ReportSubmitted)[0]
    digest = bytes(hub.reportDigest(report.as_tuple()))
    assert bytes(event.digest) == digest and event.epoch == 1
    assert list(event.signers) == [o.address for o in oracle_accounts[:3]]
    assert event.submitter == other.address
    settling = tx.decode_logs(market.RequestSettling)
    assert [(e.requestId, e.payout) for e in settling] == [(settled_request, 900 * USD)]
    assert event.challengeDeadline == chain.blocks.head.timestamp + hub.challengeWindow()
    pending = hub.pendingReport()
    assert bytes(pending.digest) == digest and pending.status == PENDING
    assert list(pending.signers) == [o.address for o in oracle_accounts[:3]]
    assert market.getRequest(settled_request).status == 3  # Settling


def test_submit_accepts_more_than_k_distinct_signers(hub, submit, make_report, leaves, oracle_accounts):
    report, _ = make_report(leaves)
    tx = submit(report, oracle_accounts)
    assert len(tx.decode_logs(hub.ReportSubmitted)[0].signers) == 5


def test_submit_rejects_k_minus_one_signatures(hub, submit, make_report, leaves, oracle_accounts):
    report, _ = make_report(leaves)
    with reverts(hub.NotEnoughSignatures, given=2, threshold=3):
        submit(report, oracle_accounts[:2])


def test_submit_rejects_a_repeated_signer(hub, submit, make_report, leaves, oracle_accounts):
    report, _ = make_report(leaves)
    with reverts(hub.DuplicateSigner, signer=oracle_accounts[0].address):
        submit(report, [oracle_accounts[0], oracle_accounts[1], oracle_accounts[0]])


def test_submit_rejects_a_non_oracle_signer(hub, submit, make_report, leaves, oracle_accounts, other):
    report, _ = make_report(leaves)
    with reverts(hub.NotOracle, signer=other.address):
        submit(report, [oracle_accounts[0], other, oracle_accounts[1]])


def test_submit_rejects_a_signature_over_other_content(hub, sign_report, make_report, leaves, oracle_accounts,
                                                       other):
    report, _ = make_report(leaves)
    forged, _ = make_report(leaves, emission=1)
    signatures = sign_report(report, oracle_accounts[:2]) + sign_report(forged, oracle_accounts[2:3])
    # The third signature recovers to an unrelated address, which is not an oracle.
    with reverts(hub.NotOracle):
        hub.submitReport(report.as_tuple(), [], [], signatures, sender=other)


def test_submit_rejects_a_malformed_signature(hub, sign_report, make_report, leaves, oracle_accounts, other):
    report, _ = make_report(leaves)
    signatures = sign_report(report, oracle_accounts[:3])
    signatures[1] = signatures[1][:64]
    with reverts(hub.InvalidSignature, index=1):
        hub.submitReport(report.as_tuple(), [], [], signatures, sender=other)


def test_submit_rejects_wrong_epoch_and_root(hub, submit, make_report, leaves, oracle_accounts):
    report, _ = make_report(leaves, epoch=2)
    with reverts(hub.WrongEpoch, expected=1, got=2):
        submit(report, oracle_accounts[:3])
    report, _ = make_report(leaves, previous_root=b"\x07" * 32)
    with reverts(hub.PreviousRootMismatch):
        submit(report, oracle_accounts[:3])


def test_submit_rejects_arrays_that_do_not_match_the_hashes(hub, sign_report, make_report, leaves,
                                                            settled_request, oracle_accounts, other):
    report, _ = make_report(leaves, payouts=[(settled_request, 10)], penalties=[(other.address, 5)])
    signatures = sign_report(report, oracle_accounts[:3])
    with reverts(hub.RequestsHashMismatch):
        hub.submitReport(report.as_tuple(), [(settled_request, 11)], report.penalty_tuples(), signatures,
                         sender=other)
    with reverts(hub.PenaltiesHashMismatch):
        hub.submitReport(report.as_tuple(), report.payout_tuples(), [], signatures, sender=other)


def test_submit_reserves_the_emission_budget(hub, submit, make_report, leaves, oracle_accounts, params):
    report, _ = make_report(leaves, emission=7 * TOKEN)
    submit(report, oracle_accounts[:3])
    assert hub.emissionBudget() == params.emission_budget - 7 * TOKEN


def test_submit_rejects_emission_beyond_the_budget(hub, admin, submit, make_report, leaves, oracle_accounts):
    hub.setEmissionBudget(5 * TOKEN, sender=admin)
    report, _ = make_report(leaves, emission=5 * TOKEN + 1)
    with reverts(hub.EmissionExceedsBudget, emission=5 * TOKEN + 1, budget=5 * TOKEN):
        submit(report, oracle_accounts[:3])


def test_emission_budget_stays_within_the_token_cap(hub, token, admin, other, submit, make_report, leaves,
                                                    oracle_accounts):
    mintable = token.cap() - token.totalSupply()
    tx = hub.setEmissionBudget(mintable, sender=admin)
    assert [e.budget for e in tx.decode_logs(hub.EmissionBudgetSet)] == [mintable]
    with reverts(hub.EmissionExceedsCap, budget=mintable + 1, mintable=mintable):
        hub.setEmissionBudget(mintable + 1, sender=admin)
    with reverts(hub.AccessControlUnauthorizedAccount):
        hub.setEmissionBudget(1, sender=other)
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    with reverts(hub.ReportPending):
        hub.setEmissionBudget(1, sender=admin)


def test_submit_never_pays_a_request_more_than_its_escrow(market, submit, make_report, leaves,
                                                          settled_request, oracle_accounts):
    report, _ = make_report(leaves, payouts=[(settled_request, 1_000 * USD + 1)])
    with reverts(market.PayoutExceedsEscrow, requestId=settled_request, payout=1_000 * USD + 1,
                     escrow=1_000 * USD):
        submit(report, oracle_accounts[:3])


def test_submit_rejects_a_request_that_has_not_ended(market, submit, make_report, leaves, open_request,
                                                     oracle_accounts):
    request_id = open_request()
    report, _ = make_report(leaves, payouts=[(request_id, 1)])
    with reverts(market.NotEnded):
        submit(report, oracle_accounts[:3])


def test_only_one_report_is_pending(hub, submit, make_report, leaves, oracle_accounts):
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    with reverts(hub.ReportPending, digest=hub.reportDigest(report.as_tuple())):
        submit(report, oracle_accounts[:3])


def test_oracle_set_is_frozen_while_a_report_is_pending(hub, submit, make_report, leaves, oracle_accounts, admin):
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    with reverts(hub.ReportPending):
        hub.removeOracle(oracle_accounts[4].address, sender=admin)
    with reverts(hub.ReportPending):
        hub.setThreshold(2, sender=admin)


def test_submit_and_finalize_are_paused_by_the_guardian(hub, submit, finalize, make_report, leaves,
                                                        oracle_accounts, guardian, other, chain):
    report, _ = make_report(leaves)
    tx = hub.pause(sender=guardian)
    assert hub.paused() and [e.account for e in tx.decode_logs(hub.Paused)] == [guardian.address]
    with reverts(hub.EnforcedPause):
        submit(report, oracle_accounts[:3])
    hub.unpause(sender=guardian)
    assert not hub.paused()
    submit(report, oracle_accounts[:3])
    with reverts(hub.PauseCooldown):
        hub.pause(sender=guardian)  # a new pause waits PAUSE_COOLDOWN after the last one ended
    chain.mine(timestamp=chain.pending_timestamp + 24 * 3600)
    hub.pause(sender=guardian)
    with reverts(hub.EnforcedPause):
        finalize(report)
    with reverts(hub.AccessControlUnauthorizedAccount):
        hub.unpause(sender=other)


# ---------------------------------------------------------------- finalize


def test_finalize_pays_refunds_penalizes_mints_and_installs_the_root(
    hub, market, distributor, staking, token, usd, submit, finalize, make_report, settled_request, leaves,
    buyer, owner, treasury, minter, oracle_accounts
):
    token.mint(owner.address, 500 * TOKEN, sender=minter)
    token.approve(staking.address, 500 * TOKEN, sender=owner)
    staking.stake(500 * TOKEN, sender=owner)
    emission_leaf = RewardLeaf(owner.address, token.address, 30 * TOKEN)
    report, tree = make_report(
        leaves + [emission_leaf],
        payouts=[(settled_request, 1_000 * USD - 1)],
        penalties=[(owner.address, 40 * TOKEN)],
        emission=30 * TOKEN,
    )
    submit(report, oracle_accounts[:3])
    with reverts(hub.ChallengeWindowOpen):
        finalize(report, wait=False)
    buyer_before, treasury_tokens = usd.balanceOf(buyer.address), token.balanceOf(treasury.address)
    tx = finalize(report)
    event = tx.decode_logs(hub.ReportFinalized)[0]
    assert (event.epoch, bytes(event.rewardsRoot), event.emission) == (1, tree.root, 30 * TOKEN)
    assert usd.balanceOf(distributor.address) == 1_000 * USD - 1
    assert usd.balanceOf(buyer.address) - buyer_before == 1
    assert market.getRequest(settled_request).status == 4  # Settled
    assert staking.bondedOf(owner.address) == 460 * TOKEN
    assert token.balanceOf(treasury.address) - treasury_tokens == 40 * TOKEN
    assert token.balanceOf(distributor.address) == 30 * TOKEN
    assert bytes(distributor.root()) == tree.root == bytes(hub.currentRoot())
    assert distributor.epoch() == 1 == hub.currentEpoch()
    assert hub.pendingReport().status == NONE


def test_finalize_rejections(hub, submit, finalize, make_report, leaves, oracle_accounts, other):
    report, _ = make_report(leaves)
    with reverts(hub.NoReportIn, expected=PENDING, actual=NONE):
        finalize(report, wait=False)
    submit(report, oracle_accounts[:3])
    other_report, _ = make_report(leaves, emission=5)
    with reverts(hub.NotPendingReport):
        finalize(other_report)
    with reverts(hub.PenaltiesHashMismatch):
        hub.finalize(report.as_tuple(), [], [(other.address, 1)], sender=other)


def test_reports_chain_epoch_after_epoch(hub, distributor, submit, finalize, make_report, leaves, oracle_accounts,
                                         owner, usd):
    first, _ = make_report(leaves)
    submit(first, oracle_accounts[:3])
    finalize(first)
    grown = [RewardLeaf(owner.address, usd.address, 900 * USD)] + leaves[1:]
    second, tree = make_report(grown)
    assert second.epoch == 2 and second.previous_root == first.rewards_root
    submit(second, oracle_accounts[2:5])
    finalize(second)
    assert hub.currentEpoch() == 2 and bytes(distributor.root()) == tree.root


def test_a_settled_request_cannot_be_settled_again(market, submit, finalize, make_report, leaves, settled_request,
                                                   oracle_accounts):
    first, _ = make_report(leaves, payouts=[(settled_request, 10)])
    submit(first, oracle_accounts[:3])
    finalize(first)
    second, _ = make_report(leaves, payouts=[(settled_request, 10)])
    with reverts(market.WrongStatus, requestId=settled_request, status=4):
        submit(second, oracle_accounts[:3])


# ---------------------------------------------------------------- challenge


@pytest.fixture
def challenger(accounts, token, minter, hub):
    account = accounts[12]
    token.mint(account.address, 10_000 * TOKEN, sender=minter)
    token.approve(hub.address, 2**256 - 1, sender=account)
    return account


def test_challenge_posts_the_bond(hub, token, submit, make_report, leaves, oracle_accounts, challenger):
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    digest = hub.reportDigest(report.as_tuple())
    tx = hub.challenge(digest, "baseline inflated for device 0xabc", sender=challenger)
    event = tx.decode_logs(hub.ReportChallenged)[0]
    assert (event.challenger, event.bond, event.reason) == (
        challenger.address, 1_000 * TOKEN, "baseline inflated for device 0xabc")
    assert token.balanceOf(hub.address) == 1_000 * TOKEN
    pending = hub.pendingReport()
    assert pending.status == CHALLENGED and pending.challenger == challenger.address


def test_challenge_rejections(hub, submit, make_report, leaves, oracle_accounts, challenger, chain, guardian):
    report, _ = make_report(leaves)
    with reverts(hub.NoReportIn, expected=PENDING, actual=NONE):
        hub.challenge(b"\x01" * 32, "", sender=challenger)
    submit(report, oracle_accounts[:3])
    digest = hub.reportDigest(report.as_tuple())
    with reverts(hub.NotPendingReport):
        hub.challenge(b"\x02" * 32, "", sender=challenger)
    with reverts(hub.ReasonTooLong, length=1025):
        hub.challenge(digest, "r" * 1025, sender=challenger)
    hub.pause(sender=guardian)
    with reverts(hub.EnforcedPause):
        hub.challenge(digest, "", sender=challenger)
    hub.unpause(sender=guardian)
    chain.mine(timestamp=hub.pendingReport().challengeDeadline)
    with reverts(hub.ChallengeWindowClosed):
        hub.challenge(digest, "", sender=challenger)


def test_upheld_challenge_discards_the_report_and_slashes_its_signers(
    hub, market, staking, token, submit, make_report, leaves, settled_request, oracle_accounts, challenger,
    guardian, treasury, params
):
    report, _ = make_report(leaves, payouts=[(settled_request, 900 * USD)], emission=3 * TOKEN)
    submit(report, oracle_accounts[:3])
    assert hub.emissionBudget() == params.emission_budget - 3 * TOKEN
    hub.challenge(hub.reportDigest(report.as_tuple()), "wrong", sender=challenger)
    challenger_before, treasury_before = token.balanceOf(challenger.address), token.balanceOf(treasury.address)
    tx = hub.resolveChallenge(report.as_tuple(), report.payout_tuples(), True, sender=guardian)
    slashed = 3 * params.oracle_slash_amount
    reward = slashed * params.challenger_reward_bps // 10_000
    event = tx.decode_logs(hub.ChallengeResolved)[0]
    assert (event.upheld, event.challenger, event.slashed, event.reward) == (True, challenger.address, slashed,
                                                                             reward)
    assert len(tx.decode_logs(hub.ReportDiscarded)) == 1
    for oracle in oracle_accounts[:3]:
        assert staking.bondedOf(oracle.address) == params.min_oracle_bond - params.oracle_slash_amount
    for oracle in oracle_accounts[3:]:
        assert staking.bondedOf(oracle.address) == params.min_oracle_bond
    assert token.balanceOf(challenger.address) - challenger_before == params.challenge_bond + reward
    assert token.balanceOf(treasury.address) - treasury_before == slashed - reward
    assert market.getRequest(settled_request).status == 1  # Open again
    assert hub.pendingReport().status == NONE and hub.currentEpoch() == 0
    assert hub.emissionBudget() == params.emission_budget
    again, _ = make_report(leaves, payouts=[(settled_request, 800 * USD)])
    submit(again, oracle_accounts[2:5])
    assert hub.pendingReport().status == PENDING


def test_rejected_challenge_forfeits_the_bond_and_the_report_finalizes(
    hub, token, submit, finalize, make_report, leaves, oracle_accounts, challenger, guardian, treasury
):
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    hub.challenge(hub.reportDigest(report.as_tuple()), "frivolous", sender=challenger)
    with reverts(hub.NoReportIn, expected=PENDING, actual=CHALLENGED):
        finalize(report)
    treasury_before = token.balanceOf(treasury.address)
    tx = hub.resolveChallenge(report.as_tuple(), [], False, sender=guardian)
    assert not tx.decode_logs(hub.ChallengeResolved)[0].upheld
    assert token.balanceOf(treasury.address) - treasury_before == 1_000 * TOKEN
    assert hub.pendingReport().status == PENDING
    finalize(report)
    assert hub.currentEpoch() == 1


def test_resolve_challenge_rejections(hub, submit, make_report, leaves, settled_request, oracle_accounts,
                                      challenger, guardian, other):
    report, _ = make_report(leaves, payouts=[(settled_request, 5)])
    with reverts(hub.NoReportIn, expected=CHALLENGED, actual=NONE):
        hub.resolveChallenge(report.as_tuple(), report.payout_tuples(), True, sender=guardian)
    submit(report, oracle_accounts[:3])
    hub.challenge(hub.reportDigest(report.as_tuple()), "x", sender=challenger)
    with reverts(hub.AccessControlUnauthorizedAccount):
        hub.resolveChallenge(report.as_tuple(), report.payout_tuples(), True, sender=other)
    other_report, _ = make_report(leaves, emission=1)
    with reverts(hub.NotPendingReport):
        hub.resolveChallenge(other_report.as_tuple(), [], True, sender=guardian)
    with reverts(hub.RequestsHashMismatch):
        hub.resolveChallenge(report.as_tuple(), [], True, sender=guardian)


def test_penalty_never_slashes_more_than_the_stake(hub, staking, token, submit, finalize, make_report, leaves,
                                                   oracle_accounts, owner, treasury, minter):
    token.mint(owner.address, 10 * TOKEN, sender=minter)
    token.approve(staking.address, 10 * TOKEN, sender=owner)
    staking.stake(10 * TOKEN, sender=owner)
    report, _ = make_report(leaves, penalties=[Penalty(owner.address, 1_000 * TOKEN)])
    submit(report, oracle_accounts[:3])
    before = token.balanceOf(treasury.address)
    tx = finalize(report)
    assert staking.bondedOf(owner.address) == 0
    assert token.balanceOf(treasury.address) - before == 10 * TOKEN
    (applied,) = tx.decode_logs(hub.PenaltyApplied)  # the slash's return is used: asked vs taken
    assert (applied.account, applied.amount, applied.slashed) == (owner.address, 1_000 * TOKEN, 10 * TOKEN)


def test_payouts_struct_hash_matches_python(hub, make_report, leaves):
    report, _ = make_report(leaves, payouts=[RequestPayout(3, 7), RequestPayout(4, 0)])
    from eth_abi import encode

    assert report.requests_hash == keccak(encode(["(uint256,uint256)[]"], [[(3, 7), (4, 0)]]))


# ---------------------------------------------------------------- invariants

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(signer_indexes=st.lists(st.integers(0, 4), min_size=0, max_size=6))
def test_a_report_lands_only_with_k_distinct_oracle_signatures(
    chain, hub, sign_report, make_report, leaves, oracle_accounts, other, signer_indexes
):
    """Any list of oracle signatures: the report lands iff it holds >= k (3) signatures and no
    oracle appears twice; otherwise it reverts and nothing is pending."""
    report, _ = make_report(leaves)
    signatures = sign_report(report, [oracle_accounts[i] for i in signer_indexes])
    distinct = len(set(signer_indexes)) == len(signer_indexes)
    with isolated(chain):
        if distinct and len(signer_indexes) >= 3:
            hub.submitReport(report.as_tuple(), [], [], signatures, sender=other)
            assert hub.pendingReport().status == PENDING
        else:
            expected = hub.NotEnoughSignatures if len(signer_indexes) < 3 else hub.DuplicateSigner
            with reverts(expected):
                hub.submitReport(report.as_tuple(), [], [], signatures, sender=other)
            assert hub.pendingReport().status == NONE


# ---------------------------------------------------------------- audit regressions (issue 12)


def test_m1_a_report_discarded_by_an_upheld_challenge_cannot_come_back(
    hub, submit, finalize, make_report, leaves, settled_request, oracle_accounts, challenger, guardian
):
    """The attack: after an upheld challenge, anyone resubmits the same report with the same
    signatures and, once the window passes, finalizes it. The digest is now marked discarded."""
    report, _ = make_report(leaves, payouts=[(settled_request, 900 * USD)])
    submit(report, oracle_accounts[:3])
    digest = hub.reportDigest(report.as_tuple())
    hub.challenge(digest, "wrong", sender=challenger)
    hub.resolveChallenge(report.as_tuple(), report.payout_tuples(), True, sender=guardian)
    assert hub.discarded(digest)
    with reverts(hub.DiscardedReport, digest=digest):
        submit(report, oracle_accounts[:3])
    with reverts(hub.DiscardedReport, digest=digest):
        submit(report, oracle_accounts[2:5])  # other signers of the same digest: still refused
    assert hub.pendingReport().status == NONE and hub.currentEpoch() == 0
    honest, _ = make_report(leaves, payouts=[(settled_request, 800 * USD)])
    submit(honest, oracle_accounts[:3])
    assert not hub.discarded(hub.reportDigest(honest.as_tuple()))


def test_m1_a_rejected_challenge_does_not_mark_the_report(
    hub, submit, make_report, leaves, oracle_accounts, challenger, guardian
):
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    digest = hub.reportDigest(report.as_tuple())
    hub.challenge(digest, "frivolous", sender=challenger)
    hub.resolveChallenge(report.as_tuple(), [], False, sender=guardian)
    assert not hub.discarded(digest)


def test_m2_a_pause_freezes_the_challenge_window(
    chain, hub, submit, finalize, make_report, leaves, oracle_accounts, challenger, guardian
):
    """The attack: the hub is paused for longer than the window; at unpause the report could be
    finalized at once, unchallenged. The window is now extended by the paused time."""
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    digest = hub.reportDigest(report.as_tuple())
    deadline = hub.pendingReport().challengeDeadline
    paused = hub.pause(sender=guardian)
    paused_at = chain.blocks[paused.block_number].timestamp
    assert hub.pausedUntil() == paused_at + MAX_PAUSE
    (moved,) = paused.decode_logs(hub.ChallengeWindowExtended)  # the pause's whole length, at once
    assert moved.deadline == deadline + MAX_PAUSE
    chain.mine(timestamp=deadline + 3_600)  # the whole window passes while paused
    tx = hub.unpause(sender=guardian)
    unpaused_at = chain.blocks[tx.block_number].timestamp
    (event,) = tx.decode_logs(hub.ChallengeWindowExtended)  # the unused part taken back
    new_deadline = hub.pendingReport().challengeDeadline
    assert event.deadline == new_deadline and event.digest == digest
    assert new_deadline - deadline == unpaused_at - paused_at
    with reverts(hub.ChallengeWindowOpen):
        finalize(report, wait=False)
    hub.challenge(digest, "caught in time", sender=challenger)  # the window is open again
    assert hub.pendingReport().status == CHALLENGED


def test_m2_a_pause_after_the_window_closed_extends_nothing(
    chain, hub, submit, finalize, make_report, leaves, oracle_accounts, guardian
):
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    deadline = hub.pendingReport().challengeDeadline
    chain.mine(timestamp=deadline + 10)
    hub.pause(sender=guardian)
    tx = hub.unpause(sender=guardian)
    assert not tx.decode_logs(hub.ChallengeWindowExtended)
    assert hub.pendingReport().challengeDeadline == deadline
    finalize(report)
    assert hub.currentEpoch() == 1


@pytest.fixture
def hostile(project, buyer, market, chain):
    """A HostileToken and a helper opening an ended request escrowed in it."""
    token_ = project.HostileToken.deploy(sender=buyer)

    def open_ended(budget: int = 1_000 * USD) -> int:
        token_.mint(buyer.address, budget, sender=buyer)
        token_.approve(market.address, budget, sender=buyer)
        start = chain.pending_timestamp + 600
        market.openRequest(1, start, start + 3600, 50_000, 200_000, token_.address, budget, sender=buyer)
        chain.mine(timestamp=start + 3601)
        return market.requestCount()

    return token_, open_ended


@pytest.mark.parametrize("mode", ["RevertAll", "Blacklist", "BurnGas"])
def test_h1_a_hostile_payment_token_cannot_brick_the_hub(
    mode, hub, market, usd, distributor, buyer, hostile, open_request, end_request, submit, finalize,
    make_report, leaves, oracle_accounts
):
    """The attack: a request paid in a token that turns hostile after escrow (reverts, blacklists the
    distributor, or burns all gas) made finalize revert for good, and with it every later report.
    Now that request's transfers are deferred, the honest request settles, and the hub moves on."""
    token_, open_ended = hostile
    honest = open_request(budget=1_000 * USD)
    end_request(honest)
    bad = open_ended(1_000 * USD)
    report, _ = make_report(leaves, payouts=[(honest, 900 * USD), (bad, 700 * USD)])
    submit(report, oracle_accounts[:3])
    modes = {"RevertAll": 1, "Blacklist": 2, "BurnGas": 3}
    token_.setMode(modes[mode], distributor.address, sender=buyer)
    buyer_usd = usd.balanceOf(buyer.address)
    tx = finalize(report)
    assert hub.currentEpoch() == 1
    assert usd.balanceOf(distributor.address) == 900 * USD and usd.balanceOf(buyer.address) - buyer_usd == 100 * USD
    assert market.getRequest(honest).status == 4 and market.getRequest(bad).status == 4  # both Settled
    deferred = {(e.requestId, e.isPayout): e.amount for e in tx.decode_logs(market.TransferDeferred)}
    assert deferred[(bad, True)] == 700 * USD
    if mode == "Blacklist":  # only the distributor is refused: the buyer's refund went through
        assert (bad, False) not in deferred and token_.balanceOf(buyer.address) == 300 * USD
    else:
        assert deferred[(bad, False)] == 300 * USD
    assert market.owedPayout(bad).amount == 700 * USD
    # the next epoch is not blocked
    report2, _ = make_report(leaves)
    submit(report2, oracle_accounts[:3])
    finalize(report2)
    assert hub.currentEpoch() == 2
    # once the token behaves again, anyone pushes what is owed
    token_.setMode(0, distributor.address, sender=buyer)
    market.pushOwed(bad, sender=oracle_accounts[4])
    assert token_.balanceOf(distributor.address) == 700 * USD and token_.balanceOf(buyer.address) == 300 * USD
    assert market.owedPayout(bad).amount == 0 and market.owedRefund(bad).amount == 0
    with reverts(market.NothingOwed):
        market.pushOwed(bad, sender=oracle_accounts[4])


def test_h1_a_report_carries_at_most_max_report_items(hub, submit, make_report, leaves, oracle_accounts):
    """The gas variant: ~1,400 dust requests in one report could be submitted but never finalized.
    A report now carries at most MAX_REPORT_ITEMS requests (and penalties)."""
    limit = hub.MAX_REPORT_ITEMS()
    report, _ = make_report(leaves, payouts=[(i + 1, 0) for i in range(limit + 1)])
    with reverts(hub.TooManyItems, payouts=limit + 1, penalties=0):
        submit(report, oracle_accounts[:3])


def test_l4_challenge_terms_and_oracle_locks_cannot_shift_under_a_report(
    hub, staking, submit, make_report, leaves, oracle_accounts, challenger, admin
):
    """The attack: while a challenge is open, the admin lowers the slash amount or the challenger's
    share (or raises a lock only for new oracles). Terms are now frozen while a report is pending or
    challenged, a zero challenge bond is refused, and a new minimum bond applies to every oracle."""
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    hub.challenge(hub.reportDigest(report.as_tuple()), "wrong", sender=challenger)
    with reverts(hub.ReportPending):
        hub.setChallengeParams(600, 5 * TOKEN, 0, 0, sender=admin)
    with reverts(hub.ReportPending):
        hub.setMinOracleBond(1, sender=admin)


def test_l4_a_new_minimum_bond_relocks_every_serving_oracle(hub, staking, oracle_accounts, admin):
    tx = hub.setMinOracleBond(7 * TOKEN, sender=admin)
    assert len(tx.decode_logs(staking.LockSet)) == len(oracle_accounts[:5])
    for oracle in oracle_accounts[:5]:
        assert staking.lockedOf(oracle.address) == 7 * TOKEN


# ---------------------------------------------------------------- audit M-3, L-2, H-1 (issue 12)


def test_m3_a_pause_ends_by_itself_and_the_window_keeps_its_length(
    chain, hub, submit, finalize, make_report, leaves, oracle_accounts, challenger, guardian
):
    """The attack: a guardian (or a thief of its key) pauses and never unpauses, freezing cancel, expire,
    withdraw, claim and settlement for good. A pause now ends after MAX_PAUSE_DURATION by itself, and the
    window of the pending report was moved on by exactly that time."""
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    digest = hub.reportDigest(report.as_tuple())
    left = hub.pendingReport().challengeDeadline - chain.pending_timestamp
    tx = hub.pause(sender=guardian)
    paused_at = chain.blocks[tx.block_number].timestamp
    assert hub.MAX_PAUSE_DURATION() == MAX_PAUSE and hub.paused()
    chain.mine(timestamp=paused_at + MAX_PAUSE - 1)
    assert hub.paused()
    chain.mine(timestamp=paused_at + MAX_PAUSE)
    assert not hub.paused()  # no unpause was sent
    assert hub.pendingReport().challengeDeadline - (paused_at + MAX_PAUSE) >= left - 2
    hub.challenge(digest, "still in time after the pause", sender=challenger)
    assert hub.pendingReport().status == CHALLENGED


def test_m3_the_guardian_cannot_chain_pauses(chain, hub, guardian):
    tx = hub.pause(sender=guardian)
    paused_at = chain.blocks[tx.block_number].timestamp
    chain.mine(timestamp=paused_at + MAX_PAUSE)
    with reverts(hub.PauseCooldown, availableAt=paused_at + MAX_PAUSE + DAY):
        hub.pause(sender=guardian)
    chain.mine(timestamp=paused_at + MAX_PAUSE + DAY)
    hub.pause(sender=guardian)
    assert hub.paused()


def test_m3_the_admin_cannot_take_the_hub_roles(hub, market, staking, distributor, admin, token):
    """The attack: the admin grants itself SETTLER, SLASHER, LOCKER or ROOT_SETTER and drains the escrow,
    the stake or the rewards. Those roles are bound to the hub once; nobody can grant, revoke or rebind them."""
    for contract, role in ((market, market.SETTLER_ROLE()), (staking, staking.SLASHER_ROLE()),
                           (staking, staking.LOCKER_ROLE()), (distributor, distributor.ROOT_SETTER_ROLE())):
        assert contract.hasRole(role, hub.address)
        with reverts(contract.AccessControlUnauthorizedAccount):
            contract.grantRole(role, admin.address, sender=admin)
        with reverts(contract.AccessControlUnauthorizedAccount):
            contract.revokeRole(role, hub.address, sender=admin)
        with reverts(contract.HubAlreadyBound, hub=hub.address):
            contract.bindHub(admin.address, sender=admin)
        assert not contract.hasRole(role, admin.address)
        assert contract.hub() == hub.address


def test_m3_only_the_arbiter_resolves_and_the_guardian_cannot(
    hub, submit, make_report, leaves, oracle_accounts, challenger, guardian, accounts, admin
):
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    hub.challenge(hub.reportDigest(report.as_tuple()), "x", sender=challenger)
    arbiter = accounts[16]
    hub.grantRole(hub.ARBITER_ROLE(), arbiter.address, sender=admin)
    hub.revokeRole(hub.ARBITER_ROLE(), guardian.address, sender=admin)
    with reverts(hub.AccessControlUnauthorizedAccount, account=guardian.address, neededRole=hub.ARBITER_ROLE()):
        hub.resolveChallenge(report.as_tuple(), [], False, sender=guardian)
    hub.resolveChallenge(report.as_tuple(), [], False, sender=arbiter)
    assert hub.pendingReport().status == PENDING


def test_m3_an_unresolved_challenge_falls_back_to_discard_without_slashing(
    chain, hub, market, staking, token, submit, make_report, leaves, settled_request, oracle_accounts,
    challenger, params, other
):
    """The attack: the arbiter sits on a challenge forever (or is bribed to), so the report is stuck and the
    escrow with it. After CHALLENGE_RESOLUTION_WINDOW anyone closes it: discarded, nobody slashed, the bond
    returned, the requests open for another report, and the same report may come again."""
    report, _ = make_report(leaves, payouts=[(settled_request, 900 * USD)], emission=2 * TOKEN)
    submit(report, oracle_accounts[:3])
    digest = hub.reportDigest(report.as_tuple())
    tx = hub.challenge(digest, "wrong", sender=challenger)
    challenged_at = chain.blocks[tx.block_number].timestamp
    window = hub.CHALLENGE_RESOLUTION_WINDOW()
    with reverts(hub.ResolutionWindowOpen, resolveBy=challenged_at + window):
        hub.closeExpiredChallenge(report.as_tuple(), report.payout_tuples(), sender=other)
    before = token.balanceOf(challenger.address)
    chain.mine(timestamp=challenged_at + window + 1)
    tx = hub.closeExpiredChallenge(report.as_tuple(), report.payout_tuples(), sender=other)
    (timed_out,) = tx.decode_logs(hub.ChallengeTimedOut)
    assert (timed_out.digest, timed_out.challenger) == (digest, challenger.address)
    assert token.balanceOf(challenger.address) - before == params.challenge_bond
    for oracle in oracle_accounts[:3]:
        assert staking.bondedOf(oracle.address) == params.min_oracle_bond
    assert market.getRequest(settled_request).status == 1  # Open again
    assert hub.pendingReport().status == NONE and hub.emissionBudget() == params.emission_budget
    assert not hub.discarded(digest)
    submit(report, oracle_accounts[:3])  # not judged wrong: it may be submitted again
    assert hub.pendingReport().status == PENDING


def test_h1_a_report_that_cannot_finalize_is_abandoned_after_the_grace(
    chain, hub, market, staking, submit, finalize, make_report, leaves, settled_request, oracle_accounts,
    guardian, other, params, admin
):
    """The attack: a pending report that finalize cannot get through (here: Staking paused, so its penalty
    slash reverts) used to hold the hub in Pending: no new report, no oracle change. After FINALIZE_GRACE
    past its deadline anyone abandons it and the requests are open again."""
    report, _ = make_report(leaves, payouts=[(settled_request, 900 * USD)], penalties=[(other.address, 1)])
    submit(report, oracle_accounts[:3])
    deadline = hub.pendingReport().challengeDeadline
    staking.pause(sender=guardian)
    chain.mine(timestamp=deadline)
    with reverts(hub.EnforcedPause):  # Staking's EnforcedPause, bubbled up through the hub
        finalize(report)
    with reverts(hub.FinalizeGraceOpen, abandonableAt=deadline + hub.FINALIZE_GRACE()):
        hub.abandonReport(report.as_tuple(), report.payout_tuples(), sender=other)
    chain.mine(timestamp=deadline + hub.FINALIZE_GRACE())
    tx = hub.abandonReport(report.as_tuple(), report.payout_tuples(), sender=other)
    assert len(tx.decode_logs(hub.ReportAbandoned)) == 1
    assert market.getRequest(settled_request).status == 1
    assert hub.pendingReport().status == NONE and hub.currentEpoch() == 0
    hub.removeOracle(oracle_accounts[4].address, sender=admin)  # the hub is governable again


def test_l2_signers_left_out_by_the_submitter_are_recorded_and_slashed(
    hub, staking, submit, sign_report, make_report, leaves, oracle_accounts, challenger, guardian, other, params
):
    """The attack: five oracles sign a bad report, the submitter passes only three signatures, and the two
    others escape the slash. Anyone holding their signatures records them before the challenge is upheld."""
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    signatures = sign_report(report, oracle_accounts)
    tx = hub.recordSignatures(signatures, sender=other)  # the three already recorded are skipped
    (recorded,) = tx.decode_logs(hub.SignersRecorded)
    assert list(recorded.signers) == [o.address for o in oracle_accounts[3:]]
    assert set(hub.pendingReport().signers) == {o.address for o in oracle_accounts}
    with reverts(hub.NotOracle, signer=other.address):
        hub.recordSignatures(sign_report(report, [other]), sender=other)
    hub.challenge(hub.reportDigest(report.as_tuple()), "wrong", sender=challenger)
    hub.resolveChallenge(report.as_tuple(), [], True, sender=guardian)
    for oracle in oracle_accounts:
        assert staking.bondedOf(oracle.address) == params.min_oracle_bond - params.oracle_slash_amount


def test_l2_a_rejected_front_running_challenge_leaves_the_honest_challenger_its_time(
    chain, hub, token, minter, submit, make_report, leaves, oracle_accounts, challenger, guardian, accounts
):
    """The attack: a challenger colluding with the signers challenges first, near the end of the window,
    with a weak reason; the arbiter rejects it, and the window has run out meanwhile, so the honest
    challenger never gets to challenge. A challenge now freezes the window; a rejection restores it."""
    report, _ = make_report(leaves)
    submit(report, oracle_accounts[:3])
    digest = hub.reportDigest(report.as_tuple())
    deadline = hub.pendingReport().challengeDeadline
    chain.mine(timestamp=deadline - 60)
    tx = hub.challenge(digest, "weak", sender=challenger)
    left = deadline - chain.blocks[tx.block_number].timestamp
    chain.mine(timestamp=deadline + 3 * DAY)  # the arbiter takes days
    tx = hub.resolveChallenge(report.as_tuple(), [], False, sender=guardian)
    rejected_at = chain.blocks[tx.block_number].timestamp
    assert hub.pendingReport().challengeDeadline == rejected_at + left
    honest = accounts[17]
    token.mint(honest.address, 10_000 * TOKEN, sender=minter)
    token.approve(hub.address, 2**256 - 1, sender=honest)
    hub.challenge(digest, "the real fault", sender=honest)
    assert hub.pendingReport().challenger == honest.address
