"""Deterministic settlement of ended requests into the next cumulative rewards report.

Every oracle runs this on the same verified readings and gets the same report, byte for byte:
all amounts are integers (Wh, W, token base units), inputs are sorted before use, and there is
one rounding rule:

    every division rounds down (floor division of non-negative integers), in the order below.

Per device d committed to request r with `watts` for the window [start, end):
  cap_wh        = watts * interval_seconds // 3600                      (per interval)
  committed_wh  = cap_wh * number_of_event_intervals
  delivered_wh  = sum over event intervals of min(curtailed_wh[t], cap_wh)
                  (curtailed_wh[t] = max(0, baseline - actual) from the baseline engine)
  ratio_bps     = delivered_wh * 10_000 // committed_wh
  factor_bps    = the performance curve at ratio_bps (piecewise linear, floor)
  payable_wh    = committed_wh * factor_bps // 10_000
  payout        = payable_wh * price_per_kwh // 1_000                   (payment token)
  emission      = payable_wh * emission_per_kwh // 1_000                (protocol token)
  penalty       = (committed_wh - delivered_wh) * penalty_per_kwh // 1_000   if ratio < penalty_below
A device that is not eligible (baseline quality, bond, inactive, missing data) earns nothing and
pays no penalty; the reasons are reported.
A unit settled per site (oracle.site_settlement) arrives with its `verified_wh`, its share of the
portfolio estimate: then delivered_wh = payable_wh = min(verified_wh, committed_wh) with no curve
(factor 10_000), and the penalty, when the site is `penalised` (clearly under, oracle.site_pay), is
(committed_wh - delivered_wh) * penalty_per_kwh // 1_000.
Availability (a cleared request that pays it: its allocation's uniform `availability_price` per kW
of accepted power per hour of the window) is paid on top, for the accepted capacity itself:
  availability  = committed_wh * availability_price // 1_000
for an eligible unit that delivered something (delivered_wh > 0) and is not penalised (per site:
not `penalised`; per device: ratio_bps >= penalty_below), else 0; the device's payout is then
utilisation payout + availability. Capacity that was not there when called is not paid for being
available, and an unverifiable request (every unit ineligible) pays neither.
Per request: if the devices' payouts add up to more than the escrow, each is scaled to
payout * escrow // total. Each device's payout is split: owner = payout * owner_share_bps // 10_000,
the fee account gets the rest. The epoch's emission is scaled the same way if it would exceed
the hub's remaining emission budget. Owners' shares, fees and emissions are added to the
cumulative ledger of (account, token) -> amount, whose Merkle tree root goes in the report.

Memory: O(devices) Python objects and nothing more: one DeviceResult per device of each request
(a device's gross result is replaced by its split one, never both kept), the ledger (one entry per
account and token) and its tree (64 bytes per leaf, protocol.merkle). About 1 KB per device in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable

from eth_utils import to_checksum_address

from protocol.merkle import RewardLeaf, RewardsTree
from protocol.report import Penalty, RequestPayout, SettlementReport
from protocol.units import BPS, bps_of, energy_wh, payment

DEFAULT_CURVE: tuple[tuple[int, int], ...] = ((0, 0), (4_999, 0), (5_000, 5_000), (10_000, 10_000))

Ledger = dict[tuple[str, str], int]


@dataclass(frozen=True)
class SettlementParams:
    """Economic parameters every oracle must share (amounts in base units, shares in bps)."""

    fee_account: str
    protocol_token: str
    interval_seconds: int = 900
    owner_share_bps: int = 8_000
    emission_per_kwh: int = 10**18
    penalty_per_kwh: int = 10**18
    penalty_below_bps: int = 5_000
    curve: tuple[tuple[int, int], ...] = DEFAULT_CURVE

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        if not 0 <= self.owner_share_bps <= BPS:
            raise ValueError("owner_share_bps must be within 0..10000")
        if not 0 <= self.penalty_below_bps <= BPS:
            raise ValueError("penalty_below_bps must be within 0..10000")
        if self.emission_per_kwh < 0 or self.penalty_per_kwh < 0:
            raise ValueError("emission_per_kwh and penalty_per_kwh must be >= 0")
        validate_curve(self.curve)


def validate_curve(curve: Iterable[tuple[int, int]]) -> None:
    """A curve is (ratio_bps, factor_bps) points starting at ratio 0, ratios strictly increasing,
    factors within 0..10000 (so no device is ever paid beyond its commitment)."""
    points = list(curve)
    if not points or points[0][0] != 0:
        raise ValueError("the performance curve must start at ratio 0")
    for (x0, _), (x1, _) in zip(points, points[1:]):
        if x1 <= x0:
            raise ValueError("performance curve ratios must be strictly increasing")
    for x, y in points:
        if not (0 <= x and 0 <= y <= BPS):
            raise ValueError(f"performance curve point out of range: ({x}, {y})")


def curve_factor(curve: tuple[tuple[int, int], ...], ratio_bps: int) -> int:
    """The pay factor (bps) at `ratio_bps`: linear between points (floor), flat after the last."""
    if ratio_bps >= curve[-1][0]:
        return curve[-1][1]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= ratio_bps < x1:
            if y1 >= y0:
                return y0 + (y1 - y0) * (ratio_bps - x0) // (x1 - x0)
            return y0 - ((y0 - y1) * (ratio_bps - x0) + (x1 - x0) - 1) // (x1 - x0)
    raise AssertionError("unreachable: curve starts at 0")


@dataclass(frozen=True)
class DeviceInput:
    """One committed device's verified data for a request."""

    device: str
    owner: str
    watts: int
    curtailed_wh: tuple[int, ...]
    eligible: bool = True
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    verified_wh: int | None = None  # a site's share of the portfolio estimate (per-site settlement)
    penalised: bool = False  # per-site settlement: the site is clearly under its commitment


@dataclass(frozen=True)
class RequestInput:
    """One ended request and its committed devices."""

    request_id: int
    payment_token: str
    price_per_kwh: int
    escrow: int
    intervals: int
    devices: tuple[DeviceInput, ...]
    availability_price: int = 0  # the allocation's uniform availability price per kW per hour (0: none)


@dataclass(frozen=True)
class DeviceResult:
    """What one device delivered and earned in one request."""

    request_id: int
    device: str
    owner: str
    committed_wh: int
    delivered_wh: int
    ratio_bps: int
    factor_bps: int
    payable_wh: int
    payout: int
    owner_payout: int
    fee: int
    emission: int
    penalty: int
    eligible: bool
    reasons: tuple[str, ...]
    flags: tuple[str, ...]
    availability: int = 0  # the part of `payout` paid for availability (before the escrow cap)


@dataclass(frozen=True)
class RequestResult:
    """One request's settlement."""

    request_id: int
    payment_token: str
    escrow: int
    payout: int
    refund: int
    scaled_to_escrow: bool
    delivered_wh: int
    devices: tuple[DeviceResult, ...]


@dataclass
class EpochSettlement:
    """Everything one epoch's report is made of."""

    report: SettlementReport
    ledger: Ledger
    tree: RewardsTree | None
    requests: tuple[RequestResult, ...]
    emission_scaled: bool = False
    notes: list[str] = field(default_factory=list)
    verifications: dict[int, dict] = field(default_factory=dict)  # per-site requests: groups, estimate, shares

    def leaves(self) -> list[RewardLeaf]:
        """The cumulative leaves, sorted by (account, token)."""
        return ledger_leaves(self.ledger)


def _norm(address: str) -> str:
    return to_checksum_address(address)


def ledger_leaves(ledger: Ledger) -> list[RewardLeaf]:
    """Non-zero ledger entries as reward leaves, in a fixed order."""
    return [RewardLeaf(account, token, amount)
            for (account, token), amount in sorted(ledger.items(), key=lambda kv: (kv[0][0].lower(), kv[0][1].lower()))
            if amount > 0]


def settle_device(request: RequestInput, device: DeviceInput, params: SettlementParams) -> DeviceResult:
    """One device's delivery and gross earnings in one request (before the escrow cap)."""
    if len(device.curtailed_wh) != request.intervals:
        raise ValueError(f"device {device.device}: {len(device.curtailed_wh)} intervals, request has "
                         f"{request.intervals}")
    cap_wh = energy_wh(device.watts, params.interval_seconds)
    committed_wh = cap_wh * request.intervals
    if device.verified_wh is not None:
        return _settle_verified(request, device, params, committed_wh)
    delivered_wh = sum(min(max(0, c), cap_wh) for c in device.curtailed_wh)
    ratio_bps = delivered_wh * BPS // committed_wh if committed_wh else 0
    if not device.eligible:
        return DeviceResult(request.request_id, _norm(device.device), _norm(device.owner), committed_wh,
                            delivered_wh, ratio_bps, 0, 0, 0, 0, 0, 0, 0, False, device.reasons, device.flags)
    factor_bps = curve_factor(params.curve, ratio_bps)
    payable_wh = bps_of(committed_wh, factor_bps)
    payout = payment(payable_wh, request.price_per_kwh)
    emission = payment(payable_wh, params.emission_per_kwh)
    penalty = 0
    if ratio_bps < params.penalty_below_bps:
        penalty = payment(committed_wh - delivered_wh, params.penalty_per_kwh)
    availability = _availability(request, committed_wh, delivered_wh > 0 and penalty == 0)
    return DeviceResult(request.request_id, _norm(device.device), _norm(device.owner), committed_wh, delivered_wh,
                        ratio_bps, factor_bps, payable_wh, payout + availability, 0, 0, emission, penalty, True,
                        device.reasons, device.flags, availability)


def _settle_verified(request: RequestInput, device: DeviceInput, params: SettlementParams,
                     committed_wh: int) -> DeviceResult:
    """A per-site unit: paid for its verified share, no curve (see the module docstring)."""
    assert device.verified_wh is not None
    delivered_wh = min(max(device.verified_wh, 0), committed_wh)
    ratio_bps = delivered_wh * BPS // committed_wh if committed_wh else 0
    if not device.eligible:
        return DeviceResult(request.request_id, _norm(device.device), _norm(device.owner), committed_wh,
                            delivered_wh, ratio_bps, 0, 0, 0, 0, 0, 0, 0, False, device.reasons, device.flags)
    penalty = payment(committed_wh - delivered_wh, params.penalty_per_kwh) if device.penalised else 0
    availability = _availability(request, committed_wh, delivered_wh > 0 and not device.penalised)
    return DeviceResult(request.request_id, _norm(device.device), _norm(device.owner), committed_wh, delivered_wh,
                        ratio_bps, BPS, delivered_wh, payment(delivered_wh, request.price_per_kwh) + availability,
                        0, 0, payment(delivered_wh, params.emission_per_kwh), penalty, True, device.reasons,
                        device.flags, availability)


def _availability(request: RequestInput, committed_wh: int, earned: bool) -> int:
    """The availability pay of a unit's accepted capacity (module docstring); 0 unless `earned`."""
    return payment(committed_wh, request.availability_price) if earned and request.availability_price else 0


def _split(result: DeviceResult, payout: int, params: SettlementParams) -> DeviceResult:
    owner_payout = bps_of(payout, params.owner_share_bps)
    return replace(result, payout=payout, owner_payout=owner_payout, fee=payout - owner_payout)


def settle_request(request: RequestInput, params: SettlementParams) -> RequestResult:
    """Settle one request: per-device results, capped to its escrow, split owner/fee."""
    devices = sorted(request.devices, key=lambda d: d.device.lower())
    if len({d.device.lower() for d in devices}) != len(devices):
        raise ValueError(f"request {request.request_id}: a device is listed twice")
    results = [settle_device(request, d, params) for d in devices]
    total = sum(r.payout for r in results)
    scaled = total > request.escrow
    for i, r in enumerate(results):  # in place: a device's gross result is dropped once it is split
        payout = r.payout * request.escrow // total if scaled else r.payout
        results[i] = _split(r, payout, params)
    paid = sum(r.payout for r in results)
    return RequestResult(request.request_id, _norm(request.payment_token), request.escrow, paid,
                         request.escrow - paid, scaled, sum(r.delivered_wh for r in results), tuple(results))


def settle_epoch(
    epoch: int,
    previous_root: bytes,
    previous_ledger: Ledger,
    requests: Iterable[RequestInput],
    params: SettlementParams,
    emission_budget: int,
) -> EpochSettlement:
    """Settle `requests` on top of `previous_ledger` into the report for `epoch`."""
    ordered = sorted(requests, key=lambda r: r.request_id)
    if len({r.request_id for r in ordered}) != len(ordered):
        raise ValueError("a request is listed twice")
    results = [settle_request(r, params) for r in ordered]

    emission_total = sum(d.emission for r in results for d in r.devices)
    emission_scaled = emission_total > emission_budget
    ledger: Ledger = {(_norm(a), _norm(t)): v for (a, t), v in previous_ledger.items()}
    penalties: dict[str, int] = {}
    fee_account, protocol_token = _norm(params.fee_account), _norm(params.protocol_token)
    emitted = 0
    for result in results:
        for d in result.devices:
            if d.owner_payout:
                ledger[(d.owner, result.payment_token)] = ledger.get((d.owner, result.payment_token), 0) + d.owner_payout
            if d.fee:
                ledger[(fee_account, result.payment_token)] = ledger.get((fee_account, result.payment_token), 0) + d.fee
            emission = d.emission * emission_budget // emission_total if emission_scaled else d.emission
            if emission:
                ledger[(d.owner, protocol_token)] = ledger.get((d.owner, protocol_token), 0) + emission
                emitted += emission
            if d.penalty:
                penalties[d.owner] = penalties.get(d.owner, 0) + d.penalty

    leaves = ledger_leaves(ledger)
    tree = RewardsTree(leaves) if leaves else None
    report = SettlementReport(
        epoch=epoch,
        previous_root=previous_root,
        rewards_root=tree.root if tree else bytes(32),
        payouts=tuple(RequestPayout(r.request_id, r.payout) for r in results),
        penalties=tuple(Penalty(a, v) for a, v in sorted(penalties.items(), key=lambda kv: kv[0].lower())),
        emission=emitted,
    )
    return EpochSettlement(report, ledger, tree, tuple(results), emission_scaled)
