"""From chain state and stored readings to one epoch's settlement.

For each ended request: its accepted commitments, the committed devices' readings (history and
event day), their baselines (method per request, see `OracleEconomics.method_for`) and finally
`settle_epoch`. The event window is settled over the intervals fully inside [start, end), on the
oracle's interval grid; a request with no whole interval delivers nothing. An owner's devices count
only if the owner's bond covers their commitments in the request (oracle/bonds.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sqlalchemy.engine import Engine

from oracle import db
from oracle.bonds import BOND_INSUFFICIENT, BondBook
from oracle.baselines import MAX_LOOKBACK_DAYS, BaselineSpec, build_grid, compute_baselines
from oracle.chain_view import DeviceInfo, RequestInfo
from oracle.settlement import DeviceInput, EpochSettlement, Ledger, RequestInput, SettlementParams, settle_epoch
from protocol.units import SECONDS_PER_DAY
# Readings needed before the event: the look-back of the placebo days (2 x 45 days) and a margin.
HISTORY_DAYS = 2 * MAX_LOOKBACK_DAYS + 2


@dataclass(frozen=True)
class OracleEconomics:
    """What every oracle of a network must configure identically: settlement and baseline rules."""

    params: SettlementParams
    baseline: BaselineSpec
    zone_methods: dict[int, BaselineSpec] = field(default_factory=dict)

    def method_for(self, request: RequestInfo) -> BaselineSpec:
        """The baseline rules for a request: the zone's program if it has one, else the default."""
        return self.zone_methods.get(request.zone, self.baseline)


def event_window(request: RequestInfo, interval_seconds: int) -> tuple[int, int]:
    """The whole intervals of the request window: [ceil(start), floor(end)) on the grid."""
    start = -(-request.start // interval_seconds) * interval_seconds
    end = request.end // interval_seconds * interval_seconds
    return start, max(start, end)


def request_input(
    request: RequestInfo,
    commitments: list[Any],
    devices: dict[str, DeviceInfo],
    readings: dict[str, dict[int, int]],
    economics: OracleEconomics,
    bonds: BondBook | None = None,
) -> tuple[RequestInput, list[dict]]:
    """One request's settlement input and the per-device baseline records (for publication).
    With `bonds`, an owner whose bond does not cover its devices' commitments gets nothing for them."""
    interval = economics.params.interval_seconds
    start, end = event_window(request, interval)
    intervals = (end - start) // interval
    spec = economics.method_for(request)
    committed = {c.device: c.watts for c in commitments}
    inputs: list[DeviceInput] = []
    records: list[dict] = []
    if intervals == 0 or not committed:
        return RequestInput(request.request_id, request.payment_token, request.price_per_kwh, request.max_budget,
                            intervals, ()), records
    grid_start, order, loads = build_grid({d: readings.get(d, {}) for d in committed}, interval, start, end)
    batch = compute_baselines(spec, grid_start, loads, start, end, devices=order)
    owner_watts: dict[str, int] = {}
    for device, watts in committed.items():
        info = devices.get(device)
        if info is not None:
            owner_watts[info.owner.lower()] = owner_watts.get(info.owner.lower(), 0) + watts
    for i, device in enumerate(order):
        record = batch.device(i).to_dict()
        info = devices.get(device)
        reasons = list(record.get("reasons", []))
        if info is None:
            reasons.append("device_not_registered")
        elif not info.active:
            reasons.append("device_inactive")
        if info is not None and bonds is not None and not bonds.covers(info.owner, owner_watts[info.owner.lower()]):
            reasons.append(BOND_INSUFFICIENT)
        eligible = bool(batch.eligible[i]) and not reasons
        record.update({"eligible": eligible, "reasons": reasons, "committed_w": committed[device]})
        records.append(record)
        curtailed = tuple(int(v) for v in batch.curtailed_wh[i]) if eligible else (0,) * intervals
        owner = info.owner if info else device
        inputs.append(DeviceInput(device, owner, committed[device], curtailed, eligible, tuple(reasons),
                                  tuple(record.get("flags", []))))
    return RequestInput(request.request_id, request.payment_token, request.price_per_kwh, request.max_budget,
                        intervals, tuple(inputs)), records


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
) -> tuple[EpochSettlement, dict[int, list[dict]]]:
    """Settle `requests` from the stored commitments and readings; also returns baseline records.
    `bond_reader` gives the bond book of the committed devices' owners (no bond check without it)."""
    ordered = sorted(requests, key=lambda r: r.request_id)
    commitments_of = {r.request_id: db.commitments_of_request(engine, r.request_id) for r in ordered}
    bonds = None
    if bond_reader is not None:
        owners = {devices[c.device].owner for cs in commitments_of.values() for c in cs if c.device in devices}
        bonds = bond_reader(owners)
    inputs, details = [], {}
    for request in ordered:
        commitments = commitments_of[request.request_id]
        start, end = event_window(request, economics.params.interval_seconds)
        readings = db.readings_in_range(engine, [c.device for c in commitments],
                                        start - HISTORY_DAYS * SECONDS_PER_DAY, end)
        request_in, records = request_input(request, commitments, devices, readings, economics, bonds)
        inputs.append(request_in)
        details[request.request_id] = records
    settlement = settle_epoch(epoch, previous_root, previous_ledger, inputs, economics.params, emission_budget)
    return settlement, details
