"""Every refusal of buyer.checks, pure, plus the token checks against a real anvil deployment, and the
sizing rule. Each refusal must name what was wrong."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buyer.checks import (BuyerError, MarketRules, check_availability, check_order, format_units, kw_to_watts,
                          make_order, max_payment, parse_time, to_base_units)
from buyer.token import inspect_token
from buyer.views import average_w, size_from_supply

TOKEN = "0x" + "ab" * 20
RULES = MarketRules(now=1_000_000, min_duration=900, max_duration=86_400, gate_lead=600)


def order(**overrides):
    fields = dict(zone=1, start=1_003_600, end=1_007_200, target_w=5_000, price_per_kwh=300_000, token=TOKEN,
                  budget=1_500_000)
    fields.update(overrides)
    return make_order(**fields)


def refused(message: str, **overrides) -> None:
    with pytest.raises(BuyerError, match=message):
        check_order(order(**{k: v for k, v in overrides.items() if k not in ("balance", "rules", "gas")}),
                    overrides.get("rules", RULES), 6, "mUSD", overrides.get("balance", 10**12),
                    overrides.get("gas", 10**18))


def test_a_good_order_passes():
    check_order(order(), RULES, 6, "mUSD", 1_500_000, 1)


def test_window_in_the_past():
    refused(r"starts in the past: start 999999 is not after the chain's time 1000000", start=999_999, end=1_003_600)
    refused(r"starts in the past", start=1_000_000, end=1_003_600)


def test_gate_already_closed():
    # starts in the future, but inside the gate lead (600 s)
    refused(r"gate has already closed: commitments close 600 s before the start, at 1000000.*start after 1000600",
            start=1_000_600, end=1_004_200)


def test_end_not_after_start():
    refused(r"ends before it starts: end 1003600 is not after start 1003600", end=1_003_600)


def test_duration_out_of_range():
    refused(r"lasts 60 s; this market takes 900 to 86400 s", end=1_003_660)
    refused(r"lasts 90000 s", end=1_003_600 + 90_000)


def test_zero_target_price_budget():
    refused(r"--target-kw must be above 0", target_w=0)
    refused(r"--max-price-per-kwh must be above 0", price_per_kwh=0)
    refused(r"--budget must be above 0", budget=0)


def test_budget_below_target_times_duration_times_price_says_both_numbers():
    # 5 kW x 1 h x 0.30 = 1.5 mUSD; one base unit less is refused
    refused(r"budget 1.499999 mUSD is below what the request can pay: 5 kW x 1 h x 0.3 mUSD/kWh = 1.5 mUSD",
            budget=1_499_999)


def test_balance_below_budget():
    refused(r"the buyer holds 1 mUSD, below the budget 1.5 mUSD", balance=1_000_000)


def test_no_gas_money():
    refused(r"the buyer has no ETH to pay gas", gas=0)


def test_paused_market():
    refused(r"paused", rules=MarketRules(1_000_000, 900, 86_400, 600, paused=True))


def test_availability_price_is_refused_not_ignored_where_the_market_pays_none():
    check_availability(None, False)
    check_availability(10_000, True)
    with pytest.raises(BuyerError, match="not supported by this market yet"):
        check_availability(10_000, False)
    with pytest.raises(BuyerError, match="must be above 0"):
        check_availability(0, True)
    refused("not supported by this market yet", availability_price=10_000)
    paying = MarketRules(1_000_000, 900, 86_400, 600, pays_availability=True)
    check_order(order(availability_price=50_000, budget=1_750_000), paying, 6, "mUSD", 10**12, 1)
    # 5 kW x 1 h x (0.30 + 0.05) = 1.75 mUSD
    refused(r"x \(0.3 mUSD/kWh \+ 0.05 mUSD/kW·h availability\) = 1.75 mUSD", rules=paying,
            availability_price=50_000, budget=1_749_999)


def test_bad_fields_of_an_order_name_the_field():
    with pytest.raises(BuyerError, match="token"):
        order(token="0x1234")
    with pytest.raises(BuyerError, match="zone"):
        order(zone=2**32)


@pytest.mark.parametrize("text, message", [
    ("2026-12-02T18:00", "has no timezone"),
    ("tomorrow", "neither unix seconds nor an ISO 8601 time"),
    ("0", "out of range"),
    ("1" * 100, "too long"),
    ("", "empty"),
])
def test_bad_times(text, message):
    with pytest.raises(BuyerError, match=message):
        parse_time(text, "--start")


def test_times_iso_and_unix():
    assert parse_time("2026-12-02T18:00:00Z") == 1_796_234_400
    assert parse_time("2026-12-02T19:00:00+01:00") == 1_796_234_400
    assert parse_time("1796234400") == 1_796_234_400


@pytest.mark.parametrize("text, message", [
    ("0.3000001", "more decimals than the token's 6"),
    ("-1", "not a plain non-negative decimal"),
    ("1e3", "not a plain non-negative decimal"),
    ("NaN", "not a plain non-negative decimal"),
    ("1,5", "not a plain non-negative decimal"),
])
def test_bad_amounts(text, message):
    with pytest.raises(BuyerError, match=message):
        to_base_units(text, 6, "--budget")


def test_amounts_are_exact():
    assert to_base_units("0.30", 6, "x") == 300_000
    assert to_base_units("1234567.000001", 6, "x") == 1_234_567_000_001
    assert to_base_units("0.1", 18, "x") == 10**17  # a float would give 100000000000000005...
    assert kw_to_watts("37.4") == 37_400
    with pytest.raises(BuyerError, match="finer than 1 W"):
        kw_to_watts("1.0005")


@given(st.integers(min_value=0, max_value=2**128), st.integers(min_value=0, max_value=30))
def test_format_and_parse_round_trip(amount, decimals):
    assert to_base_units(format_units(amount, decimals), decimals, "x") == amount


@given(st.integers(1, 2**40), st.integers(1, 7 * 86_400), st.integers(1, 10**12))
def test_max_payment_is_the_contract_cap_and_never_above_exact(target_w, seconds, price):
    most = max_payment(target_w, seconds, price)
    assert most == target_w * seconds * price // 3_600_000  # FlexMarket.recordAllocation's cap
    assert Decimal(most) <= Decimal(target_w) / 1000 * Decimal(seconds) / 3600 * Decimal(price)


def test_size_from_supply():
    curve = [(100_000, 4_000), (200_000, 10_000), (300_000, 12_000)]
    assert size_from_supply(curve, 250_000) == 8_000  # 80 % of the 10 kW at or below 0.25
    assert size_from_supply(curve, 300_000, 5_000) == 6_000
    assert size_from_supply(curve, 99_999) == 0
    assert size_from_supply([], 10**6) == 0
    assert size_from_supply(curve, 250_000, 8_000, 5_000) == 4_000  # half the sites held out: half of 8 kW
    with pytest.raises(ValueError):
        size_from_supply(curve, 1, 8_000, 10_000)  # a market that holds out every site accepts nothing
    with pytest.raises(ValueError):
        size_from_supply(curve, 1, 10_001)


@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)), max_size=30),
       st.integers(0, 10**9), st.integers(0, 10_000))
def test_size_never_exceeds_the_supply_at_the_price(curve, price, share):
    size = size_from_supply(curve, price, share)
    at_price = [w for p, w in curve if p <= price]
    assert 0 <= size <= max(at_price, default=0)
    assert size_from_supply(curve, price + 1, share) >= size  # a higher price never sizes smaller


def test_average_power():
    assert average_w(5_000, 3_600) == 5_000
    assert average_w(2_500, 1_800) == 5_000
    assert average_w(1, 0) == 0


def test_buyer_imports_only_protocol():
    """The buyer is a role: it talks to the others over the chain and HTTP, never by import."""
    root = Path(__file__).resolve().parents[2]
    crossing = []
    for path in (root / "buyer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            crossing += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("oracle", "node", "api", "negawatt",
                                                                                   "bench")]
    assert not crossing


# ---------------------------------------------------------------- tokens on a real chain


def test_token_checks_on_anvil(devnet):
    web3, manifest = devnet.web3(), devnet.manifest()
    buyer = web3.eth.account.from_key(devnet.keys[2]).address
    market = manifest.address("FlexMarket")
    with pytest.raises(BuyerError, match="no contract at that address"):
        inspect_token(web3, web3.eth.account.from_key(devnet.keys[7]).address, buyer, market)
    with pytest.raises(BuyerError, match=r"has no decimals\(\), it is not an ERC-20"):
        inspect_token(web3, market, buyer, market)
    with pytest.raises(BuyerError, match="is not an address"):
        inspect_token(web3, "mUSD", buyer, market)
    musd = inspect_token(web3, manifest.address("MockStablecoin"), buyer, market)
    assert (musd.decimals, musd.symbol, musd.balance, musd.allowance) == (6, "mUSD", 0, 0)
    assert musd.has_permit and musd.permit_domain["name"] == "Mock USD"
    assert musd.permit_domain["chainId"] == manifest.chainId


def test_open_request_checks_first_then_opens(devnet):
    from buyer.market import open_request
    from protocol.chain import Transactor

    web3, manifest = devnet.web3(), devnet.manifest()
    key = bytes.fromhex(devnet.keys[2][2:])
    buyer = web3.eth.account.from_key(key).address
    musd = manifest.contract(web3, "MockStablecoin")
    Transactor(web3, key).send(musd.functions.mint(buyer, 3_000_000))
    nonce = web3.eth.get_transaction_count(buyer)
    start = int(web3.eth.get_block("latest")["timestamp"]) + 3_600
    args = dict(zone=3, start=start, end=start + 1_800, target_w=4_000, price_per_kwh=500_000, token=musd.address)
    with pytest.raises(BuyerError, match=r"below what the request can pay: 4 kW x 0.5 h x 0.5 mUSD/kWh = 1 mUSD"):
        open_request(web3, manifest, key, **args, budget=999_999)
    with pytest.raises(BuyerError, match="the buyer 0x[0-9a-fA-F]{40} holds 3 mUSD, below the budget 4 mUSD"):
        open_request(web3, manifest, key, **args, budget=4_000_000)
    assert web3.eth.get_transaction_count(buyer) == nonce
    assert open_request(web3, manifest, key, **args, budget=1_000_000) == 1
    market = manifest.contract(web3, "FlexMarket")
    assert tuple(market.functions.getRequest(1).call()[6:10]) == (3, 4_000, 500_000, 1_000_000)


def test_a_fraction_of_a_second_is_refused():
    with pytest.raises(BuyerError, match="not a whole second"):
        parse_time("2030-01-01T18:00:00.5Z")
