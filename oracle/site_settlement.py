"""One request settled per site: the holdout's groups, the portfolio estimate, each site's share.

The rule, for a request whose committed devices are at sites or whose market holds sites out:

* The settlement unit is the site (the device's site meter, DeviceRegistry `siteOf`); a committed
  device metered alone (registered without a site) is its own unit. A unit's commitment is the sum
  of its eligible devices' committed watts (registered, active, owner's bond covering them).
* Groups: with `holdout_bps` > 0 and the gate block's hash as seed, a unit is held out iff
  protocol.holdout.is_held_out(seed, request id, unit, holdout_bps). Held-out units are the control
  group: they were not dispatched, are owed nothing for the event and pay no penalty (their chance
  of being held out is the same on every request; no availability share is paid to them: availability
  pays accepted capacity, and a held-out unit is never accepted).
* The estimate: oracle.portfolio over the units' meters (baseline method of the request's program,
  the program's estimator, the portfolio's quality gate, the site fallback), in Wh over the whole
  intervals of the window.
* Pay: oracle.site_pay.allocate splits the verified reduction among the dispatched units in
  proportion to their own clipped reduction; each unit's paid Wh enters the settlement as its
  delivered (and payable) energy, at the request's price, with the under-delivery penalty of
  oracle.site_pay.clearly_under on (committed - paid) Wh.
* A site meter that reads less than the sum of its devices' meters in any event interval is flagged
  `site_meter_below_devices` and not paid.
* Units without usable data leave the estimate; the report lists each with its reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from oracle.baselines import BaselineSpec, build_grid, compute_baselines
from oracle.chain_view import DeviceInfo, RequestInfo
from oracle.portfolio import CONTROL, TREATMENT, PortfolioResult, VerifyError, estimate_portfolio, site_windows
from oracle.settlement import DeviceInput, RequestInput
from oracle.site_pay import FLAG_SITE_BELOW_DEVICES, SiteClaim, allocate
from protocol.holdout import is_held_out
from protocol.units import energy_wh

HELD_OUT = "held_out"
HOLDOUT_SEED_UNKNOWN = "holdout_seed_unknown"
NO_ESTIMATE = "no_portfolio_estimate"


class HoldoutSeedUnknown(Exception):
    """The gate block of a request with a holdout is not known yet (nothing can be settled)."""


@dataclass(frozen=True)
class Unit:
    """One settlement unit of a request: its meter, owner, committed devices and watts."""

    address: str
    owner: str
    devices: tuple[str, ...]
    watts: int
    reasons: tuple[str, ...]


def uses_sites(request: RequestInfo, committed: dict[str, int], devices: dict[str, DeviceInfo]) -> bool:
    """Whether a request settles per site: one of its committed devices is at a site, or it has a holdout."""
    return request.holdout_bps > 0 or any(devices.get(d) is not None and devices[d].site for d in committed)


def meters_of(committed_devices: Iterable[str], devices: Mapping[str, DeviceInfo],
              devices_at: Callable[[str], list[str]]) -> list[str]:
    """Every meter a request settles with: its committed devices, and for each one at a site, the
    site meter and the site's other devices (their readings check the site meter); sorted."""
    meters = set(committed_devices)
    for device in list(meters):
        info = devices.get(device)
        if info is not None and info.site:
            meters.add(info.site)
            meters.update(devices_at(info.site))
    return sorted(meters)


def units_of(committed: dict[str, int], devices: dict[str, DeviceInfo],
             device_reasons: Callable[[str], list[str]]) -> list[Unit]:
    """The request's settlement units, sorted by address; a device's reasons (unregistered, inactive,
    bond) keep its watts out of its unit's commitment."""
    grouped: dict[str, list[str]] = {}
    for device in committed:
        info = devices.get(device)
        unit = info.settlement_unit if info is not None else device
        grouped.setdefault(unit, []).append(device)
    units = []
    for address, members in sorted(grouped.items(), key=lambda kv: kv[0].lower()):
        watts = sum(committed[d] for d in members if not device_reasons(d))
        reasons = sorted({r for d in members for r in device_reasons(d)}) if watts == 0 else []
        site_info = devices.get(address)
        owner = site_info.owner if site_info is not None else address
        units.append(Unit(address, owner, tuple(sorted(members)), watts, tuple(reasons)))
    return units


def _below_devices(unit: Unit, start: int, end: int, interval: int, readings: dict[str, dict[int, int]],
                   devices_at: Callable[[str], list[str]]) -> bool:
    """A site meter reading below the sum of its devices' readings in an event interval."""
    members = devices_at(unit.address)
    if not members:
        return False
    site = readings.get(unit.address, {})
    for t in range(start, end, interval):
        if t in site and site[t] < sum(readings.get(d, {}).get(t, 0) for d in members):
            return True
    return False


def site_request_input(
    request: RequestInfo, committed: dict[str, int], devices: dict[str, DeviceInfo],
    readings: dict[str, dict[int, int]], spec: BaselineSpec, estimator: str, window: tuple[int, int],
    interval: int, device_reasons: Callable[[str], list[str]], devices_at: Callable[[str], list[str]],
    seed: bytes | None, penalty_below_bps: int,
) -> tuple[RequestInput, list[dict], dict[str, Any]]:
    """The settlement input of one per-site request, the units' baseline records and the verification
    (groups, estimate, shares) the report publishes; raises HoldoutSeedUnknown before the gate block."""
    start, end = window
    intervals = (end - start) // interval
    units = units_of(committed, devices, device_reasons)
    if request.holdout_bps > 0 and seed is None:
        raise HoldoutSeedUnknown(f"request {request.request_id}: the gate block is not known yet")
    groups = {u.address: CONTROL if request.holdout_bps > 0 and is_held_out(seed, request.request_id, u.address,
                                                                           request.holdout_bps) else TREATMENT
              for u in units}
    grid_start, order, loads = build_grid({u.address: readings.get(u.address, {}) for u in units}, interval,
                                          start, end)
    batch = compute_baselines(spec, grid_start, loads, start, end, devices=order)  # once: records and estimate
    records = {order[i]: batch.device(i).to_dict() for i in range(len(order))}
    verification: dict[str, Any] = {"holdoutBps": request.holdout_bps, "gateClosure": request.gate_time,
                                    "seed": "0x" + seed.hex() if seed else None, "estimator": estimator}
    result: PortfolioResult | None = None
    try:
        windows, quality = site_windows(spec, grid_start, loads, order, groups, start, end,
                                        gate_closure=request.gate_time, committed_w={u.address: u.watts for u in units},
                                        event_batch=batch)
        result = estimate_portfolio(windows, quality, estimator)
        verification["portfolio"] = result.to_dict()["portfolio"]
        estimated = result.estimate.estimated_wh
    except VerifyError as error:
        verification["error"] = str(error)
        estimated = 0
    own = {w.site: w for w in (result.sites if result else ())}
    included = result.included if result else frozenset()
    cap = lambda watts: energy_wh(watts, interval) * intervals  # noqa: E731
    claims = []
    below = {u.address for u in units if _below_devices(u, start, end, interval, readings, devices_at)}
    for unit in units:
        if groups[unit.address] == TREATMENT and unit.watts > 0 and unit.address in included:
            window_ = own[unit.address]
            claims.append(SiteClaim(unit.address, cap(unit.watts), window_.reduction_wh, window_.placebo_errors_wh,
                                    unit.address in below))
    pays = {p.site: p for p in allocate(estimated, claims, penalty_below_bps)}
    verification["sites"] = [{"site": u.address, "group": groups[u.address], "committedW": u.watts,
                              "devices": list(u.devices), "paidWh": pays[u.address].paid_wh if u.address in pays else 0,
                              "weightWh": pays[u.address].weight_wh if u.address in pays else 0}
                             for u in units]

    inputs, out_records = [], []
    for unit in units:
        record = dict(records[unit.address])
        reasons = list(unit.reasons)
        flags = list(record.get("flags", []))
        pay = pays.get(unit.address)
        if groups[unit.address] == CONTROL:
            reasons.append(HELD_OUT)
        elif unit.address not in included:
            reasons.extend(own[unit.address].reasons if unit.address in own and own[unit.address].reasons
                           else [NO_ESTIMATE] if result is None else ["site_not_in_estimate"])
        if pay is not None and pay.flags:
            flags.extend(pay.flags)
        eligible = pay is not None and not reasons
        record.update({"eligible": eligible, "reasons": sorted(set(reasons)), "flags": flags,
                       "committed_w": unit.watts})
        out_records.append(record)
        curtailed = tuple(max(0, b - a) if a >= 0 else 0
                          for b, a in zip(record["baseline_wh"] or [0] * intervals, record["actual_wh"]))
        inputs.append(DeviceInput(unit.address, unit.owner, unit.watts, curtailed, eligible, tuple(sorted(set(reasons))),
                                  tuple(flags), verified_wh=pay.paid_wh if pay else 0,
                                  penalised=bool(pay and pay.penalised and FLAG_SITE_BELOW_DEVICES not in pay.flags)))
    return (RequestInput(request.request_id, request.payment_token, request.price_per_kwh, request.max_budget,
                         intervals, tuple(inputs), request.availability_price), out_records, verification)
