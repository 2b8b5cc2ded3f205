"""Every refusal the buyer gets before a transaction is sent, each a one-line reason.

The rule: a request that the market would revert, or that could pay more than its escrow, is refused
here, before the first transaction (so nothing is sent and no gas is spent). The checks are pure
(numbers in, BuyerError out); `buyer.market` reads the chain's clock, the market's rules and the
token, then calls `check_order`. Amounts are decimal strings converted exactly with the token's
decimals (Decimal, never float; more decimals than the token has are refused); power is given in kW
and kept in integer W (at most 3 decimals); times are ISO 8601 with a timezone, or unix seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, Field, ValidationError, field_validator

from protocol.instants import InstantError, parse_instant
from protocol.units import SECONDS_PER_HOUR, W_PER_KW, format_units  # noqa: F401  (re-exported for the buyer CLI)

MAX_TEXT = 64  # longest amount, power or time argument read (bounded before parsing)
UINT32 = 2**32 - 1
UINT40 = 2**40 - 1
UINT64 = 2**64 - 1
UINT128 = 2**128 - 1
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")


class BuyerError(ValueError):
    """A buyer's command was refused; the message says what was wrong (nothing was sent)."""


def _bounded(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise BuyerError(f"{what}: expected text, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise BuyerError(f"{what} is empty")
    if len(text) > MAX_TEXT:
        raise BuyerError(f"{what} is too long ({len(text)} characters, at most {MAX_TEXT})")
    return text


def parse_time(text: str, what: str = "time") -> int:
    """Unix seconds of `text`: digits (unix seconds) or ISO 8601 with a timezone ("2026-12-02T18:00Z"),
    by protocol.instants' rules (a time without a timezone is refused, since it would mean a different
    instant on each machine)."""
    try:
        return parse_instant(text, what)
    except InstantError as error:
        raise BuyerError(str(error)) from None


def parse_decimal(text: str, what: str) -> Decimal:
    """A non-negative decimal number written plainly ("0.30", "12"); exponents, signs and
    non-finite values are refused."""
    text = _bounded(text, what)
    if not _NUMBER.fullmatch(text):
        raise BuyerError(f"{what} {text!r} is not a plain non-negative decimal number")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise BuyerError(f"{what} {text!r} is not a decimal number") from None


def _scaled(text: str, decimals: int, what: str) -> int | None:
    """`text` x 10 ** decimals as an integer, by exact digit arithmetic (a Decimal context would round
    past 28 digits); None when `text` has more significant decimals than `decimals`."""
    value = parse_decimal(text, what)
    whole, _, fraction = format(value, "f").partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > decimals:
        return None
    return int(whole or "0") * 10**decimals + int(fraction.ljust(decimals, "0") or "0")


def to_base_units(text: str, decimals: int, what: str) -> int:
    """`text` token units as base units, exactly (10 ** decimals per unit); refuses more decimals than
    the token has, since the amount could not be paid as written."""
    scaled = _scaled(text, decimals, what)
    if scaled is None:
        raise BuyerError(f"{what} {text} has more decimals than the token's {decimals}")
    return scaled


def kw_to_watts(text: str, what: str = "--target-kw") -> int:
    """`text` kW as integer W, exactly; refuses more than 3 decimals (power is counted in W)."""
    scaled = _scaled(text, 3, what)
    if scaled is None:
        raise BuyerError(f"{what} {text} is finer than 1 W (at most 3 decimals of kW)")
    return scaled


def format_kw(watts: int) -> str:
    """Integer W as kW, exactly ("37.4 kW")."""
    return format_units(watts, 3, "kW")


def max_payment(target_w: int, seconds: int, price_per_kwh: int, availability_per_kwh: int = 0) -> int:
    """The most a request of `target_w` for `seconds` at ceiling `price_per_kwh` (plus, when it pays
    availability, `availability_per_kwh` per kW per hour) can be asked to pay, in base units, rounded
    down as FlexMarket.recordAllocation caps the escrow."""
    return target_w * seconds * (price_per_kwh + availability_per_kwh) // (SECONDS_PER_HOUR * W_PER_KW)


@dataclass(frozen=True)
class MarketRules:
    """What the chain says when the order is checked: the earliest timestamp a transaction sent now
    can be mined at, and FlexMarket's window bounds and gate lead (seconds)."""

    now: int
    min_duration: int
    max_duration: int
    gate_lead: int
    paused: bool = False
    pays_availability: bool = False  # the market has openRequestWithAvailability


class OpenOrder(BaseModel):
    """A request as the buyer asks for it, in the units openRequest takes."""

    zone: int = Field(ge=0, le=UINT32)
    start: int = Field(ge=0, le=UINT40)
    end: int = Field(ge=0, le=UINT40)
    target_w: int = Field(ge=0, le=UINT64)
    price_per_kwh: int = Field(ge=0, le=UINT128, description="the buyer's ceiling, base units per kWh")
    token: str = Field(max_length=42)
    budget: int = Field(ge=0, le=UINT128, description="escrowed at opening, base units")
    availability_price: int | None = Field(None, ge=0, le=UINT128,
                                           description="ceiling per kW of accepted power per hour; None: none")

    @field_validator("token")
    @classmethod
    def _address(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError(f"{value!r} is not an address")
        return to_checksum_address(value)


def make_order(**fields: object) -> OpenOrder:
    """An OpenOrder from raw values; raises BuyerError naming the first bad field."""
    try:
        return OpenOrder(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "order"
        raise BuyerError(f"{where}: {first['msg']}") from None


def check_availability(price: int | str | None, supported: bool) -> None:
    """An availability price is refused, not dropped, by a market that does not pay availability (a
    FlexMarket without openRequestWithAvailability); where it is paid it must be above 0."""
    if price is None:
        return
    if not supported:
        raise BuyerError("--availability-price-per-kw-h is not supported by this market yet: this FlexMarket pays "
                         "delivered energy only; leave it out")
    if isinstance(price, int) and price <= 0:
        raise BuyerError("--availability-price-per-kw-h must be above 0 (leave it out to pay no availability)")


def check_window(start: int, end: int, rules: MarketRules) -> None:
    """The window starts in the future, its gate (start - gate lead) has not closed, it ends after it
    starts and its duration is within the market's bounds."""
    if start <= rules.now:
        raise BuyerError(f"the window starts in the past: start {start} is not after the chain's time {rules.now}")
    gate = start - rules.gate_lead if start > rules.gate_lead else 0
    if gate <= rules.now:
        raise BuyerError(f"the gate has already closed: commitments close {rules.gate_lead} s before the start, at "
                         f"{gate}, and the chain's time is {rules.now}; start after {rules.now + rules.gate_lead}")
    if end <= start:
        raise BuyerError(f"the window ends before it starts: end {end} is not after start {start}")
    duration = end - start
    if not rules.min_duration <= duration <= rules.max_duration:
        raise BuyerError(f"the window lasts {duration} s; this market takes {rules.min_duration} to "
                         f"{rules.max_duration} s")


def check_amounts(target_w: int, price_per_kwh: int, budget: int) -> None:
    """Target, price and budget are positive."""
    if target_w <= 0:
        raise BuyerError(f"--target-kw must be above 0 (got {format_kw(target_w)})")
    if price_per_kwh <= 0:
        raise BuyerError("--max-price-per-kwh must be above 0")
    if budget <= 0:
        raise BuyerError("--budget must be above 0")


def check_budget(order: OpenOrder, decimals: int, symbol: str) -> None:
    """The budget covers the most the request can pay: target kW x duration h x ceiling price."""
    seconds = order.end - order.start
    availability = order.availability_price or 0
    most = max_payment(order.target_w, seconds, order.price_per_kwh, availability)
    if order.budget < most:
        hours = format_units(seconds * 1000 // SECONDS_PER_HOUR, 3)
        price = f"{format_units(order.price_per_kwh, decimals, symbol)}/kWh"
        if availability:
            price = f"({price} + {format_units(availability, decimals, symbol)}/kW·h availability)"
        raise BuyerError(
            f"budget {format_units(order.budget, decimals, symbol)} is below what the request can pay: "
            f"{format_kw(order.target_w)} x {hours} h x {price} = {format_units(most, decimals, symbol)}")


ETH_DECIMALS = 18
OPEN_GAS = 600_000  # gas units opening takes at most: a permit or approval, then openRequestWithAvailability
_DEVNET_FLAGS = {"mUSD": "--musd", "NEGA": "--nega"}  # the devnet faucet's flag for a token's symbol


def gas_needed(gas_price: int) -> int:
    """Wei the buyer needs to open a request at `gas_price` (OPEN_GAS units, a bound, not an estimate)."""
    return OPEN_GAS * gas_price


def check_balance(balance: int, budget: int, decimals: int, symbol: str, buyer: str | None = None,
                  gas_balance: int | None = None, gas_wei: int = 0) -> None:
    """The buyer holds the budget it escrows and the ether its two transactions cost. A shortfall is
    one line naming the buyer's address, what it holds and what it needs, in token units, and how
    to fund it on a devnet (`negawatt devnet fund`)."""
    short: list[str] = []
    flags: list[str] = []
    if balance < budget:
        short.append(f"holds {format_units(balance, decimals, symbol)}, below the budget "
                     f"{format_units(budget, decimals, symbol)} (needs {format_units(budget - balance, decimals, symbol)} "
                     "more)")
        if symbol in _DEVNET_FLAGS:
            flags.append(f"{_DEVNET_FLAGS[symbol]} {format_units(budget - balance, decimals)}")
    if gas_balance is not None and (gas_balance == 0 or gas_balance < gas_wei):
        short.append(f"has {format_units(gas_balance, ETH_DECIMALS, 'ETH')} for gas, below the "
                     f"{format_units(gas_wei, ETH_DECIMALS, 'ETH')} opening can cost" if gas_wei
                     else "has no ETH to pay gas")
        flags.append(f"--eth {max(1, -(-(gas_wei - gas_balance) // 10**ETH_DECIMALS))}")
    if not short:
        return
    who = f"the buyer {buyer}" if buyer else "the buyer"
    fix = f"; send it the difference, or on a devnet run `negawatt devnet fund {buyer or 'ADDRESS'} " \
          f"{' '.join(flags)} --run-dir RUN_DIR`" if flags else "; send it the difference"
    raise BuyerError(f"{who} {' and '.join(short)}{fix}")


def check_order(order: OpenOrder, rules: MarketRules, decimals: int, symbol: str, balance: int,
                gas_balance: int | None = None, buyer: str | None = None, gas_wei: int = 0) -> None:
    """All the checks of one order, in the order a buyer would fix them; raises the first failure
    (the budget's token and the gas money are checked together, so one line names both)."""
    if rules.paused:
        raise BuyerError("FlexMarket is paused: no request can be opened now")
    check_availability(order.availability_price, rules.pays_availability)
    check_amounts(order.target_w, order.price_per_kwh, order.budget)
    check_window(order.start, order.end, rules)
    check_budget(order, decimals, symbol)
    check_balance(balance, order.budget, decimals, symbol, buyer, gas_balance, gas_wei)
