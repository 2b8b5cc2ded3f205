"""What the buyer reads: a request's status (the chain's record, its allocation, and the API's
delivered energy with the 95 % interval, payout and refund), the buyer's requests, and a zone's
forecast supply with the sizing rule.

The rule of a status: the verdict line comes first ("requested X kW, accepted Y kW, delivered Z kW
(95 % CI a–b), paid P, refunded R"), built from the chain wherever the chain knows (status, escrow,
paid, refunded, the AllocationPosted event) and from the API only for what the chain does not hold
(delivered energy and its interval, a pending payout). Power over a window is the average:
Wh x 3600 / window seconds, in integer W. An API that is down is said, and the chain's view still
shown. Sizing from a supply curve: the watts available at or below the price, times a share.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from buyer.api_client import ApiRequest, ApiUnavailable, fetch_request, fetch_requests
from buyer.chain_view import Allocation, ChainRequest, availability_ceiling, opened_by, read_allocation, read_request
from buyer.checks import BuyerError, format_kw, format_units
from buyer.token import token_contract
from protocol.manifest import Manifest
from protocol.statuses import RequestStatus
from protocol.units import BPS, SECONDS_PER_HOUR


def size_from_supply(curve: list[tuple[int, int]], price: int, share_bps: int = 8000, holdout_bps: int = 0) -> int:
    """Watts to request at `price`: `share_bps` of the watts the supply curve offers at or below it,
    less the market's holdout share (`holdout_bps` of the sites are held out as the control group and
    never dispatched, so only the rest of the supply can be accepted).

    `curve` is (price per kWh in base units, watts available at or below that price) points, as the
    API's supply route serves them; the largest such figure at a price <= `price` counts (0 if none)."""
    if not 0 <= share_bps <= BPS:
        raise ValueError(f"share_bps must be within 0..{BPS}, got {share_bps}")
    if not 0 <= holdout_bps < BPS:
        raise ValueError(f"holdout_bps must be within 0..{BPS - 1}, got {holdout_bps}")
    available = max((int(watts) for point_price, watts in curve if int(point_price) <= price), default=0)
    return available * share_bps * (BPS - holdout_bps) // (BPS * BPS)


def average_w(wh: int, seconds: int) -> int:
    """The average power (W, rounded down) of `wh` over `seconds`."""
    return wh * SECONDS_PER_HOUR // seconds if seconds > 0 else 0


def token_label(web3: Any, token: str, cache: dict[str, tuple[int, str]] | None = None) -> tuple[int, str]:
    """(decimals, symbol) of a payment token; (0, "units") when it answers neither."""
    if cache is not None and token in cache:
        return cache[token]
    contract = token_contract(web3, token)
    try:
        label = (int(contract.functions.decimals().call()), str(contract.functions.symbol().call())[:16])
    except Exception:
        label = (0, "units")
    if cache is not None:
        cache[token] = label
    return label


def iso(seconds: int) -> str:
    """Unix seconds as ISO 8601 UTC ("2026-12-02T18:00:00Z")."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StatusView:
    """Everything `buyer status` shows of one request."""

    request: ChainRequest
    allocation: Allocation | None
    api: ApiRequest | None
    api_error: str | None
    decimals: int
    symbol: str
    availability_ceiling: int = 0  # per kW per hour; 0: the request pays no availability

    def money(self, amount: int) -> str:
        """Base units of the request's token, as text."""
        return format_units(amount, self.decimals, self.symbol)

    @property
    def accepted_w(self) -> int | None:
        """Accepted power: the chain's AllocationPosted, else the API's, else None (not cleared yet)."""
        if self.allocation is not None:
            return self.allocation.accepted_w
        return self.api.acceptedW if self.api is not None else None

    @property
    def clearing_price(self) -> int | None:
        """The uniform clearing price per kWh, when posted."""
        if self.allocation is not None:
            return self.allocation.clearing_price
        if self.api is not None and self.api.clearingPrice is not None:
            return int(self.api.clearingPrice)
        return None

    @property
    def delivered_w(self) -> int | None:
        """Average delivered power over the window (the settling report's delivered Wh), when known."""
        if self.api is None or self.api.deliveredWh is None:
            return None
        return average_w(self.api.deliveredWh, self.request.seconds)

    @property
    def ci_w(self) -> tuple[int, int] | None:
        """The portfolio estimate's 95 % interval as average W, when the report publishes one."""
        verification = self.api.verification if self.api is not None else None
        if verification is None or verification.ci95Wh is None:
            return None
        low, high = verification.ci95Wh
        return average_w(low, self.request.seconds), average_w(high, self.request.seconds)

    @property
    def pending_payout(self) -> int | None:
        """The payout a pending report claims (status settling), from the API."""
        if self.request.status == RequestStatus.SETTLING and self.api is not None and self.api.payout is not None:
            return int(self.api.payout)
        return None


def gather_status(web3: Any, manifest: Manifest, api_url: str | None, request_id: int,
                  timeout: float = 10.0) -> StatusView:
    """Read request `request_id` from the chain and, when `api_url` answers, the API."""
    market = manifest.contract(web3, "FlexMarket")
    request = read_request(market, request_id)
    if request is None:
        raise BuyerError(f"there is no request {request_id} on this chain")
    allocation = read_allocation(web3, manifest, market, request_id) if request.allocated else None
    api, error = None, None
    if api_url:
        try:
            api = fetch_request(api_url, request_id, timeout)
            if api is None:
                error = f"the API does not know request {request_id} yet (its indexer may be behind)"
        except ApiUnavailable as problem:
            error = str(problem)
    else:
        error = "no API URL given"
    decimals, symbol = token_label(web3, request.token)
    return StatusView(request, allocation, api, error, decimals, symbol, availability_ceiling(market, request_id))


def verdict(view: StatusView) -> str:
    """The first line of a status: requested, accepted, delivered (95 % CI), paid, refunded."""
    r = view.request
    parts = [f"request {r.request_id} ({r.status.value}): requested {format_kw(r.target_w)}"]
    accepted = view.accepted_w
    if accepted is None:
        parts.append("accepted — (not cleared yet)" if r.status == RequestStatus.OPEN else "accepted —")
    else:
        price = view.clearing_price
        text = f"accepted {format_kw(accepted)}" + (f" at {view.money(price)}/kWh" if price is not None else "")
        if view.allocation is not None and view.allocation.availability_price:
            text += f" + {view.money(view.allocation.availability_price)}/kW·h availability"
        parts.append(text)
    delivered = view.delivered_w
    verification = view.api.verification if view.api is not None else None
    if verification is not None and verification.rule == "none":
        # no estimate passed its quality gate: the delivery is not verified (a 0 here would read as
        # "measured nothing"), and nothing is paid for it
        reason = verification.fallbackReason or verification.error or "no estimate passed its quality gate"
        parts.append(f"delivered: not verified ({reason}), so not paid")
    elif delivered is None:
        parts.append("delivered — (not settled yet)" if r.status in (RequestStatus.OPEN, RequestStatus.SETTLING)
                     else "delivered —")
    else:
        ci = view.ci_w
        interval = f" (95 % CI {format_units(ci[0], 3)}–{format_kw(ci[1])})" if ci else ""
        parts.append(f"delivered {format_kw(delivered)}{interval}")
    paid = f"paid {view.money(r.paid)}"
    if view.pending_payout is not None:
        paid += f" ({view.money(view.pending_payout)} pending in a report)"
    parts.append(paid)
    parts.append(f"refunded {view.money(r.refunded)}")
    return ", ".join(parts)


def details(view: StatusView) -> list[str]:
    """The lines after the verdict: window, ceiling, escrow, allocation, verification, the API's state."""
    r = view.request
    lines = [f"zone {r.zone}, window {iso(r.start)} – {iso(r.end)} ({r.seconds} s), buyer {r.buyer}",
             f"ceiling {view.money(r.price_per_kwh)}/kWh in {r.token}" + (
                 f", availability ceiling {view.money(view.availability_ceiling)}/kW·h"
                 if view.availability_ceiling else ""),
             f"deposited {view.money(r.deposited)}, escrow now {view.money(r.escrow)} (the most it can still pay)"]
    if view.allocation is not None:
        lines.append(f"allocation root 0x{view.allocation.root.hex()}")
    verification = view.api.verification if view.api is not None else None
    if verification is not None:
        if verification.estimatedWh is not None:
            est = f"estimate {verification.estimatedWh} Wh"
            if verification.ci95Wh:
                est += f" (95 % CI {verification.ci95Wh[0]}–{verification.ci95Wh[1]} Wh)"
            lines.append(f"{est}, rule {verification.rule or '?'}, estimator {verification.estimator or '?'}")
        if verification.fallbackReason:
            lines.append(f"fallback: {verification.fallbackReason}")
        if verification.error:
            lines.append(f"no estimate: {verification.error}")
        if verification.siteCount is not None:
            lines.append(f"sites {verification.siteCount}: {verification.dispatchedSites} dispatched, "
                         f"{verification.heldOutSites} held out; paid for {verification.paidWh} Wh")
    if view.api is not None and view.api.deliveredWh is not None:
        lines.append(f"delivered {view.api.deliveredWh} Wh (settling report)")
    if view.api_error:
        lines.append(f"API: {view.api_error}; shown: the chain's view")
    return lines


def status_json(view: StatusView) -> dict[str, Any]:
    """The status as one JSON object (amounts as decimal strings of base units, power in W)."""
    r = view.request
    ci = view.ci_w
    return {
        "requestId": r.request_id, "status": r.status.value, "buyer": r.buyer, "zone": r.zone,
        "start": r.start, "end": r.end, "token": r.token, "decimals": view.decimals, "symbol": view.symbol,
        "requestedW": r.target_w, "acceptedW": view.accepted_w,
        "clearingPrice": None if view.clearing_price is None else str(view.clearing_price),
        "allocationRoot": None if view.allocation is None else "0x" + view.allocation.root.hex(),
        "ceilingPerKWh": str(r.price_per_kwh), "availabilityCeiling": str(view.availability_ceiling),
        "availabilityPrice": None if view.allocation is None else str(view.allocation.availability_price),
        "deposited": str(r.deposited), "escrow": str(r.escrow),
        "paid": str(r.paid), "refunded": str(r.refunded),
        "pendingPayout": None if view.pending_payout is None else str(view.pending_payout),
        "deliveredW": view.delivered_w, "deliveredWh": None if view.api is None else view.api.deliveredWh,
        "ci95W": list(ci) if ci else None,
        "verification": None if view.api is None or view.api.verification is None
        else view.api.verification.model_dump(),
        "api": None if view.api_error else "ok", "apiError": view.api_error,
        "verdict": verdict(view),
    }


@dataclass(frozen=True)
class ListedRequest:
    """One line of `buyer list`."""

    request_id: int
    status: str
    zone: int
    start: int
    end: int
    target_w: int
    price_per_kwh: int
    budget: int
    token: str
    accepted_w: int | None = None


def list_requests(web3: Any, manifest: Manifest, api_url: str | None, buyer: str,
                  timeout: float = 10.0) -> tuple[list[ListedRequest], str | None]:
    """The buyer's requests, newest first, from the API, or from the chain's RequestOpened events when the
    API cannot answer; returns (requests, why the API was not used or None)."""
    if api_url:
        try:
            items = fetch_requests(api_url, buyer, timeout)
            return [ListedRequest(i.id, i.status, i.zone, i.start, i.end, i.targetW, int(i.pricePerKWh),
                                  int(i.maxBudget), i.paymentToken, i.acceptedW) for i in items], None
        except ApiUnavailable as error:
            reason = str(error)
    else:
        reason = "no API URL given"
    market = manifest.contract(web3, "FlexMarket")
    found = []
    for request_id in reversed(opened_by(web3, manifest, market, buyer)):
        r = read_request(market, request_id)
        if r is not None:
            allocation = read_allocation(web3, manifest, market, request_id) if r.allocated else None
            found.append(ListedRequest(r.request_id, r.status.value, r.zone, r.start, r.end, r.target_w,
                                       r.price_per_kwh, r.deposited, r.token,
                                       allocation.accepted_w if allocation else None))
    return found, reason


def list_line(item: ListedRequest, decimals: int, symbol: str) -> str:
    """One request as one line."""
    accepted = f", accepted {format_kw(item.accepted_w)}" if item.accepted_w is not None else ""
    return (f"#{item.request_id} {item.status}: zone {item.zone}, {iso(item.start)} – {iso(item.end)}, "
            f"{format_kw(item.target_w)}{accepted}, ceiling {format_units(item.price_per_kwh, decimals, symbol)}/kWh, "
            f"budget {format_units(item.budget, decimals, symbol)}")
