"""From chain state and stored readings to one epoch's settlement.

For each ended request: its accepted commitments, the committed devices' readings (history and
event day), their baselines (method per request, see `OracleEconomics.method_for`) and finally
`settle_epoch`. The event window is settled over the intervals fully inside [start, end), on the
oracle's interval grid; a request with no whole interval delivers nothing. An owner's devices count
only if the owner's bond covers their commitments in the request (oracle/bonds.py).

A request whose committed devices are at sites, or whose market holds sites out, settles per site
(oracle.site_settlement: the randomized holdout, the portfolio estimate, each site's share); a
request of devices metered alone without a holdout settles per device, each against its own
baseline (the device-level `meter-before-after` product and the legacy rule).

A capability test (a request opened by the network's test budget account, protocol.capability)
settles by oracle.capability_settlement: its enrolled sites' meters, the test draw, each tested
site's record and pay; it has no commitments, no allocation and no holdout.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from sqlalchemy.engine import Engine

from oracle import db, meter_store
from oracle.bonds import BOND_INSUFFICIENT, BondBook
from oracle.baselines import MAX_LOOKBACK_DAYS, BaselineBatch, BaselineSpec, build_grid, compute_baselines
from oracle.block_baselines import baselines_from_store
from oracle.baselines.spec import ADJUSTMENTS, METER_BEFORE_AFTER
from oracle.chain_view import DeviceInfo, RequestInfo
from oracle.estimators import DID, ESTIMATORS
from oracle.settlement import DeviceInput, EpochSettlement, Ledger, RequestInput, SettlementParams, settle_epoch
from oracle.accepted import settled_commitments, taken_sites
from oracle.capability_settlement import capability_request_input, capability_meters
from protocol.capability import CapabilityRules
from oracle.site_settlement import meters_of, site_request_input, uses_sites
from protocol.clearing import Allocation
from protocol.units import SECONDS_PER_DAY
# Readings needed before the event: the look-back of the placebo days (2 x 45 days) and a margin.
HISTORY_DAYS = 2 * MAX_LOOKBACK_DAYS + 2


@dataclass(frozen=True)
class OracleEconomics:
    """What every oracle of a network must configure identically: settlement and baseline rules."""

    params: SettlementParams
    baseline: BaselineSpec
    zone_methods: dict[int, BaselineSpec] = field(default_factory=dict)
    estimator: str = DID  # the portfolio estimator of per-site requests (oracle.estimators)
    site_adjustment: str = "none"  # site baselines take no same-day adjustment unless a network says so
    tests: CapabilityRules = field(default_factory=CapabilityRules)  # capability tests: who opens them, share drawn

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; one of {', '.join(ESTIMATORS)}")
        if self.site_adjustment not in ADJUSTMENTS:
            raise ValueError(f"unknown site_adjustment {self.site_adjustment!r}; one of {', '.join(ADJUSTMENTS)}")

    def site_spec_for(self, request: RequestInfo) -> BaselineSpec:
        """The baseline rules of a per-site request: the program's, with the site adjustment."""
        spec = self.method_for(request)
        if spec.method == METER_BEFORE_AFTER:
            return spec
        return replace(spec, adjustment=self.site_adjustment)

    def method_for(self, request: RequestInfo) -> BaselineSpec:
        """The baseline rules for a request: the zone's program if it has one, else the default."""
        return self.zone_methods.get(request.zone, self.baseline)


def event_window(request: RequestInfo, interval_seconds: int) -> tuple[int, int]:
    """The whole intervals of the request window: [ceil(start), floor(end)) on the grid."""
    start = -(-request.start // interval_seconds) * interval_seconds
    end = request.end // interval_seconds * interval_seconds
    return start, max(start, end)


def request_input(request: RequestInfo, commitments: list[Any], devices: dict[str, DeviceInfo],
                  readings: dict[str, dict[int, int]], economics: OracleEconomics,
                  bonds: BondBook | None = None) -> tuple[RequestInput, list[dict]]:
    """One request's settlement input and its per-unit baseline records (see `settle_input`)."""
    request_in, records, _verification = settle_input(request, commitments, devices, readings, economics, bonds)
    return request_in, records


def settle_input(
    request: RequestInfo,
    commitments: list[Any],
    devices: dict[str, DeviceInfo],
    readings: dict[str, dict[int, int]],
    economics: OracleEconomics,
    bonds: BondBook | None = None,
    seed: bytes | None = None,
    devices_at: Callable[[str], list[str]] = lambda site: [],
    baselines: Callable[[BaselineSpec, list[str], int, int], BaselineBatch] | None = None,
) -> tuple[RequestInput, list[dict], dict | None]:
    """One request's settlement input, the per-unit baseline records and, for a per-site request, its
    verification (groups, estimate, shares), for publication. With `bonds`, an owner whose bond does not
    cover its devices' commitments gets nothing for them. `seed` is the gate block's hash.
    `baselines(spec, devices, start, end)`, if given, computes a per-device request's baselines in
    place of `readings` (compute_epoch's block path: from the store, a block of meters at a time)."""
    interval = economics.params.interval_seconds
    start, end = event_window(request, interval)
    intervals = (end - start) // interval
    spec = economics.method_for(request)
    committed = {c.device: c.watts for c in commitments}
    inputs: list[DeviceInput] = []
    records: list[dict] = []
    if intervals == 0 or not committed:
        return RequestInput(request.request_id, request.payment_token, request.price_per_kwh, request.max_budget,
                            intervals, ()), records, None
    owner_watts: dict[str, int] = {}
    for device, watts in committed.items():
        info = devices.get(device)
        if info is not None:
            owner_watts[info.owner.lower()] = owner_watts.get(info.owner.lower(), 0) + watts

    def device_reasons(device: str) -> list[str]:
        info = devices.get(device)
        if info is None:
            return ["device_not_registered"]
        reasons = [] if info.active else ["device_inactive"]
        if bonds is not None and not bonds.covers(info.owner, owner_watts[info.owner.lower()]):
            reasons.append(BOND_INSUFFICIENT)
        return reasons

    if uses_sites(request, committed, devices):
        return site_request_input(request, committed, devices, readings, economics.site_spec_for(request),
                                  economics.estimator, (start, end),
                                  interval, device_reasons, devices_at, seed, economics.params.penalty_below_bps)
    if baselines is None:
        grid_start, order, loads = build_grid({d: readings.get(d, {}) for d in committed}, interval, start, end)
        batch = compute_baselines(spec, grid_start, loads, start, end, devices=order)
    else:
        order = sorted(committed)  # build_grid's order
        batch = baselines(spec, order, start, end)
    for i, device in enumerate(order):
        record = batch.device(i).to_dict()
        info = devices.get(device)
        reasons = list(record.get("reasons", [])) + device_reasons(device)
        eligible = bool(batch.eligible[i]) and not reasons
        record.update({"eligible": eligible, "reasons": reasons, "committed_w": committed[device]})
        records.append(record)
        curtailed = tuple(int(v) for v in batch.curtailed_wh[i]) if eligible else (0,) * intervals
        owner = info.owner if info else device
        inputs.append(DeviceInput(device, owner, committed[device], curtailed, eligible, tuple(reasons),
                                  tuple(record.get("flags", []))))
    return RequestInput(request.request_id, request.payment_token, request.price_per_kwh, request.max_budget,
                        intervals, tuple(inputs), request.availability_price), records, None


def compute_epoch(
    engine: Engine,
    requests: Iterable[RequestInfo],
    devices: dict[str, DeviceInfo],
    economics: OracleEconomics,
    epoch: int,
    previous_root: bytes,
    previous_ledger: Ledger,
    emission_budget: int,
    bond_reader: Callable[[Iterable[str]], BondBook] | None = None,
    seed_reader: Callable[[RequestInfo], bytes | None] = lambda request: None,
    devices_at: Callable[[str], list[str]] = lambda site: [],
    allocation_reader: Callable[[RequestInfo], Allocation | None] = lambda request: None,
    overlapping: Iterable[RequestInfo] = (),
    block_meters: int | None = None,
) -> tuple[EpochSettlement, dict[int, list[dict]]]:
    """Settle `requests` from the stored commitments and readings; also returns baseline records
    (per-site requests' verifications are in `settlement.verifications`).
    `bond_reader` gives the bond book of the committed devices' owners (no bond check without it);
    `seed_reader` the gate block hash of a request with a holdout; `devices_at` a site's devices;
    `allocation_reader` a cleared request's verified allocation (oracle.accepted: what it settles with;
    raises AllocationUnknown when a posted one cannot be verified); `overlapping` other allocated
    requests whose windows may overlap these (a site they accepted first is not settled again here).
    `block_meters`: a per-device request's readings are loaded and its baselines computed that many
    meters at a time (oracle.block_baselines: memory bounded by the block, the same result); None
    loads each request whole."""
    ordered = sorted(requests, key=lambda r: r.request_id)
    commitments_of = {r.request_id: db.commitments_of_request(engine, r.request_id) for r in ordered}
    bonds = None
    if bond_reader is not None:
        owners = {devices[c.device].owner for cs in commitments_of.values() for c in cs if c.device in devices}
        bonds = bond_reader(owners)
    inputs, details, verifications = [], {}, {}
    def site_of(device: str) -> str:
        info = devices.get(device)
        return info.site if info is not None and info.site else device

    allocations = {r.request_id: allocation_reader(r) for r in [*ordered, *overlapping]
                   if r.clears and r.allocation is not None}
    known = [(r, allocations[r.request_id]) for r in [*ordered, *overlapping]
             if allocations.get(r.request_id) is not None]
    for request in ordered:
        if economics.tests.is_test(request.buyer):
            window = event_window(request, economics.params.interval_seconds)
            readings = meter_store.readings_in_range(engine, capability_meters(request, devices, devices_at),
                                                     window[0] - HISTORY_DAYS * SECONDS_PER_DAY, window[1],
                                                     economics.params.interval_seconds)
            request_in, records, verification = capability_request_input(
                request, devices, readings, economics.site_spec_for(request), economics.tests, window,
                economics.params.interval_seconds, devices_at, seed_reader(request))
            inputs.append(request_in)
            details[request.request_id] = records
            verifications[request.request_id] = verification
            continue
        allocation = allocations.get(request.request_id)
        request, commitments = settled_commitments(request, commitments_of[request.request_id], allocation, site_of,
                                                   taken_sites(request, known))
        start, end = event_window(request, economics.params.interval_seconds)
        seed = seed_reader(request) if request.holdout_bps > 0 else None
        baselines = None
        if block_meters is not None and not uses_sites(request, {c.device: c.watts for c in commitments}, devices):
            readings: Any = {}  # the block path reads the store itself

            def baselines(spec: BaselineSpec, order: list[str], lo: int, hi: int) -> BaselineBatch:
                return baselines_from_store(engine, spec, order, lo, hi, HISTORY_DAYS, block_meters)
        else:
            meters = meters_of((c.device for c in commitments), devices, devices_at)
            readings = meter_store.readings_in_range(engine, meters, start - HISTORY_DAYS * SECONDS_PER_DAY, end,
                                                     economics.params.interval_seconds)
        request_in, records, verification = settle_input(request, commitments, devices, readings, economics,
                                                         bonds, seed, devices_at, baselines)
        inputs.append(request_in)
        details[request.request_id] = records
        if verification is not None:
            verifications[request.request_id] = verification
    settlement = settle_epoch(epoch, previous_root, previous_ledger, inputs, economics.params, emission_budget)
    settlement.verifications = verifications
    return settlement, details
