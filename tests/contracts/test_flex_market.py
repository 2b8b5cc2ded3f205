"""FlexMarket: opening requests (validation and escrow), cancelling, expiring, the settlement path
driven by SETTLER_ROLE (begin, release, complete), duration limits and the guardian's pause. Includes
a property test (hypothesis) that per request, paid + refunded + escrow held == deposited after every
step of random action sequences."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
import solcx
from ape.contracts import ContractContainer
from eth_utils import keccak
from ethpm_types import ContractType
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from contract_asserts import isolated, logs, reverts

ZERO = "0x0000000000000000000000000000000000000000"
DEFAULT_ADMIN_ROLE = b"\x00" * 32
USD = 10**6
UINT128_MAX = 2**128 - 1
NONE, OPEN, CANCELLED, SETTLING, SETTLED, EXPIRED = range(6)
ZONE, TARGET_W, PRICE = 3, 50_000, 250_000
BUDGET = 1_000 * USD
LEAD, DURATION = 3600, 3600

FEE_ON_TRANSFER_TOKEN = """
// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

contract FeeOnTransferToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        allowance[from][msg.sender] -= amount;
        balanceOf[from] -= amount;
        balanceOf[to] += amount - amount / 100;
        return true;
    }
}
"""


def request(market, request_id):
    r = market.getRequest(request_id)
    return {
        "buyer": r.buyer,
        "start": r.start,
        "end": r.end,
        "status": r.status,
        "paymentToken": r.paymentToken,
        "zone": r.zone,
        "targetW": r.targetW,
        "pricePerKWh": r.pricePerKWh,
        "escrow": r.escrow,
        "deposited": r.deposited,
        "paid": r.paid,
    }


def money(market, request_id):
    r = market.getRequest(request_id)
    return r.status, r.escrow, r.deposited, r.paid


@dataclass
class Opened:
    id: int
    start: int
    end: int


@pytest.fixture
def settler(accounts):
    """An account standing in for the OracleHub (the deployed market's SETTLER_ROLE is bound to the hub for good)."""
    return accounts[11]


@pytest.fixture
def deployed_market(deployment):
    return deployment["instances"]["FlexMarket"]


@pytest.fixture
def market(project, admin, guardian, params, settler):
    """A FlexMarket like the deployed one, with its hub role bound to `settler`."""
    fresh = admin.deploy(project.FlexMarket, admin.address, guardian.address, params.min_duration,
                         params.max_duration, params.settlement_timeout)
    fresh.bindHub(settler.address, sender=admin)
    return fresh


@pytest.fixture
def recipient(deployment):
    return deployment["instances"]["RewardDistributor"].address


@pytest.fixture
def funded_buyer(usd, market, buyer):
    usd.mint(buyer.address, 1_000_000 * USD, sender=buyer)
    usd.approve(market.address, 2**256 - 1, sender=buyer)
    return buyer


@pytest.fixture
def open_request(market, usd, funded_buyer, now):
    def open_(budget=BUDGET, lead=LEAD, duration=DURATION):
        start = now() + lead
        end = start + duration
        tx = market.openRequest(ZONE, start, end, TARGET_W, PRICE, usd.address, budget, sender=funded_buyer)
        (opened,) = market.RequestOpened.from_receipt(tx)
        return Opened(id=opened.requestId, start=start, end=end)

    return open_


@pytest.fixture
def opened(open_request):
    return open_request()


@pytest.fixture
def ended(opened, chain):
    chain.pending_timestamp = opened.end
    return opened


@pytest.fixture
def settling(ended, market, settler):
    market.beginSettlement([(ended.id, 400 * USD)], sender=settler)
    return ended


@functools.cache
def fee_token_type():
    output = solcx.compile_standard(
        {
            "language": "Solidity",
            "sources": {"FeeOnTransferToken.sol": {"content": FEE_ON_TRANSFER_TOKEN}},
            "settings": {
                "evmVersion": "cancun",
                "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
            },
        },
        solc_version="0.8.28",
    )
    compiled = output["contracts"]["FeeOnTransferToken.sol"]["FeeOnTransferToken"]
    return ContractType(
        contractName="FeeOnTransferToken",
        abi=compiled["abi"],
        deploymentBytecode={"bytecode": "0x" + compiled["evm"]["bytecode"]["object"]},
    )


def test_deployment_parameters(deployed_market, params):
    market = deployed_market
    assert market.minDuration() == params.min_duration == 15 * 60
    assert market.maxDuration() == params.max_duration == 4 * 3600
    assert market.settlementTimeout() == params.settlement_timeout == 24 * 3600


def test_deployment_roles(deployed_market, admin, guardian, hub):
    market = deployed_market
    assert market.SETTLER_ROLE() == keccak(text="SETTLER_ROLE")
    assert market.hasRole(DEFAULT_ADMIN_ROLE, admin.address)
    assert market.hasRole(market.GUARDIAN_ROLE(), guardian.address)
    assert market.hasRole(market.SETTLER_ROLE(), hub.address)


def test_constructor_emits_duration_limits(project, chain, admin, guardian):
    fresh = admin.deploy(project.FlexMarket, admin.address, guardian.address, 60, 120, 30)
    events = [
        (name, args)
        for _, name, args in logs(chain.get_receipt(fresh.txn_hash))
        if not name.startswith("Role")
    ]
    assert events == [("DurationLimitsSet", {"minDuration": 60, "maxDuration": 120, "settlementTimeout": 30})]
    assert (fresh.minDuration(), fresh.maxDuration(), fresh.settlementTimeout(), fresh.requestCount()) == (
        60,
        120,
        30,
        0,
    )


@pytest.mark.parametrize("minimum, maximum", [(0, 120), (121, 120)])
def test_constructor_rejects_invalid_duration_limits(project, admin, guardian, minimum, maximum):
    with reverts(project.FlexMarket.InvalidDurationLimits, minDuration=minimum, maxDuration=maximum):
        admin.deploy(project.FlexMarket, admin.address, guardian.address, minimum, maximum, 30)


@pytest.mark.parametrize("missing", ["admin", "guardian"])
def test_constructor_rejects_zero_admin_or_guardian(project, admin, guardian, missing):
    roles = {"admin": admin.address, "guardian": guardian.address, missing: ZERO}
    with reverts(project.FlexMarket.ZeroAddress):
        admin.deploy(project.FlexMarket, roles["admin"], roles["guardian"], 60, 120, 30)


def test_open_request_records_the_request_and_escrows_the_budget(market, usd, funded_buyer, now):
    count = market.requestCount()
    held = usd.balanceOf(market.address)
    start = now() + LEAD
    args = (ZONE, start, start + DURATION, TARGET_W, PRICE, usd.address, BUDGET)
    assert market.openRequest.call(*args, sender=funded_buyer) == count + 1
    tx = market.openRequest(*args, sender=funded_buyer)
    assert logs(tx) == [
        (
            market.address,
            "RequestOpened",
            {
                "requestId": count + 1,
                "buyer": funded_buyer.address,
                "zone": ZONE,
                "start": start,
                "end": start + DURATION,
                "targetW": TARGET_W,
                "pricePerKWh": PRICE,
                "paymentToken": usd.address,
                "maxBudget": BUDGET,
            },
        ),
        (market.address, "RequestRules", {"requestId": count + 1, "holdoutBps": 0, "gateClosure": start}),
        (usd.address, "Transfer", {"from": funded_buyer.address, "to": market.address, "value": BUDGET}),
    ]
    assert market.requestCount() == count + 1
    assert request(market, count + 1) == {
        "buyer": funded_buyer.address,
        "start": start,
        "end": start + DURATION,
        "status": OPEN,
        "paymentToken": usd.address,
        "zone": ZONE,
        "targetW": TARGET_W,
        "pricePerKWh": PRICE,
        "escrow": BUDGET,
        "deposited": BUDGET,
        "paid": 0,
    }
    assert usd.balanceOf(market.address) == held + BUDGET
    assert usd.balanceOf(funded_buyer.address) == 1_000_000 * USD - BUDGET


def test_request_ids_count_up(market, open_request):
    first, second = open_request(), open_request(budget=5)
    assert second.id == first.id + 1 == market.requestCount()
    assert market.getRequest(second.id).escrow == 5


def test_open_request_accepts_a_window_starting_next_second(market, usd, funded_buyer, chain):
    now = chain.pending_timestamp + 10
    chain.pending_timestamp = now
    tx = market.openRequest(
        ZONE, now + 1, now + 1 + DURATION, TARGET_W, PRICE, usd.address, 1, sender=funded_buyer
    )
    assert market.RequestOpened.from_receipt(tx)[0].start == now + 1


@pytest.mark.parametrize("offset", [0, -1])
def test_open_request_rejects_a_start_not_in_the_future(market, usd, funded_buyer, chain, offset):
    now = chain.pending_timestamp + 10
    chain.pending_timestamp = now
    start = now + offset
    with reverts(market.StartNotInFuture, start=start, nowTimestamp=now):
        market.openRequest(
            ZONE, start, start + DURATION, TARGET_W, PRICE, usd.address, 1, sender=funded_buyer
        )


@pytest.mark.parametrize("end_offset", [0, -1])
def test_open_request_rejects_an_end_not_after_start(market, usd, funded_buyer, now, end_offset):
    start = now() + LEAD
    with reverts(market.InvalidWindow, start=start, end=start + end_offset):
        market.openRequest(
            ZONE, start, start + end_offset, TARGET_W, PRICE, usd.address, 1, sender=funded_buyer
        )


@pytest.mark.parametrize("duration", [15 * 60 - 1, 4 * 3600 + 1])
def test_open_request_rejects_a_duration_out_of_range(market, usd, funded_buyer, now, duration):
    start = now() + LEAD
    with reverts(market.DurationOutOfRange, duration=duration, minDuration=15 * 60, maxDuration=4 * 3600):
        market.openRequest(
            ZONE, start, start + duration, TARGET_W, PRICE, usd.address, 1, sender=funded_buyer
        )


@pytest.mark.parametrize("duration", [15 * 60, 4 * 3600])
def test_open_request_accepts_the_duration_bounds(market, open_request, duration):
    opened = open_request(duration=duration)
    assert opened.end - opened.start == duration
    assert market.getRequest(opened.id).status == OPEN


@pytest.mark.parametrize(
    "field, error",
    [
        ("targetW", "ZeroTarget"),
        ("pricePerKWh", "ZeroPrice"),
        ("maxBudget", "ZeroBudget"),
        ("token", "ZeroAddress"),
    ],
)
def test_open_request_rejects_zero_fields(market, usd, funded_buyer, now, field, error):
    start = now() + LEAD
    args = {"targetW": TARGET_W, "pricePerKWh": PRICE, "token": usd.address, "maxBudget": BUDGET}
    args[field] = ZERO if field == "token" else 0
    with reverts(getattr(market, error)):
        market.openRequest(
            ZONE,
            start,
            start + DURATION,
            args["targetW"],
            args["pricePerKWh"],
            args["token"],
            args["maxBudget"],
            sender=funded_buyer,
        )


def test_open_request_rejects_a_budget_above_128_bits(market, usd, funded_buyer, now):
    start = now() + LEAD
    with reverts(market.AmountTooLarge, amount=UINT128_MAX + 1):
        market.openRequest(
            ZONE, start, start + DURATION, TARGET_W, PRICE, usd.address, UINT128_MAX + 1, sender=funded_buyer
        )


def test_open_request_accepts_the_largest_128_bit_budget(market, usd, funded_buyer, open_request):
    usd.mint(funded_buyer.address, UINT128_MAX, sender=funded_buyer)
    opened = open_request(budget=UINT128_MAX)
    assert money(market, opened.id) == (OPEN, UINT128_MAX, UINT128_MAX, 0)


def test_open_request_without_allowance_reverts_in_the_token(market, usd, other, now):
    usd.mint(other.address, BUDGET, sender=other)
    start = now() + LEAD
    with reverts(usd.ERC20InsufficientAllowance, spender=market.address, allowance=0, needed=BUDGET):
        market.openRequest(ZONE, start, start + DURATION, TARGET_W, PRICE, usd.address, BUDGET, sender=other)


def test_open_request_rejects_a_fee_on_transfer_token(market, admin, other, now):
    fee_token = admin.deploy(ContractContainer(fee_token_type()))
    fee_token.mint(other.address, BUDGET, sender=other)
    fee_token.approve(market.address, BUDGET, sender=other)
    count = market.requestCount()
    start = now() + LEAD
    with reverts(market.TransferAmountMismatch, expected=BUDGET, received=BUDGET - BUDGET // 100):
        market.openRequest(
            ZONE, start, start + DURATION, TARGET_W, PRICE, fee_token.address, BUDGET, sender=other
        )
    assert market.requestCount() == count


def test_cancel_before_start_refunds_the_whole_escrow(market, usd, funded_buyer, opened, chain):
    balance = usd.balanceOf(funded_buyer.address)
    chain.pending_timestamp = opened.start - 1
    tx = market.cancel(opened.id, sender=funded_buyer)
    assert logs(tx) == [
        (market.address, "RequestCancelled", {"requestId": opened.id, "refund": BUDGET}),
        (usd.address, "Transfer", {"from": market.address, "to": funded_buyer.address, "value": BUDGET}),
    ]
    assert money(market, opened.id) == (CANCELLED, 0, BUDGET, 0)
    assert usd.balanceOf(funded_buyer.address) == balance + BUDGET


def test_cancel_by_another_account_reverts(market, opened, other):
    with reverts(market.NotBuyer, requestId=opened.id, caller=other.address):
        market.cancel(opened.id, sender=other)
    assert money(market, opened.id) == (OPEN, BUDGET, BUDGET, 0)


def test_cancel_at_start_reverts(market, funded_buyer, opened, chain):
    chain.pending_timestamp = opened.start
    with reverts(market.AlreadyStarted, requestId=opened.id, start=opened.start):
        market.cancel(opened.id, sender=funded_buyer)
    assert money(market, opened.id) == (OPEN, BUDGET, BUDGET, 0)


def test_cancel_twice_reverts(market, funded_buyer, opened):
    market.cancel(opened.id, sender=funded_buyer)
    with reverts(market.WrongStatus, requestId=opened.id, status=CANCELLED):
        market.cancel(opened.id, sender=funded_buyer)


def test_cancel_of_a_settling_request_reverts(market, funded_buyer, settling):
    with reverts(market.WrongStatus, requestId=settling.id, status=SETTLING):
        market.cancel(settling.id, sender=funded_buyer)


def test_cancel_of_an_unknown_request_reverts(market, funded_buyer):
    unknown = market.requestCount() + 1
    with reverts(market.UnknownRequest, requestId=unknown):
        market.cancel(unknown, sender=funded_buyer)


def test_expire_after_the_timeout_refunds_the_buyer(market, usd, funded_buyer, opened, other, chain, params):
    balance = usd.balanceOf(funded_buyer.address)
    chain.pending_timestamp = opened.end + params.settlement_timeout
    tx = market.expire(opened.id, sender=other)
    assert logs(tx) == [
        (market.address, "RequestExpired", {"requestId": opened.id, "refund": BUDGET}),
        (usd.address, "Transfer", {"from": market.address, "to": funded_buyer.address, "value": BUDGET}),
    ]
    assert money(market, opened.id) == (EXPIRED, 0, BUDGET, 0)
    assert usd.balanceOf(funded_buyer.address) == balance + BUDGET


def test_expire_one_second_before_the_timeout_reverts(market, opened, other, chain, params):
    expires_at = opened.end + params.settlement_timeout
    chain.pending_timestamp = expires_at - 1
    with reverts(market.SettlementTimeoutNotReached, requestId=opened.id, expiresAt=expires_at):
        market.expire(opened.id, sender=other)
    assert money(market, opened.id) == (OPEN, BUDGET, BUDGET, 0)


def test_expire_twice_reverts(market, opened, other, chain, params):
    chain.pending_timestamp = opened.end + params.settlement_timeout
    market.expire(opened.id, sender=other)
    with reverts(market.WrongStatus, requestId=opened.id, status=EXPIRED):
        market.expire(opened.id, sender=other)


def test_expire_of_a_cancelled_request_reverts(market, funded_buyer, opened, chain, params):
    market.cancel(opened.id, sender=funded_buyer)
    chain.pending_timestamp = opened.end + params.settlement_timeout
    with reverts(market.WrongStatus, requestId=opened.id, status=CANCELLED):
        market.expire(opened.id, sender=funded_buyer)


def test_settling_request_cannot_expire(market, settling, other, chain, params):
    chain.pending_timestamp = settling.end + params.settlement_timeout
    with reverts(market.WrongStatus, requestId=settling.id, status=SETTLING):
        market.expire(settling.id, sender=other)


def test_expire_of_an_unknown_request_reverts(market, other):
    unknown = market.requestCount() + 1
    with reverts(market.UnknownRequest, requestId=unknown):
        market.expire(unknown, sender=other)


def test_begin_settlement_at_the_end_claims_the_request(market, usd, opened, settler, chain):
    held = usd.balanceOf(market.address)
    chain.pending_timestamp = opened.end
    tx = market.beginSettlement([(opened.id, 400 * USD)], sender=settler)
    assert logs(tx) == [(market.address, "RequestSettling", {"requestId": opened.id, "payout": 400 * USD})]
    assert money(market, opened.id) == (SETTLING, BUDGET, BUDGET, 0)
    assert usd.balanceOf(market.address) == held


def test_begin_settlement_claims_several_requests_in_order(market, open_request, settler, chain):
    first, second = open_request(), open_request(budget=7)
    chain.pending_timestamp = second.end
    tx = market.beginSettlement([(second.id, 7), (first.id, 0)], sender=settler)
    assert [args for _, _, args in logs(tx)] == [
        {"requestId": second.id, "payout": 7},
        {"requestId": first.id, "payout": 0},
    ]
    assert market.getRequest(first.id).status == market.getRequest(second.id).status == SETTLING


def test_begin_settlement_accepts_a_payout_equal_to_the_escrow(market, ended, settler):
    market.beginSettlement([(ended.id, BUDGET)], sender=settler)
    assert market.getRequest(ended.id).status == SETTLING


def test_begin_settlement_before_the_end_reverts(market, opened, settler, chain):
    chain.pending_timestamp = opened.end - 1
    with reverts(market.NotEnded, requestId=opened.id, end=opened.end):
        market.beginSettlement([(opened.id, 1)], sender=settler)
    assert market.getRequest(opened.id).status == OPEN


def test_begin_settlement_with_payout_above_escrow_reverts(market, ended, settler):
    with reverts(market.PayoutExceedsEscrow, requestId=ended.id, payout=BUDGET + 1, escrow=BUDGET):
        market.beginSettlement([(ended.id, BUDGET + 1)], sender=settler)
    assert market.getRequest(ended.id).status == OPEN


def test_begin_settlement_twice_reverts(market, settling, settler):
    with reverts(market.WrongStatus, requestId=settling.id, status=SETTLING):
        market.beginSettlement([(settling.id, 1)], sender=settler)


def test_begin_settlement_with_a_request_listed_twice_reverts_as_a_whole(market, ended, settler):
    with reverts(market.WrongStatus, requestId=ended.id, status=SETTLING):
        market.beginSettlement([(ended.id, 1), (ended.id, 1)], sender=settler)
    assert market.getRequest(ended.id).status == OPEN


def test_begin_settlement_of_a_cancelled_request_reverts(market, funded_buyer, opened, settler, chain):
    market.cancel(opened.id, sender=funded_buyer)
    chain.pending_timestamp = opened.end
    with reverts(market.WrongStatus, requestId=opened.id, status=CANCELLED):
        market.beginSettlement([(opened.id, 0)], sender=settler)


def test_begin_settlement_of_an_expired_request_reverts(market, opened, settler, other, chain, params):
    chain.pending_timestamp = opened.end + params.settlement_timeout
    market.expire(opened.id, sender=other)
    with reverts(market.WrongStatus, requestId=opened.id, status=EXPIRED):
        market.beginSettlement([(opened.id, 0)], sender=settler)


def test_begin_settlement_of_an_unknown_request_reverts(market, settler):
    unknown = market.requestCount() + 1
    with reverts(market.UnknownRequest, requestId=unknown):
        market.beginSettlement([(unknown, 0)], sender=settler)


def test_release_settlement_reopens_the_request(market, settling, settler):
    tx = market.releaseSettlement([(settling.id, 400 * USD)], sender=settler)
    assert logs(tx) == [(market.address, "RequestReleased", {"requestId": settling.id})]
    assert money(market, settling.id) == (OPEN, BUDGET, BUDGET, 0)


def test_released_request_can_be_claimed_again_with_another_payout(
    market, usd, funded_buyer, settling, settler, recipient
):
    market.releaseSettlement([(settling.id, 400 * USD)], sender=settler)
    market.beginSettlement([(settling.id, 100 * USD)], sender=settler)
    market.completeSettlement([(settling.id, 100 * USD)], recipient, sender=settler)
    assert money(market, settling.id) == (SETTLED, 0, BUDGET, 100 * USD)
    assert usd.balanceOf(recipient) == 100 * USD


def test_released_request_can_expire(market, settling, settler, other, chain, params):
    market.releaseSettlement([(settling.id, 400 * USD)], sender=settler)
    chain.pending_timestamp = settling.end + params.settlement_timeout
    market.expire(settling.id, sender=other)
    assert money(market, settling.id) == (EXPIRED, 0, BUDGET, 0)


def test_release_of_an_open_request_reverts(market, ended, settler):
    with reverts(market.WrongStatus, requestId=ended.id, status=OPEN):
        market.releaseSettlement([(ended.id, 0)], sender=settler)


def test_release_of_an_unknown_request_reverts_with_status_none(market, settler):
    unknown = market.requestCount() + 1
    with reverts(market.WrongStatus, requestId=unknown, status=NONE):
        market.releaseSettlement([(unknown, 0)], sender=settler)


def test_complete_settlement_pays_recipient_and_refunds_the_rest(
    market, usd, funded_buyer, settling, settler, recipient
):
    buyer_balance = usd.balanceOf(funded_buyer.address)
    held = usd.balanceOf(market.address)
    tx = market.completeSettlement([(settling.id, 400 * USD)], recipient, sender=settler)
    assert logs(tx) == [
        (
            market.address,
            "RequestSettled",
            {"requestId": settling.id, "payout": 400 * USD, "refund": 600 * USD, "recipient": recipient},
        ),
        (usd.address, "Transfer", {"from": market.address, "to": recipient, "value": 400 * USD}),
        (usd.address, "Transfer", {"from": market.address, "to": funded_buyer.address, "value": 600 * USD}),
    ]
    assert money(market, settling.id) == (SETTLED, 0, BUDGET, 400 * USD)
    assert usd.balanceOf(recipient) == 400 * USD
    assert usd.balanceOf(funded_buyer.address) == buyer_balance + 600 * USD
    assert usd.balanceOf(market.address) == held - BUDGET


def test_complete_settlement_with_zero_payout_refunds_everything(
    market, usd, funded_buyer, ended, settler, recipient
):
    market.beginSettlement([(ended.id, 0)], sender=settler)
    tx = market.completeSettlement([(ended.id, 0)], recipient, sender=settler)
    assert logs(tx) == [
        (
            market.address,
            "RequestSettled",
            {"requestId": ended.id, "payout": 0, "refund": BUDGET, "recipient": recipient},
        ),
        (usd.address, "Transfer", {"from": market.address, "to": funded_buyer.address, "value": BUDGET}),
    ]
    assert money(market, ended.id) == (SETTLED, 0, BUDGET, 0)


def test_complete_settlement_of_the_whole_escrow_refunds_nothing(market, usd, ended, settler, recipient):
    market.beginSettlement([(ended.id, BUDGET)], sender=settler)
    tx = market.completeSettlement([(ended.id, BUDGET)], recipient, sender=settler)
    assert logs(tx) == [
        (
            market.address,
            "RequestSettled",
            {"requestId": ended.id, "payout": BUDGET, "refund": 0, "recipient": recipient},
        ),
        (usd.address, "Transfer", {"from": market.address, "to": recipient, "value": BUDGET}),
    ]
    assert money(market, ended.id) == (SETTLED, 0, BUDGET, BUDGET)


def test_complete_settlement_settles_several_requests(market, usd, open_request, settler, recipient, chain):
    first, second = open_request(), open_request(budget=10 * USD)
    chain.pending_timestamp = second.end
    payouts = [(first.id, 250 * USD), (second.id, 10 * USD)]
    market.beginSettlement(payouts, sender=settler)
    market.completeSettlement(payouts, recipient, sender=settler)
    assert money(market, first.id) == (SETTLED, 0, BUDGET, 250 * USD)
    assert money(market, second.id) == (SETTLED, 0, 10 * USD, 10 * USD)
    assert usd.balanceOf(recipient) == 260 * USD


def test_complete_settlement_twice_reverts(market, settling, settler, recipient):
    market.completeSettlement([(settling.id, 400 * USD)], recipient, sender=settler)
    with reverts(market.WrongStatus, requestId=settling.id, status=SETTLED):
        market.completeSettlement([(settling.id, 400 * USD)], recipient, sender=settler)


def test_complete_settlement_of_an_unclaimed_request_reverts(market, ended, settler, recipient):
    with reverts(market.WrongStatus, requestId=ended.id, status=OPEN):
        market.completeSettlement([(ended.id, 0)], recipient, sender=settler)


def test_complete_settlement_to_zero_recipient_reverts(market, settling, settler):
    with reverts(market.ZeroAddress):
        market.completeSettlement([(settling.id, 400 * USD)], ZERO, sender=settler)
    assert money(market, settling.id) == (SETTLING, BUDGET, BUDGET, 0)


def test_complete_settlement_rechecks_the_payout_against_the_escrow(market, settling, settler, recipient):
    with reverts(market.PayoutExceedsEscrow, requestId=settling.id, payout=BUDGET + 1, escrow=BUDGET):
        market.completeSettlement([(settling.id, BUDGET + 1)], recipient, sender=settler)
    assert money(market, settling.id) == (SETTLING, BUDGET, BUDGET, 0)


def test_settled_request_cannot_be_claimed_again(market, settling, settler, recipient):
    market.completeSettlement([(settling.id, 400 * USD)], recipient, sender=settler)
    with reverts(market.WrongStatus, requestId=settling.id, status=SETTLED):
        market.beginSettlement([(settling.id, 0)], sender=settler)


@pytest.mark.parametrize("function", ["beginSettlement", "releaseSettlement", "completeSettlement"])
def test_settlement_requires_settler_role(market, ended, other, recipient, function):
    args = ([(ended.id, 0)], recipient) if function == "completeSettlement" else ([(ended.id, 0)],)
    with reverts(
        market.AccessControlUnauthorizedAccount, account=other.address, neededRole=market.SETTLER_ROLE()
    ):
        getattr(market, function)(*args, sender=other)
    assert market.getRequest(ended.id).status == OPEN


def test_set_duration_limits(market, admin):
    tx = market.setDurationLimits(60, 60, 0, sender=admin)
    assert logs(tx) == [
        (market.address, "DurationLimitsSet", {"minDuration": 60, "maxDuration": 60, "settlementTimeout": 0})
    ]
    assert (market.minDuration(), market.maxDuration(), market.settlementTimeout()) == (60, 60, 0)


@pytest.mark.parametrize("minimum, maximum", [(0, 60), (61, 60)])
def test_set_duration_limits_rejects_invalid_bounds(market, admin, params, minimum, maximum):
    with reverts(market.InvalidDurationLimits, minDuration=minimum, maxDuration=maximum):
        market.setDurationLimits(minimum, maximum, 10, sender=admin)
    assert (market.minDuration(), market.maxDuration()) == (params.min_duration, params.max_duration)


def test_set_duration_limits_requires_admin(market, other):
    with reverts(
        market.AccessControlUnauthorizedAccount, account=other.address, neededRole=DEFAULT_ADMIN_ROLE
    ):
        market.setDurationLimits(60, 60, 0, sender=other)


def test_new_duration_limits_apply_to_new_requests(market, admin, open_request, usd, funded_buyer, now):
    market.setDurationLimits(60, 120, 0, sender=admin)
    short, long = open_request(duration=60), open_request(duration=120)
    assert (short.end - short.start, long.end - long.start) == (60, 120)
    start = now() + LEAD
    with reverts(market.DurationOutOfRange, duration=121, minDuration=60, maxDuration=120):
        market.openRequest(ZONE, start, start + 121, TARGET_W, PRICE, usd.address, 1, sender=funded_buyer)


def test_new_settlement_timeout_applies_to_open_requests(market, admin, opened, other, chain):
    market.setDurationLimits(15 * 60, 4 * 3600, 0, sender=admin)
    chain.pending_timestamp = opened.end
    market.expire(opened.id, sender=other)
    assert market.getRequest(opened.id).status == EXPIRED


def test_guardian_pauses_and_unpauses(market, guardian):
    tx = market.pause(sender=guardian)
    assert logs(tx) == [(market.address, "Paused", {"account": guardian.address}),
                        (market.address, "PausedUntil", {"until": tx.timestamp + 7 * 24 * 3600})]
    assert market.paused()
    tx = market.unpause(sender=guardian)
    assert logs(tx) == [(market.address, "Unpaused", {"account": guardian.address})]
    assert not market.paused()


@pytest.mark.parametrize("action", ["pause", "unpause"])
def test_pause_requires_guardian_role(market, admin, action):
    with reverts(
        market.AccessControlUnauthorizedAccount, account=admin.address, neededRole=market.GUARDIAN_ROLE()
    ):
        getattr(market, action)(sender=admin)


def test_pause_blocks_opening_requests(market, guardian, usd, funded_buyer, now):
    market.pause(sender=guardian)
    start = now() + LEAD
    with reverts(market.EnforcedPause):
        market.openRequest(
            ZONE, start, start + DURATION, TARGET_W, PRICE, usd.address, 1, sender=funded_buyer
        )


def test_pause_blocks_cancel(market, guardian, funded_buyer, opened):
    market.pause(sender=guardian)
    with reverts(market.EnforcedPause):
        market.cancel(opened.id, sender=funded_buyer)
    market.unpause(sender=guardian)
    market.cancel(opened.id, sender=funded_buyer)
    assert market.getRequest(opened.id).status == CANCELLED


def test_pause_blocks_expire(market, guardian, opened, other, chain, params):
    chain.pending_timestamp = opened.end + params.settlement_timeout
    market.pause(sender=guardian)
    with reverts(market.EnforcedPause):
        market.expire(opened.id, sender=other)
    market.unpause(sender=guardian)
    market.expire(opened.id, sender=other)
    assert market.getRequest(opened.id).status == EXPIRED


def test_pause_blocks_complete_settlement(market, guardian, settling, settler, recipient):
    market.pause(sender=guardian)
    with reverts(market.EnforcedPause):
        market.completeSettlement([(settling.id, 400 * USD)], recipient, sender=settler)
    market.unpause(sender=guardian)
    market.completeSettlement([(settling.id, 400 * USD)], recipient, sender=settler)
    assert market.getRequest(settling.id).status == SETTLED


def test_begin_and_release_settlement_still_work_while_paused(market, guardian, ended, settler):
    market.pause(sender=guardian)
    market.beginSettlement([(ended.id, 1)], sender=settler)
    assert market.getRequest(ended.id).status == SETTLING
    market.releaseSettlement([(ended.id, 1)], sender=settler)
    assert market.getRequest(ended.id).status == OPEN


@dataclass
class Model:
    """What one request should hold, by the market's rules."""

    deposited: int
    status: int = OPEN
    escrow: int = 0
    paid: int = 0
    refunded: int = 0
    claimed: int = 0

    def __post_init__(self):
        self.escrow = self.deposited


PER_MILLE = st.integers(min_value=0, max_value=1_000)
OVER_ESCROW = 1_001


@st.composite
def scenarios(draw):
    budgets = draw(
        st.lists(
            st.one_of(st.integers(min_value=1, max_value=10**9 * USD), st.sampled_from([1, 2, UINT128_MAX])),
            min_size=1,
            max_size=2,
        )
    )
    request = st.integers(min_value=0, max_value=len(budgets) - 1)
    step = st.one_of(
        st.tuples(request, st.just("cancel")),
        st.tuples(request, st.just("settle"), PER_MILLE),
        st.tuples(request, st.just("release then settle"), PER_MILLE, PER_MILLE),
        st.tuples(request, st.just("expire")),
        st.tuples(request, st.sampled_from(["begin", "release", "complete"]), st.integers(0, OVER_ESCROW)),
    )
    return budgets, draw(st.lists(step, min_size=1, max_size=5))


def transactions(step):
    """One scenario step as the request's index and its (action, argument) list; ("advance", phase)
    moves time to the window's end (phase 1) or past the settlement timeout (phase 2)."""
    index, action, *shares = step
    if action == "settle":
        return index, [("advance", 1), ("begin", shares[0]), ("complete", None)]
    if action == "release then settle":
        return index, [
            ("advance", 1),
            ("begin", shares[0]),
            ("release", None),
            ("begin", shares[1]),
            ("complete", None),
        ]
    if action == "expire":
        return index, [("advance", 2), ("expire", None)]
    return index, [(action, shares[0] if shares else None)]


def expected_failure(market, model, action, phase, payout):
    """The error (and its inputs besides requestId) the action must revert with; None if it succeeds."""
    if action in ("release", "complete"):
        return (market.WrongStatus, {"status": model.status}) if model.status != SETTLING else None
    if model.status != OPEN:
        return market.WrongStatus, {"status": model.status}
    if action == "cancel":
        return (market.AlreadyStarted, {}) if phase > 0 else None
    if action == "expire":
        return (market.SettlementTimeoutNotReached, {}) if phase < 2 else None
    if phase == 0:
        return market.NotEnded, {}
    if payout > model.escrow:
        return market.PayoutExceedsEscrow, {"payout": payout, "escrow": model.escrow}
    return None


def apply(model, action, payout):
    if action == "begin":
        model.status, model.claimed = SETTLING, payout
    elif action == "release":
        model.status = OPEN
    elif action == "complete":
        model.status, model.paid = SETTLED, model.claimed
        model.refunded, model.escrow = model.escrow - model.claimed, 0
    else:
        model.status = CANCELLED if action == "cancel" else EXPIRED
        model.refunded, model.escrow = model.escrow, 0


class MarketRun:
    """Requests opened by one buyer, driven through the market and mirrored by a `Model` each."""

    def __init__(self, chain, market, usd, buyer, settler, recipient, settlement_timeout):
        self.chain, self.market, self.usd = chain, market, usd
        self.buyer, self.settler, self.recipient = buyer, settler, recipient
        self.start = chain.pending_timestamp + LEAD
        self.end = self.start + DURATION
        self.phase_time = {1: self.end, 2: self.end + settlement_timeout}
        self.phase = 0
        self.ids, self.models, self.refunded = [], [], []
        self.balances = self.token_balances()

    def token_balances(self):
        return (
            self.usd.balanceOf(self.buyer.address),
            self.usd.balanceOf(self.recipient),
            self.usd.balanceOf(self.market.address),
        )

    def open(self, budget):
        self.usd.mint(self.buyer.address, budget, sender=self.buyer)
        self.usd.approve(self.market.address, budget, sender=self.buyer)
        self.balances = (self.balances[0] + budget, *self.balances[1:])
        tx = self.market.openRequest(
            ZONE, self.start, self.end, TARGET_W, PRICE, self.usd.address, budget, sender=self.buyer
        )
        self.ids.append(self.market.RequestOpened.from_receipt(tx)[0].requestId)
        self.models.append(Model(deposited=budget))
        self.refunded.append(0)

    def advance(self, phase):
        if phase > self.phase:
            self.phase = phase
            self.chain.pending_timestamp = max(self.chain.pending_timestamp, self.phase_time[phase])

    def act(self, index, action, per_mille):
        request_id, model = self.ids[index], self.models[index]
        payout = model.claimed
        if action == "begin":
            payout = model.escrow + 1 if per_mille == OVER_ESCROW else model.escrow * per_mille // 1_000
        failure = expected_failure(self.market, model, action, self.phase, payout)
        event(f"{action}: {failure[0].abi.name if failure else 'done'}")
        if failure:
            error, inputs = failure
            with reverts(error, requestId=request_id, **inputs):
                self.send(action, request_id, payout)
            return
        tx = self.send(action, request_id, payout)
        apply(model, action, payout)
        self.refunded[index] += refund_of(self.market, tx, request_id)

    def send(self, action, request_id, payout):
        market, payouts = self.market, [(request_id, payout)]
        if action == "cancel":
            return market.cancel(request_id, sender=self.buyer)
        if action == "expire":
            return market.expire(request_id, sender=self.buyer)
        if action == "begin":
            return market.beginSettlement(payouts, sender=self.settler)
        if action == "release":
            return market.releaseSettlement(payouts, sender=self.settler)
        return market.completeSettlement(payouts, self.recipient, sender=self.settler)

    def check(self):
        for request_id, model, refunded in zip(self.ids, self.models, self.refunded, strict=True):
            status, escrow, deposited, paid = money(self.market, request_id)
            assert (status, escrow, paid, deposited) == (
                model.status,
                model.escrow,
                model.paid,
                model.deposited,
            )
            assert refunded == model.refunded
            assert paid + refunded + escrow == deposited
        buyer, recipient, market = self.balances
        assert self.token_balances() == (
            buyer - sum(m.deposited for m in self.models) + sum(self.refunded),
            recipient + sum(m.paid for m in self.models),
            market + sum(m.escrow for m in self.models),
        )


def refund_of(market, tx, request_id):
    events = tx.decode_logs([market.RequestCancelled, market.RequestExpired, market.RequestSettled])
    return sum(log.refund for log in events if log.requestId == request_id)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_property_paid_plus_refunded_plus_held_equals_deposited(
    chain, market, usd, buyer, settler, recipient, params, scenario
):
    budgets, steps = scenario
    with isolated(chain):
        run = MarketRun(chain, market, usd, buyer, settler, recipient, params.settlement_timeout)
        for budget in budgets:
            run.open(budget)
            run.check()
        for step in steps:
            index, actions = transactions(step)
            for action, argument in actions:
                if action == "advance":
                    run.advance(argument)
                else:
                    run.act(index, action, argument)
                    run.check()
