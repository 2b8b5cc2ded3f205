"""Per-site settlement (oracle.site_settlement through oracle.epoch.settle_input): the holdout's
groups from the seed, the portfolio estimate, each site's paid share, and the bad-input rules."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from oracle.baselines import CAISO, BaselineSpec
from oracle.chain_view import DeviceInfo, RequestInfo
from oracle.epoch import OracleEconomics, settle_input
from oracle.portfolio import FALLBACK_NO_HOLDOUT, RULE_PORTFOLIO, RULE_SITE_FALLBACK
from oracle.settlement import SettlementParams, settle_request
from oracle.site_settlement import HELD_OUT, HoldoutSeedUnknown
from oracle.site_pay import FLAG_SITE_BELOW_DEVICES
from protocol.holdout import is_held_out
from protocol.kinds import DeviceKind
from protocol.units import SECONDS_PER_DAY

INTERVAL = 900
DAY = SECONDS_PER_DAY
EVENT_START = 1_700_000_000 // DAY * DAY + 40 * DAY + 18 * 3_600
TOKEN = "0x" + "bb" * 20
SEED = bytes(range(32))
SITES = [f"0x{0x5100 + i:040x}" for i in range(24)]
HEATERS = [f"0x{0xd100 + i:040x}" for i in range(24)]
OWNERS = [f"0x{0x0100 + i:040x}" for i in range(24)]
COMMIT_W = 2_000
REDUCTION_WH = 400  # per interval, on a dispatched site


def request(holdout_bps: int = 3_000) -> RequestInfo:
    return RequestInfo(request_id=7, zone=1, start=EVENT_START, end=EVENT_START + 3_600, target_w=40_000,
                       price_per_kwh=250_000, payment_token=TOKEN, buyer="0x" + "b0" * 20, max_budget=10**12,
                       holdout_bps=holdout_bps, gate_closure=EVENT_START - 900)


def economics() -> OracleEconomics:
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20,
                              interval_seconds=INTERVAL)
    return OracleEconomics(params=params, baseline=BaselineSpec(CAISO, adjustment="ratio"))


def registry() -> dict[str, DeviceInfo]:
    out = {}
    for site, heater, owner in zip(SITES, HEATERS, OWNERS):
        out[site] = DeviceInfo(site, owner, int(DeviceKind.SITE_METER), 20_000, 1, True)
        out[heater] = DeviceInfo(heater, owner, int(DeviceKind.WATER_HEATER), 3_000, 1, True, site=site)
    return out


def dispatched(holdout_bps: int = 3_000) -> set[str]:
    return {s for s in SITES if not is_held_out(SEED, 7, s, holdout_bps)}


def readings(treated: set[str], device_wh: int = 300) -> dict[str, dict[int, int]]:
    """Each site: a flat 1,000 Wh per interval plus a site-specific offset, for 30 days; its heater
    300 Wh of it. A dispatched site uses REDUCTION_WH less in the window (its heater 300 -> 0 and
    100 Wh of other load)."""
    out: dict[str, dict[int, int]] = {}
    for n, (site, heater) in enumerate(zip(SITES, HEATERS)):
        meter, device = {}, {}
        for t in range(EVENT_START - 30 * DAY, EVENT_START + 3_600, INTERVAL):
            in_window = EVENT_START <= t < EVENT_START + 3_600
            cut = in_window and site in treated
            meter[t] = 1_000 + 10 * n - (REDUCTION_WH if cut else 0)
            device[t] = 0 if cut else device_wh
        out[site], out[heater] = meter, device
    return out


def commitments():
    return [SimpleNamespace(device=h, watts=COMMIT_W) for h in HEATERS]


def _units(request_in):
    return {d.device.lower(): d for d in request_in.devices}


def test_the_dispatched_group_is_paid_the_verified_reduction_and_the_held_out_nothing():
    treated = dispatched()
    assert 5 <= len(SITES) - len(treated) < len(SITES) - 1  # the seed leaves a usable holdout
    request_in, records, result = settle_input(request(), commitments(), registry(), readings(treated),
                                               economics(), seed=SEED)
    verification = result["portfolio"]
    assert verification["rule"] == RULE_PORTFOLIO and verification["method"] == "did"
    # Flat loads: every baseline is exact, so the estimate is the true reduction, 4 intervals each.
    assert verification["estimated_wh"] == len(treated) * 4 * REDUCTION_WH
    assert verification["ci95_wh"] == [verification["estimated_wh"]] * 2
    units = _units(request_in)
    assert set(units) == {s.lower() for s in SITES}  # the settlement unit is the site, not the heater
    for site in SITES:
        unit = units[site.lower()]
        if site in treated:
            assert unit.eligible and unit.verified_wh == 4 * REDUCTION_WH
        else:
            assert not unit.eligible and HELD_OUT in unit.reasons and unit.verified_wh == 0
    result = settle_request(request_in, economics().params)
    committed_wh = COMMIT_W * INTERVAL // 3_600 * 4
    for d in result.devices:
        if d.device.lower() in treated:
            assert (d.committed_wh, d.delivered_wh, d.payout) == (committed_wh, 1_600, 1_600 * 250_000 // 1_000)
            assert d.penalty == 0
        else:
            assert d.payout == 0 and d.penalty == 0
    assert {r["device"].lower() for r in records} == {s.lower() for s in SITES}


def test_the_groups_follow_the_seed_and_nobody_else():
    other_seed = bytes(reversed(range(32)))
    treated = {s for s in SITES if not is_held_out(other_seed, 7, s, 3_000)}
    _, _, verification = settle_input(request(), commitments(), registry(), readings(treated), economics(),
                                      seed=other_seed)
    groups = {s["site"].lower(): s["group"] for s in verification["sites"]}
    assert {s.lower() for s in treated} == {s for s, g in groups.items() if g == "treatment"}


def test_a_request_with_a_holdout_waits_for_its_gate_block():
    with pytest.raises(HoldoutSeedUnknown):
        settle_input(request(), commitments(), registry(), readings(set()), economics(), seed=None)


def test_without_a_holdout_the_sites_fall_back_to_their_own_baselines():
    request_in, _, result = settle_input(request(holdout_bps=0), commitments(), registry(),
                                         readings(set(SITES)), economics())
    verification = result["portfolio"]
    assert verification["rule"] == RULE_SITE_FALLBACK and verification["fallback_reason"] == FALLBACK_NO_HOLDOUT
    assert all(d.verified_wh == 1_600 for d in request_in.devices)


def test_a_site_meter_below_its_devices_is_flagged_and_not_paid():
    treated = dispatched()
    data = readings(treated)
    victim = sorted(treated)[0]
    heater = HEATERS[SITES.index(victim)]
    data[heater] = {t: (5_000 if EVENT_START <= t < EVENT_START + 3_600 else wh) for t, wh in data[heater].items()}
    request_in, _, _ = settle_input(request(), commitments(), registry(), data, economics(), seed=SEED,
                                    devices_at=lambda site: [HEATERS[SITES.index(site)]])
    unit = _units(request_in)[victim.lower()]
    assert FLAG_SITE_BELOW_DEVICES in unit.flags and unit.verified_wh == 0


def test_a_site_missing_event_readings_leaves_the_estimate_and_the_report_says_so():
    treated = dispatched()
    data = readings(treated)
    gone = sorted(treated)[1]
    del data[gone][EVENT_START + INTERVAL]
    request_in, _, result = settle_input(request(), commitments(), registry(), data, economics(), seed=SEED)
    verification = result["portfolio"]
    unit = _units(request_in)[gone.lower()]
    assert not unit.eligible and "missing_event_readings" in unit.reasons
    assert verification["treatment"] == len(treated) - 1
    assert verification["estimated_wh"] == (len(treated) - 1) * 4 * REDUCTION_WH


def test_an_inactive_device_leaves_its_site_uncommitted():
    treated = dispatched()
    devices = registry()
    site = sorted(treated)[2]
    heater = HEATERS[SITES.index(site)]
    devices[heater] = replace(devices[heater], active=False)
    request_in, _, _ = settle_input(request(), commitments(), devices, readings(treated), economics(), seed=SEED)
    unit = _units(request_in)[site.lower()]
    assert unit.watts == 0 and "device_inactive" in unit.reasons and unit.verified_wh == 0
