"""A request's allocation (issue 14): k oracles sign the clearing result (root, accepted W, uniform
clearing price) and anyone posts it through the OracleHub, once, before the start, at or below the
buyer's ceiling. FlexMarket then lowers the escrow settlement may pay to what the allocation can earn
(accepted W x window x clearing price), refuses cancellation, and refunds the rest of the deposit with
the settlement or the expiry."""

from __future__ import annotations

import pytest
from contract_asserts import logs, reverts
from eth_account import Account

from protocol import eip712
from protocol.merkle import RewardLeaf

USD = 10**6
PRICE = 200_000  # the buyer's ceiling: 0.20 mUSD per kWh
ROOT = b"\x11" * 32


@pytest.fixture(autouse=True)
def _oracles(oracle_set):
    return oracle_set


@pytest.fixture
def sign_allocation(hub, chain_id):
    def do(signers, request_id: int, accepted_w: int, clearing_price: int, root: bytes = ROOT,
           availability_price: int = 0) -> list[bytes]:
        message = {"requestId": request_id, "root": root, "acceptedW": accepted_w, "clearingPrice": clearing_price,
                   "availabilityPrice": availability_price}
        return [eip712.sign(a.private_key, "Allocation", message, chain_id, hub.address) for a in signers]

    return do


@pytest.fixture
def post(hub, sign_allocation, oracle_accounts, other):
    def do(request_id: int, accepted_w: int, clearing_price: int, signers=None, root: bytes = ROOT,
           availability_price: int = 0):
        signatures = sign_allocation(signers or oracle_accounts[:3], request_id, accepted_w, clearing_price, root,
                                     availability_price)
        return hub.postAllocation(request_id, root, accepted_w, clearing_price, availability_price, signatures,
                                  sender=other)

    return do


def test_digest_matches_the_python_signer(hub, chain_id):
    message = {"requestId": 7, "root": ROOT, "acceptedW": 40_000, "clearingPrice": 150_000, "availabilityPrice": 20_000}
    from eth_account.messages import encode_typed_data

    expected = encode_typed_data(full_message=eip712.typed_data("Allocation", message, chain_id, hub.address))
    from eth_utils import keccak

    assert bytes(hub.allocationDigest(7, ROOT, 40_000, 150_000, 20_000)) == keccak(b"\x19\x01" + expected.header + expected.body)


def test_post_records_the_allocation_and_lowers_the_escrow(market, open_request, post):
    # 1,000 mUSD deposited; 40 kW accepted for 1 h at 0.15 mUSD/kWh can earn at most 40 kWh x 0.15 = 6 mUSD.
    request_id = open_request(budget=1_000 * USD, price=PRICE)
    tx = post(request_id, 40_000, 150_000)
    assert logs(tx) == [(market.address, "AllocationPosted", {"requestId": request_id, "root": ROOT,
                                                              "acceptedW": 40_000, "clearingPrice": 150_000,
                                                              "availabilityPrice": 0})]
    r = market.getRequest(request_id)
    assert r.allocated and r.escrow == 6 * USD and r.deposited == 1_000 * USD


def test_a_budget_below_the_cap_is_kept(market, open_request, post):
    # 70 kW x 1 h x 0.2 = 14 mUSD can be earned; only 10 mUSD were escrowed: the escrow stays 10.
    request_id = open_request(budget=10 * USD, price=PRICE)
    post(request_id, 70_000, PRICE)
    assert market.getRequest(request_id).escrow == 10 * USD


def test_cap_rounds_down(market, open_request, post):
    # 1 W for 3,600 s at 999 base units per kWh earns 1 Wh x 999 / 1000 = 0.999 -> 0 base units.
    request_id = open_request(budget=1_000 * USD, price=PRICE)
    post(request_id, 1, 999)
    assert market.getRequest(request_id).escrow == 0


def test_attacks_on_posting(hub, market, open_request, post, sign_allocation, oracle_accounts, other, chain):
    request_id = open_request(budget=1_000 * USD, price=PRICE)
    with reverts(hub.NotEnoughSignatures, given=2, threshold=3):
        post(request_id, 40_000, 150_000, signers=oracle_accounts[:2])
    twice = [oracle_accounts[0], oracle_accounts[1], oracle_accounts[0]]
    with reverts(hub.DuplicateSigner, signer=oracle_accounts[0].address):
        post(request_id, 40_000, 150_000, signers=twice)
    outsider = Account.create()
    outsider.private_key = outsider.key
    with reverts(hub.NotOracle, signer=outsider.address):
        post(request_id, 40_000, 150_000, signers=[oracle_accounts[0], oracle_accounts[1], outsider])
    # Signatures over one allocation do not carry another (a changed root, power or price).
    signatures = sign_allocation(oracle_accounts[:3], request_id, 40_000, 150_000)
    with reverts(hub.NotOracle):
        hub.postAllocation(request_id, ROOT, 80_000, 150_000, 0, signatures, sender=other)
    with reverts(hub.NotOracle):  # nor another availability price
        hub.postAllocation(request_id, ROOT, 40_000, 150_000, 1, signatures, sender=other)
    with reverts(market.ClearingAboveCeiling, requestId=request_id, clearingPrice=PRICE + 1, ceiling=PRICE):
        post(request_id, 40_000, PRICE + 1)
    with reverts(market.AccessControlUnauthorizedAccount):  # only the hub records allocations
        market.recordAllocation(request_id, ROOT, 40_000, 150_000, 0, sender=other)
    post(request_id, 40_000, 150_000)
    with reverts(market.AlreadyAllocated, requestId=request_id):
        post(request_id, 50_000, 150_000)
    late = open_request(budget=1_000 * USD, price=PRICE, lead=600)
    start = market.getRequest(late).start
    chain.mine(timestamp=start)
    with reverts(market.AlreadyStarted, requestId=late, start=start):
        post(late, 40_000, 150_000)
    with reverts(market.UnknownRequest, requestId=999):
        post(999, 40_000, 150_000)


def test_no_cancellation_after_the_allocation(market, open_request, post, buyer):
    request_id = open_request(budget=1_000 * USD, price=PRICE)
    post(request_id, 40_000, 150_000)
    with reverts(market.AlreadyAllocated, requestId=request_id):
        market.cancel(request_id, sender=buyer)


def test_settlement_pays_at_most_the_cap_and_refunds_the_rest_of_the_deposit(
        market, usd, distributor, buyer, open_request, end_request, post, make_report, submit, finalize,
        oracle_accounts, hub, owner):
    request_id = open_request(budget=1_000 * USD, price=PRICE)
    post(request_id, 40_000, 150_000)  # cap 6 mUSD
    end_request(request_id)
    too_much, _ = make_report([RewardLeaf(owner.address, usd.address, 1)], payouts=[(request_id, 6 * USD + 1)])
    with reverts(market.PayoutExceedsEscrow, requestId=request_id, payout=6 * USD + 1, escrow=6 * USD):
        submit(too_much, oracle_accounts[:3])
    report, _ = make_report([RewardLeaf(owner.address, usd.address, 5 * USD)], payouts=[(request_id, 5 * USD)])
    submit(report, oracle_accounts[:3])
    before = usd.balanceOf(buyer.address)
    tx = finalize(report)
    settled = [e for e in tx.decode_logs(market.RequestSettled)]
    assert [(e.payout, e.refund) for e in settled] == [(5 * USD, 995 * USD)]
    assert usd.balanceOf(buyer.address) - before == 995 * USD
    r = market.getRequest(request_id)
    assert (r.paid, r.escrow) == (5 * USD, 0)


def test_expiry_of_an_allocated_request_refunds_the_whole_deposit(market, usd, buyer, open_request, post, chain):
    request_id = open_request(budget=1_000 * USD, price=PRICE)
    post(request_id, 40_000, 150_000)
    r = market.getRequest(request_id)
    chain.mine(timestamp=r.end + market.settlementTimeout() + 1)
    before = usd.balanceOf(buyer.address)
    tx = market.expire(request_id, sender=buyer)
    assert [e.refund for e in tx.decode_logs(market.RequestExpired)] == [1_000 * USD]
    assert usd.balanceOf(buyer.address) - before == 1_000 * USD


# ------------------------------------------------------------------ availability (issue 14)

AVAILABILITY = 50_000  # the buyer's availability ceiling: 0.05 mUSD per kW per hour


@pytest.fixture
def open_with_availability(market, usd, buyer, chain):
    def do(budget: int = 1_000 * USD, availability: int = AVAILABILITY, lead: int = 600) -> int:
        usd.mint(buyer.address, budget, sender=buyer)
        usd.approve(market.address, budget, sender=buyer)
        start = chain.pending_timestamp + lead
        tx = market.openRequestWithAvailability(1, start, start + 3600, 50_000, PRICE, availability, usd.address,
                                                budget, sender=buyer)
        request_id = market.requestCount()
        assert [(e.requestId, e.availabilityPricePerKWh) for e in tx.decode_logs(market.RequestAvailability)] == [
            (request_id, availability)]
        return request_id

    return do


def test_a_request_that_pays_availability_records_its_ceiling(market, open_request, open_with_availability, buyer):
    paying = open_with_availability()
    assert market.availabilityPriceOf(paying) == AVAILABILITY
    assert market.availabilityPriceOf(open_request()) == 0  # openRequest pays no availability
    with reverts(market.ZeroPrice):  # "with availability" at 0 would be a plain request under another name
        market.openRequestWithAvailability(1, 10**10, 10**10 + 3600, 50_000, PRICE, 0, market.address, 1,
                                           sender=buyer)


def test_the_escrow_cap_adds_the_availability_price(market, open_with_availability, post):
    # 40 kW for 1 h: utilisation at 0.15 earns at most 6 mUSD, availability at 0.04 per kW·h adds 1.6 mUSD.
    request_id = open_with_availability()
    tx = post(request_id, 40_000, 150_000, availability_price=40_000)
    assert [e.availabilityPrice for e in tx.decode_logs(market.AllocationPosted)] == [40_000]
    assert market.getRequest(request_id).escrow == 6 * USD + 1_600_000


def test_availability_above_the_ceiling_or_on_a_request_without_it_is_refused(
        market, open_request, open_with_availability, post):
    paying = open_with_availability()
    with reverts(market.AvailabilityAboveCeiling, requestId=paying, availabilityPrice=AVAILABILITY + 1,
                 ceiling=AVAILABILITY):
        post(paying, 40_000, 150_000, availability_price=AVAILABILITY + 1)
    plain = open_request()
    with reverts(market.AvailabilityAboveCeiling, requestId=plain, availabilityPrice=1, ceiling=0):
        post(plain, 40_000, 150_000, availability_price=1)
