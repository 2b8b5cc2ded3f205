"""Business Logic -> market: a program names a zone and a price ceiling, an event becomes one
FlexMarket request escrowed from the buyer key bound to the BL client, and deleting the event
cancels the request while FlexMarket still allows it.

The mapping (vtn/README.md has it with examples):

- A program carries the attributes `NEGAWATT_ZONE` ([int]) and `NEGAWATT_PRICE_CEILING` ([decimal
  text or number]: the most paid per kWh, in units of the facade's payment token), and optionally
  `NEGAWATT_REFERENCE_IMPORT_KW` ([number]: the DSO's expected import of the zone, which turns an
  import limit into a reduction). The facade adds the market's rules it runs under, read from
  FlexMarket: `NEGAWATT_HOLDOUT_BPS`, `NEGAWATT_GATE_LEAD_SECONDS`, `NEGAWATT_PAYMENT_TOKEN`.
- An event has an interval period (the event's, or each interval's) and, in every interval, one
  payload of a supported type with one value in kW: `DISPATCH_SETPOINT_RELATIVE` (negative: reduce
  by that much) or `IMPORT_CAPACITY_LIMIT` (reduce to that import: reference - limit, which needs
  the program's reference import). The intervals must be contiguous and ask the same reduction:
  the event becomes one request over their whole window, target = that reduction, ceiling = the
  program's, budget = target x hours x ceiling (the most it can pay, so the escrow always covers it).
- Before anything is sent the order is checked against the chain (its clock, pause, the gate, the
  duration bounds) and the buyer's token balance and ether; a refusal is a MarketError (a 400 or
  409 problem) and no transaction. Then the facade sends what `negawatt buyer open` sends when the
  token takes no permit: `approve` (only when the allowance is short), then `openRequest`.

This module talks to the contracts through protocol.chain and protocol.manifest only: the facade is
a role of its own and does not import buyer/ (which holds the same two calls for the CLI).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_account import Account
from eth_utils import is_address, to_checksum_address

from protocol.chain import ChainError, Transactor
from protocol.events import EventDecoder
from protocol.manifest import Manifest
from protocol.statuses import RequestStatus
from protocol.units import SECONDS_PER_HOUR, W_PER_KW

log = logging.getLogger(__name__)

ZONE = "NEGAWATT_ZONE"
PRICE_CEILING = "NEGAWATT_PRICE_CEILING"
REFERENCE_IMPORT = "NEGAWATT_REFERENCE_IMPORT_KW"
RELATIVE = "DISPATCH_SETPOINT_RELATIVE"
IMPORT_LIMIT = "IMPORT_CAPACITY_LIMIT"
SUPPORTED_PAYLOADS = (RELATIVE, IMPORT_LIMIT)
OPEN_GAS = 600_000  # gas units an approval and openRequest take at most (a bound, not an estimate)
MAX_ZONE = 2**32 - 1
MAX_KW = Decimal(10**9)

_ERC20_ABI = [
    {"type": "function", "name": n, "stateMutability": m, "inputs": [{"name": a, "type": t} for a, t in i],
     "outputs": [{"name": "", "type": o} for o in out]}
    for n, m, i, out in (
        ("decimals", "view", [], ["uint8"]), ("symbol", "view", [], ["string"]),
        ("balanceOf", "view", [("a", "address")], ["uint256"]),
        ("allowance", "view", [("o", "address"), ("s", "address")], ["uint256"]),
        ("approve", "nonpayable", [("s", "address"), ("v", "uint256")], ["bool"]))
]


class MarketError(ValueError):
    """An event (or program) the market cannot take; nothing was sent. `status` is the HTTP status."""

    def __init__(self, detail: str, status: int = 400):
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True)
class ProgramTerms:
    """What a program fixes for its events."""

    zone: int
    price_per_kwh: int  # base units of the payment token
    reference_import_w: int | None


@dataclass(frozen=True)
class Order:
    """One request as openRequest takes it."""

    zone: int
    start: int
    end: int
    target_w: int
    price_per_kwh: int

    @property
    def budget(self) -> int:
        """The most the request can pay (FlexMarket caps the escrow at this after the clearing)."""
        return self.target_w * (self.end - self.start) * self.price_per_kwh // (SECONDS_PER_HOUR * W_PER_KW)


def _single(values: list[Any] | None, name: str) -> Any:
    if not values or len(values) != 1:
        raise MarketError(f"the program needs the attribute {name} with exactly one value")
    return values[0]


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MarketError(f"{what} must be a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise MarketError(f"{what} {str(value)[:40]!r} is not a number") from None
    if not number.is_finite() or number < 0 or number > MAX_KW * 10**9:
        raise MarketError(f"{what} {str(value)[:40]!r} is out of range")
    return number


def _to_base_units(value: Decimal, decimals: int, what: str) -> int:
    scaled = value * (Decimal(10) ** decimals)
    if scaled != scaled.to_integral_value():
        raise MarketError(f"{what} has more decimals than the payment token's {decimals}")
    return int(scaled)


def program_terms(attributes: list[dict] | None, decimals: int) -> ProgramTerms:
    """The zone, ceiling and reference import a program's attributes give; MarketError if unusable."""
    from vtn.models import attribute

    zone = _single(attribute(attributes, ZONE), ZONE)
    if isinstance(zone, bool) or not isinstance(zone, int) or not 0 <= zone <= MAX_ZONE:
        raise MarketError(f"{ZONE} must be an integer from 0 to {MAX_ZONE}")
    price = _to_base_units(_decimal(_single(attribute(attributes, PRICE_CEILING), PRICE_CEILING), PRICE_CEILING),
                           decimals, PRICE_CEILING)
    if price <= 0:
        raise MarketError(f"{PRICE_CEILING} must be above 0")
    reference = attribute(attributes, REFERENCE_IMPORT)
    reference_w = None
    if reference is not None:
        reference_w = int(_decimal(_single(reference, REFERENCE_IMPORT), REFERENCE_IMPORT) * W_PER_KW)
    return ProgramTerms(zone, price, reference_w)


def _seconds(moment: Any) -> int:
    stamp = moment.timestamp()
    if stamp != int(stamp):
        raise MarketError("interval times must be whole seconds")
    return int(stamp)


def _kw_to_w(value: Any, units: str | None) -> int:
    number = Decimal(str(value)) if not isinstance(value, bool) and isinstance(value, (int, float)) else None
    if number is None or not number.is_finite() or abs(number) > MAX_KW:
        raise MarketError("each interval's payload needs one numeric value in kW")
    watts = number if (units or "KW").upper() == "W" else number * W_PER_KW
    return int(watts)


def event_order(event: Any, terms: ProgramTerms) -> Order:
    """The request an event (vtn.models.EventIn) asks for under `terms`; MarketError if unsupported."""
    if not event.intervals:
        raise MarketError("the event has no intervals: it needs at least one with a payload")
    units = None
    for descriptor in event.payload_descriptors or []:
        if descriptor.payload_type in SUPPORTED_PAYLOADS and descriptor.units:
            units = descriptor.units
    windows: list[tuple[int, int, int]] = []
    kinds = set()
    for position, interval in enumerate(sorted(event.intervals, key=lambda item: item.id)):
        period = interval.interval_period or event.interval_period
        if period is None:
            raise MarketError("the event has no interval period (neither the event's nor the interval's)")
        if period.duration <= timedelta(0):
            raise MarketError("an interval's duration must be above zero")
        start = _seconds(period.start) + (0 if interval.interval_period else position * int(
            period.duration.total_seconds()))
        end = start + int(period.duration.total_seconds())
        supported = [p for p in interval.payloads if p.type in SUPPORTED_PAYLOADS]
        if len(supported) != 1 or len(supported[0].values) != 1:
            found = ", ".join(sorted({p.type for p in interval.payloads}))[:200]
            raise MarketError(f"unsupported payload ({found}): each interval needs one {RELATIVE} or {IMPORT_LIMIT} "
                              "payload with one value in kW")
        payload = supported[0]
        kinds.add(payload.type)
        value_w = _kw_to_w(payload.values[0], units)
        if payload.type == RELATIVE:
            target = -value_w
        else:
            if terms.reference_import_w is None:
                raise MarketError(f"unsupported payload: {IMPORT_LIMIT} needs the program's {REFERENCE_IMPORT} "
                                  "(the zone's expected import) to become a reduction")
            target = terms.reference_import_w - value_w
        windows.append((start, end, target))
    if len(kinds) > 1:
        raise MarketError("unsupported payload: mix of payload types in one event")
    for (_, end, _), (start, _, _) in zip(windows, windows[1:]):
        if start != end:
            raise MarketError("the intervals must be contiguous: one event is one request over one window")
    targets = {target for _, _, target in windows}
    if len(targets) != 1:
        raise MarketError("every interval must ask the same reduction: one event is one request with one target")
    target = targets.pop()
    if target <= 0:
        raise MarketError("the event asks no reduction: a relative setpoint must be negative, an import limit "
                          "below the program's reference import")
    return Order(terms.zone, windows[0][0], windows[-1][1], target, terms.price_per_kwh)


class Market:
    """FlexMarket and the payment token, reached with web3.py (no Ape)."""

    def __init__(self, web3: Any, manifest: Manifest, token: str):
        self.web3 = web3
        self.manifest = manifest
        self.flex = manifest.contract(web3, "FlexMarket")
        address = token if is_address(token) else manifest.address(token)
        self.token = web3.eth.contract(address=to_checksum_address(address), abi=_ERC20_ABI)
        self.decimals = int(self.token.functions.decimals().call())
        self.symbol = str(self.token.functions.symbol().call())
        self._lock = threading.Lock()

    def now(self) -> int:
        """The earliest timestamp a transaction sent now can be mined at."""
        return int(self.web3.eth.get_block("latest")["timestamp"]) + 1

    def rules(self) -> dict[str, int | str]:
        """The market's rules a program runs under (the facade adds them to every program)."""
        f = self.flex.functions
        return {"NEGAWATT_HOLDOUT_BPS": int(f.holdoutBps().call()),
                "NEGAWATT_GATE_LEAD_SECONDS": int(f.gateLeadSeconds().call()),
                "NEGAWATT_PAYMENT_TOKEN": self.token.address}

    def check(self, order: Order, buyer: str) -> None:
        """Refuse, before sending, an order FlexMarket would revert or the buyer cannot pay."""
        f = self.flex.functions
        now = self.now()
        if bool(f.paused().call()):
            raise MarketError("FlexMarket is paused: no request can be opened now", 409)
        if order.start <= now:
            raise MarketError(f"the window is in the past: it starts at {order.start}, the chain's time is {now}")
        lead = int(f.gateLeadSeconds().call())
        if order.start - lead <= now:
            raise MarketError(f"the gate has closed: offers close {lead} s before the start; start after {now + lead}")
        duration = order.end - order.start
        low, high = int(f.minDuration().call()), int(f.maxDuration().call())
        if not low <= duration <= high:
            raise MarketError(f"the window lasts {duration} s; this market takes {low} to {high} s")
        if order.budget <= 0:
            raise MarketError("the request would escrow nothing: raise the reduction or the program's ceiling")
        balance = int(self.token.functions.balanceOf(buyer).call())
        if balance < order.budget:
            raise MarketError(f"no budget: the buyer {buyer} holds {balance} base units of {self.symbol}, the request "
                              f"escrows {order.budget}", 409)
        gas = OPEN_GAS * int(self.web3.eth.gas_price)
        if int(self.web3.eth.get_balance(buyer)) < gas:
            raise MarketError(f"the buyer {buyer} has too little ether for the two transactions ({gas} wei)", 409)

    def open(self, key: bytes, order: Order) -> int:
        """Check `order`, then approve (when the allowance is short) and openRequest; returns the id."""
        buyer = Account.from_key(key).address
        with self._lock:  # one buyer's transactions in order
            self.check(order, buyer)
            sender = Transactor(self.web3, key, abis=[self.flex.abi])
            allowance = int(self.token.functions.allowance(buyer, self.flex.address).call())
            try:
                if allowance < order.budget:
                    sender.send(self.token.functions.approve(self.flex.address, order.budget))
                receipt = sender.send(self.flex.functions.openRequest(order.zone, order.start, order.end,
                                                                      order.target_w, order.price_per_kwh,
                                                                      self.token.address, order.budget))
            except ChainError as error:
                raise MarketError(f"openRequest was refused: {error}", 409) from None
        decoder = EventDecoder.for_contract(self.flex, "FlexMarket", events=("RequestOpened",))
        for raw in receipt.logs:
            decoded = decoder.decode(raw)
            if decoded is not None:
                request_id = int(decoded.args["requestId"])
                log.info("request %d opened for %d W in zone %d by %s (%s)", request_id, order.target_w,
                         order.zone, buyer, receipt.tx_hash)
                return request_id
        raise MarketError("openRequest emitted no RequestOpened event", 500)  # pragma: no cover

    def request(self, request_id: int) -> dict[str, Any] | None:
        """FlexMarket.getRequest of one request, or None."""
        raw = self.flex.functions.getRequest(int(request_id)).call()
        (buyer, start, end, status, allocated, token, zone, target_w, price, escrow, deposited, paid) = raw
        if int(status) == RequestStatus.NONE.number:
            return None
        status_name = RequestStatus.from_number(int(status))
        refunded = deposited - paid - escrow if status_name in (RequestStatus.CANCELLED, RequestStatus.EXPIRED,
                                                                 RequestStatus.SETTLED) else 0
        return {"buyer": to_checksum_address(buyer), "start": int(start), "end": int(end),
                "status": status_name.value, "allocated": bool(allocated), "zone": int(zone),
                "targetW": int(target_w), "pricePerKWh": int(price), "escrow": int(escrow),
                "deposited": int(deposited), "paid": int(paid), "refunded": int(refunded)}

    def cancel(self, key: bytes, request_id: int) -> None:
        """Cancel the request, refused before sending when FlexMarket would revert."""
        request = self.request(request_id)
        if request is None:
            raise MarketError(f"request {request_id} does not exist", 404)
        if request["status"] != RequestStatus.OPEN.value:
            raise MarketError(f"request {request_id} is {request['status']}: only an open request can be cancelled",
                              409)
        if self.now() >= request["start"]:
            raise MarketError(f"request {request_id} has started: it can no longer be cancelled", 409)
        if request["allocated"]:
            raise MarketError(f"request {request_id} is allocated: the sites it accepted are committed, so it can "
                              "no longer be cancelled", 409)
        with self._lock:
            try:
                Transactor(self.web3, key, abis=[self.flex.abi]).send(self.flex.functions.cancel(int(request_id)))
            except ChainError as error:
                raise MarketError(f"cancel was refused: {error}", 409) from None
        log.info("request %d cancelled", request_id)
