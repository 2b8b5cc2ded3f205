"""One capability test settled: who was tested, what each tested site shed, its record and its pay.

The rule is protocol.capability's (who is tested, testedW, the pass rule, the record, the pay); this
module applies it to the oracle's chain view and verified readings, the same way on every oracle:

* Enrolled sites: DeviceRegistry site meters (kind `site_meter`) of the test's zone, active, with at
  least one active device at the site other than a `household` load, registered at or before the
  block that opened the test (so a site that joins later cannot change a running test's draw); sorted
  by address.
* Tested: protocol.capability.is_tested with the gate block's hash; the other enrolled sites are the
  control group. A test with no gate block yet raises HoldoutSeedUnknown (nothing is settled).
* Meters: every enrolled site meter and the tested sites' devices, with like-day baselines of the
  zone's program (oracle.epoch: `site_spec_for`, no same-day adjustment), over the window's whole
  intervals, without the baseline's quality gate (the pass rule and the control mean stand in for
  it on a short window). A meter without a baseline (no like-day selected: too little history) or
  with an event reading missing has no r; a control site without one leaves the control mean.
* Each tested site gets a DeviceInput of its own (the site is the unit, its owner is paid):
  watts = testedW, verified_wh = testedW over the window, eligible only if it passed, no penalty.
  No bond is asked (a test is not a commitment) and commitments sent for a test are not read.
* The verification published with the request: `{"capabilityTest": true, "testBps", "seed",
  "controlMeanW", "controlSites", "sites": [...], "capability": [records]}`, each enrolled site with
  its group (`treatment`: tested, `control`: not), `rW` and, tested, `expectedW`, `testedW`,
  `passed`, `reasons`, its devices and `committedW`/`paidWh` as a per-site request's sites have them; the records are what oracle.capability_records reads back from final
  reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from oracle.baselines import BaselineSpec, build_grid, compute_baselines
from oracle.chain_view import DeviceInfo, RequestInfo
from oracle.settlement import DeviceInput, RequestInput
from oracle.site_settlement import HoldoutSeedUnknown
from protocol.capability import (BELOW_DEVICES, NO_BASELINE, TOO_LITTLE, CapabilityRecord, CapabilityRules, average_w,
                                 control_mean_w, is_tested, passes)
from protocol.kinds import DeviceKind
from protocol.units import energy_wh

TESTED = "treatment"  # the groups as every per-site verification names them (dispatched, not dispatched)
CONTROL = "control"


def enrolled_sites(request: RequestInfo, devices: Mapping[str, DeviceInfo],
                   devices_at: Callable[[str], list[str]]) -> list[str]:
    """The sites a capability test draws from (module docstring), sorted by address."""
    sites = []
    for address, info in devices.items():
        if info.kind != DeviceKind.SITE_METER or not info.active or info.zone != request.zone:
            continue
        if request.opened_block is not None and (info.registered_block is None
                                                 or info.registered_block > request.opened_block):
            continue
        if flexible_devices(address, devices, devices_at):
            sites.append(address)
    return sorted(sites, key=str.lower)


def flexible_devices(site: str, devices: Mapping[str, DeviceInfo], devices_at: Callable[[str], list[str]]
                     ) -> list[str]:
    """The site's active devices a test dispatches (every kind but a `household` load), sorted."""
    return sorted((d for d in devices_at(site) if d in devices and devices[d].active
                   and devices[d].kind not in (DeviceKind.HOUSEHOLD, DeviceKind.SITE_METER)), key=str.lower)


def capability_meters(request: RequestInfo, devices: Mapping[str, DeviceInfo],
                devices_at: Callable[[str], list[str]]) -> list[str]:
    """Every meter a test settles with: the enrolled site meters and all their devices, sorted."""
    meters = set()
    for site in enrolled_sites(request, devices, devices_at):
        meters.add(site)
        meters.update(devices_at(site))
    return sorted(meters, key=str.lower)


def _window_delta(record: dict) -> int | None:
    """sum(baseline - actual) over the window, or None without a baseline or with a reading missing."""
    baseline, actual = record.get("baseline_wh") or [], record.get("actual_wh") or []
    if not record.get("selected_days") or not baseline or len(baseline) != len(actual) or any(a < 0 for a in actual):
        return None
    return sum(int(b) - int(a) for b, a in zip(baseline, actual))


def _baseline_sum(record: dict) -> int | None:
    baseline = record.get("baseline_wh") or []
    return sum(int(b) for b in baseline) if baseline and record.get("selected_days") else None


def capability_request_input(
    request: RequestInfo, devices: Mapping[str, DeviceInfo], readings: dict[str, dict[int, int]],
    spec: BaselineSpec, rules: CapabilityRules, window: tuple[int, int], interval: int,
    devices_at: Callable[[str], list[str]], seed: bytes | None,
) -> tuple[RequestInput, list[dict], dict[str, Any]]:
    """The settlement input, the baseline records and the verification (with the capability records)
    of one capability test (module docstring)."""
    start, end = window
    intervals = (end - start) // interval
    empty = RequestInput(request.request_id, request.payment_token, request.price_per_kwh, request.max_budget,
                         intervals, ())
    sites = enrolled_sites(request, devices, devices_at)
    verification: dict[str, Any] = {"capabilityTest": True, "testBps": rules.test_bps, "gateClosure":
                                    request.gate_time, "seed": None, "capability": [], "sites": []}
    if intervals == 0 or not sites:
        return empty, [], verification
    if seed is None:
        raise HoldoutSeedUnknown(f"capability test {request.request_id}: the gate block is not known yet")
    verification["seed"] = "0x" + seed.hex()
    tested = [s for s in sites if is_tested(seed, request.request_id, s, rules.test_bps)]
    meters = sorted({m for s in sites for m in [s, *(devices_at(s) if s in tested else [])]}, key=str.lower)
    grid_start, order, loads = build_grid({m: readings.get(m, {}) for m in meters}, interval, start, end)
    batch = compute_baselines(spec, grid_start, loads, start, end, devices=order)
    records = {order[i]: batch.device(i).to_dict() for i in range(len(order))}

    def r_of(site: str) -> int | None:
        delta = _window_delta(records.get(site, {}))
        return None if delta is None else average_w(delta, intervals, interval)

    control = [s for s in sites if s not in tested]
    control_r = [r for r in (r_of(s) for s in control) if r is not None]
    mean = control_mean_w(control_r)
    verification.update({"controlMeanW": mean, "controlSites": len(control_r)})
    inputs, out_records, entries, capability = [], [], [], []
    for site in sites:
        r = r_of(site)
        entry: dict[str, Any] = {"site": site, "group": TESTED if site in tested else CONTROL, "rW": r,
                                 "committedW": 0, "paidWh": 0, "devices": []}
        if site in tested:
            flexible = flexible_devices(site, devices, devices_at)
            sums = [_baseline_sum(records.get(d, {})) for d in flexible]
            expected = average_w(sum(s for s in sums if s is not None), intervals, interval)
            below = any(0 <= records.get(site, {}).get("actual_wh", [0] * intervals)[t]
                        < sum(max(0, records.get(d, {}).get("actual_wh", [0] * intervals)[t]) for d in devices_at(site))
                        for t in range(intervals)) if r is not None else False
            tested_w = max(0, r - mean) if r is not None else 0
            reasons = [NO_BASELINE] if r is None else [BELOW_DEVICES] if below else \
                [] if passes(tested_w, expected) else [TOO_LITTLE]
            passed = not reasons
            if r is None or below:
                tested_w = 0
            record = CapabilityRecord(site, request.request_id, tested_w, passed, request.start)
            capability.append(record.as_json())
            info = devices[site]
            wh = energy_wh(tested_w, interval) * intervals
            entry.update({"expectedW": expected, "testedW": tested_w, "passed": passed, "reasons": reasons,
                          "devices": flexible, "committedW": tested_w, "paidWh": wh if passed else 0})
            baseline = dict(records.get(site, {}))
            baseline.update({"eligible": passed, "reasons": reasons, "committed_w": tested_w,
                             "flags": list(baseline.get("flags", []))})
            if baseline.get("device"):
                out_records.append(baseline)
            inputs.append(DeviceInput(site, info.owner, tested_w, (0,) * intervals, passed, tuple(reasons), (),
                                      verified_wh=wh if passed else 0))
        entries.append(entry)
    verification["sites"] = entries
    verification["capability"] = capability
    return (RequestInput(request.request_id, request.payment_token, request.price_per_kwh, request.max_budget,
                         intervals, tuple(inputs)), out_records, verification)
