"""FlexMarket market rules for the holdout (issue 13): the admin sets the holdout share and the gate
lead (bounded, role-checked, packed beside the duration limits); every request snapshots them in a
RequestRules event right after RequestOpened, and cannot be opened once its gate (start minus the
lead) has closed. The deployment sets them from DeployParams before the admin goes to the timelock."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract_asserts import logs, reverts
from negawatt.deploy import DeployParams, deploy_all

DEFAULT_ADMIN_ROLE = b"\x00" * 32
USD = 10**6
ZONE, TARGET_W, PRICE, BUDGET = 3, 50_000, 250_000, 1_000 * USD
DURATION = 3600
WEEK = 7 * 24 * 3600


@pytest.fixture
def market(project, admin, guardian, params):
    """A FlexMarket like the deployed one (its own, so the rules set here stay here)."""
    return admin.deploy(project.FlexMarket, admin.address, guardian.address, params.min_duration,
                        params.max_duration, params.settlement_timeout)


@pytest.fixture
def funded_buyer(usd, market, buyer):
    usd.mint(buyer.address, 1_000_000 * USD, sender=buyer)
    usd.approve(market.address, 2**256 - 1, sender=buyer)
    return buyer


def open_at(market, usd, buyer, start):
    return market.openRequest(ZONE, start, start + DURATION, TARGET_W, PRICE, usd.address, BUDGET, sender=buyer)


def test_defaults_are_no_holdout_and_no_gate_lead(deployment, market):
    for contract in (deployment["instances"]["FlexMarket"], market):
        assert (contract.holdoutBps(), contract.gateLeadSeconds()) == (0, 0)
    assert (market.MAX_HOLDOUT_BPS(), market.MAX_GATE_LEAD_SECONDS()) == (5_000, WEEK)


def test_set_market_rules(market, admin, params):
    tx = market.setMarketRules(1_500, 900, sender=admin)
    assert logs(tx) == [(market.address, "MarketRulesSet", {"holdoutBps": 1_500, "gateLeadSeconds": 900})]
    assert (market.holdoutBps(), market.gateLeadSeconds()) == (1_500, 900)
    # Packed beside the duration limits: neither setter clobbers the other's fields.
    assert (market.minDuration(), market.maxDuration(), market.settlementTimeout()) == (
        params.min_duration, params.max_duration, params.settlement_timeout)
    market.setDurationLimits(60, 120, 30, sender=admin)
    assert (market.holdoutBps(), market.gateLeadSeconds()) == (1_500, 900)
    assert (market.minDuration(), market.maxDuration(), market.settlementTimeout()) == (60, 120, 30)


def test_market_rules_accept_their_bounds(market, admin):
    market.setMarketRules(5_000, WEEK, sender=admin)
    assert (market.holdoutBps(), market.gateLeadSeconds()) == (5_000, WEEK)
    market.setMarketRules(0, 0, sender=admin)
    assert (market.holdoutBps(), market.gateLeadSeconds()) == (0, 0)


def test_holdout_above_half_reverts(market, admin):
    with reverts(market.HoldoutTooLarge, holdoutBps=5_001, maxHoldoutBps=5_000):
        market.setMarketRules(5_001, 0, sender=admin)
    assert market.holdoutBps() == 0


def test_gate_lead_above_a_week_reverts(market, admin):
    with reverts(market.GateLeadTooLong, gateLeadSeconds=WEEK + 1, maxGateLeadSeconds=WEEK):
        market.setMarketRules(1_000, WEEK + 1, sender=admin)
    assert (market.holdoutBps(), market.gateLeadSeconds()) == (0, 0)


@pytest.mark.parametrize("caller", ["other", "guardian"])
def test_set_market_rules_requires_admin(market, other, guardian, caller):
    account = {"other": other, "guardian": guardian}[caller]
    with reverts(market.AccessControlUnauthorizedAccount, account=account.address, neededRole=DEFAULT_ADMIN_ROLE):
        market.setMarketRules(1_000, 600, sender=account)


def test_request_records_its_rules_right_after_opening(market, admin, usd, funded_buyer, chain):
    market.setMarketRules(1_500, 900, sender=admin)
    start = chain.pending_timestamp + 3600
    tx = open_at(market, usd, funded_buyer, start)
    names = [(name, args) for _, name, args in logs(tx)]
    request_id = market.requestCount()
    assert [name for name, _ in names] == ["RequestOpened", "RequestRules", "Transfer"]
    assert names[1][1] == {"requestId": request_id, "holdoutBps": 1_500, "gateClosure": start - 900}


def test_a_market_without_rules_closes_the_gate_at_the_start(market, usd, funded_buyer, chain):
    start = chain.pending_timestamp + 1
    tx = open_at(market, usd, funded_buyer, start)
    (rules,) = market.RequestRules.from_receipt(tx)
    assert (rules.requestId, rules.holdoutBps, rules.gateClosure) == (market.requestCount(), 0, start)


def test_each_request_keeps_the_rules_it_was_opened_under(market, admin, usd, funded_buyer, chain):
    market.setMarketRules(1_000, 600, sender=admin)
    start = chain.pending_timestamp + 3600
    first = market.RequestRules.from_receipt(open_at(market, usd, funded_buyer, start))[0]
    market.setMarketRules(2_000, 0, sender=admin)
    second = market.RequestRules.from_receipt(open_at(market, usd, funded_buyer, start))[0]
    assert (first.holdoutBps, first.gateClosure) == (1_000, start - 600)
    assert (second.holdoutBps, second.gateClosure) == (2_000, start)
    assert second.requestId == first.requestId + 1


def pin_time(chain) -> int:
    """Fix the next block's timestamp a little ahead and return it."""
    now = chain.pending_timestamp + 10
    chain.pending_timestamp = now
    return now


def test_request_whose_gate_has_closed_reverts(market, admin, usd, funded_buyer, chain):
    market.setMarketRules(0, 900, sender=admin)
    count = market.requestCount()
    now = pin_time(chain)
    with reverts(market.GateAlreadyClosed, gateClosure=now, nowTimestamp=now):
        open_at(market, usd, funded_buyer, now + 900)  # the gate closes this very second
    now = pin_time(chain)
    with reverts(market.GateAlreadyClosed, gateClosure=now - 300, nowTimestamp=now):
        open_at(market, usd, funded_buyer, now + 600)  # starts in the future, but inside the lead
    assert market.requestCount() == count
    now = pin_time(chain)
    tx = open_at(market, usd, funded_buyer, now + 901)  # one second of gate left
    assert market.RequestRules.from_receipt(tx)[0].gateClosure == now + 1


def test_a_start_in_the_past_is_still_reported_as_such(market, admin, usd, funded_buyer, chain):
    market.setMarketRules(0, 900, sender=admin)
    now = pin_time(chain)
    with reverts(market.StartNotInFuture, start=now, nowTimestamp=now):
        open_at(market, usd, funded_buyer, now)


# ---------------------------------------------------------------- deployment


def test_deploy_sets_market_rules_before_handing_the_admin_to_the_timelock(project, accounts, guardian, treasury):
    deployer = accounts[16]
    params = DeployParams(guardian=guardian.address, treasury=treasury.address, admin=accounts[17].address,
                          timelock_delay=3600, holdout_bps=1_500, gate_lead_seconds=1_800)
    result = deploy_all(project, deployer, params)
    market = result["instances"]["FlexMarket"]
    timelock = result["instances"]["NegawattTimelock"]
    assert (market.holdoutBps(), market.gateLeadSeconds()) == (1_500, 1_800)
    assert market.hasRole(DEFAULT_ADMIN_ROLE, timelock.address)
    assert not market.hasRole(DEFAULT_ADMIN_ROLE, deployer.address)
    assert result["manifest"]["parameters"]["holdout_bps"] == 1_500
    assert result["manifest"]["parameters"]["gate_lead_seconds"] == 1_800


@pytest.mark.parametrize("field,value", [("holdout_bps", 5_001), ("holdout_bps", -1),
                                         ("gate_lead_seconds", WEEK + 1), ("gate_lead_seconds", -1)])
def test_deploy_params_bound_the_market_rules(field, value):
    with pytest.raises(ValidationError, match=field):
        DeployParams(**{field: value})
