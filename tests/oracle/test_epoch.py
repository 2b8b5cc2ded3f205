"""oracle.epoch, directly: the settled window on the interval grid, the history the oracle reads,
the per-zone baseline rules, and how registry state (unregistered, inactive) overrides the
baseline engine's verdict before the settlement sees a device."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from oracle import epoch
from oracle.baselines import CAISO, HIGH_X_OF_Y, MAX_LOOKBACK_DAYS, BaselineSpec
from oracle.chain_view import DeviceInfo, RequestInfo
from oracle.epoch import HISTORY_DAYS, OracleEconomics, compute_epoch, event_window, request_input
from oracle.settlement import SettlementParams
from protocol.units import SECONDS_PER_DAY

INTERVAL = 900
DAY = SECONDS_PER_DAY
EVENT_START = 1_700_000_000 // DAY * DAY + 40 * DAY + 18 * 3_600
TOKEN = "0x" + "bb" * 20
DEVICES = ["0x" + "11" * 20, "0x" + "22" * 20]
OWNERS = ["0x" + "01" * 20, "0x" + "02" * 20]


def request(request_id: int = 1, start: int = EVENT_START, end: int = EVENT_START + 3_600,
            zone: int = 1) -> RequestInfo:
    return RequestInfo(request_id=request_id, zone=zone, start=start, end=end, target_w=4_000,
                       price_per_kwh=250_000, payment_token=TOKEN, buyer="0x" + "b0" * 20, max_budget=10**9)


def economics(**zone_methods: BaselineSpec) -> OracleEconomics:
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20,
                              interval_seconds=INTERVAL)
    return OracleEconomics(params=params, baseline=BaselineSpec(HIGH_X_OF_Y),
                           zone_methods={int(k[1:]): v for k, v in zone_methods.items()})


def history(start: int, end: int, event_wh: int = 100, normal_wh: int = 400) -> dict[int, int]:
    """About 400 Wh per interval for 30 days before the event, `event_wh` during [start, end)."""
    out = {}
    t = start - 30 * DAY
    while t < end:
        out[t] = event_wh if start <= t < end else normal_wh + (t // INTERVAL) % 3
        t += INTERVAL
    return out


# ---------------------------------------------------------------- the window on the grid


def test_an_aligned_window_is_settled_whole():
    assert event_window(request(), INTERVAL) == (EVENT_START, EVENT_START + 3_600)


def test_a_misaligned_window_keeps_only_the_intervals_fully_inside():
    start, end = event_window(request(start=EVENT_START + 1, end=EVENT_START + 3_600 - 1), INTERVAL)
    assert (start, end) == (EVENT_START + INTERVAL, EVENT_START + 3 * INTERVAL)
    assert (end - start) // INTERVAL == 2


def test_a_window_shorter_than_an_interval_settles_nothing():
    start, end = event_window(request(start=EVENT_START + 60, end=EVENT_START + INTERVAL + 60), INTERVAL)
    assert start == end == EVENT_START + INTERVAL
    # one inside a single interval: floor(end) < ceil(start), and the length is 0, never negative
    assert event_window(request(start=EVENT_START + 60, end=EVENT_START + 120), INTERVAL) == (
        EVENT_START + INTERVAL, EVENT_START + INTERVAL)


def test_the_history_read_covers_the_placebo_look_back():
    # placebo days look back 45 days, and each of them looks back 45 more, plus a margin
    assert HISTORY_DAYS == 2 * MAX_LOOKBACK_DAYS + 2


# ---------------------------------------------------------------- per-zone rules


def test_a_zone_program_overrides_the_default_method():
    caiso = BaselineSpec(CAISO)
    rules = economics(z2=caiso)
    assert rules.method_for(request(zone=2)) is caiso
    assert rules.method_for(request(zone=1)).method == HIGH_X_OF_Y


# ---------------------------------------------------------------- request_input


def registered(active: bool = True) -> dict[str, DeviceInfo]:
    return {d: DeviceInfo(address=d, owner=o, kind=1, capacity_w=7_400, zone=1, active=active)
            for d, o in zip(DEVICES, OWNERS)}


def test_no_commitments_settles_an_empty_request():
    request_in, records = request_input(request(), [], registered(), {}, economics())
    assert request_in.devices == () and request_in.intervals == 4 and records == []


def test_a_window_without_whole_intervals_computes_no_baseline():
    commitments = [SimpleNamespace(device=DEVICES[0], watts=1_000)]
    short = request(start=EVENT_START + 60, end=EVENT_START + 120)
    request_in, records = request_input(short, commitments, registered(), {}, economics())
    assert request_in.intervals == 0 and request_in.devices == () and records == []


def test_a_committed_device_with_good_history_is_eligible_and_curtails():
    start, end = EVENT_START, EVENT_START + 3_600
    commitments = [SimpleNamespace(device=DEVICES[0], watts=1_200)]
    readings = {DEVICES[0]: history(start, end)}
    request_in, records = request_input(request(), commitments, registered(), readings,
                                        economics(z1=BaselineSpec(HIGH_X_OF_Y, min_days=4)))
    (device,) = request_in.devices
    assert device.eligible and device.reasons == ()
    assert device.owner == OWNERS[0] and device.watts == 1_200
    assert len(device.curtailed_wh) == 4 and all(c >= 290 for c in device.curtailed_wh)
    assert records[0]["committed_w"] == 1_200 and records[0]["eligible"] is True


def test_an_unregistered_device_is_ineligible_and_paid_nothing():
    start, end = EVENT_START, EVENT_START + 3_600
    commitments = [SimpleNamespace(device=DEVICES[0], watts=1_200)]
    readings = {DEVICES[0]: history(start, end)}
    request_in, records = request_input(request(), commitments, {}, readings,
                                        economics(z1=BaselineSpec(HIGH_X_OF_Y, min_days=4)))
    (device,) = request_in.devices
    assert not device.eligible and device.reasons == ("device_not_registered",)
    assert device.curtailed_wh == (0, 0, 0, 0)
    assert device.owner == DEVICES[0]  # no owner known: the device itself
    assert records[0]["eligible"] is False and records[0]["reasons"] == ["device_not_registered"]


def test_an_inactive_device_is_ineligible_even_with_a_good_baseline():
    start, end = EVENT_START, EVENT_START + 3_600
    commitments = [SimpleNamespace(device=DEVICES[1], watts=800)]
    readings = {DEVICES[1]: history(start, end)}
    request_in, _ = request_input(request(), commitments, registered(active=False), readings,
                                  economics(z1=BaselineSpec(HIGH_X_OF_Y, min_days=4)))
    (device,) = request_in.devices
    assert not device.eligible and device.reasons == ("device_inactive",)
    assert device.curtailed_wh == (0, 0, 0, 0)


def test_registry_reasons_come_after_the_baseline_reasons():
    commitments = [SimpleNamespace(device=DEVICES[0], watts=1_000)]
    request_in, _ = request_input(request(), commitments, {}, {}, economics())  # no readings at all
    (device,) = request_in.devices
    assert device.reasons[0] == "insufficient_history" and device.reasons[-1] == "device_not_registered"


# ---------------------------------------------------------------- compute_epoch


def test_compute_epoch_reads_the_history_window_and_settles_requests_in_id_order(monkeypatch):
    asked: list[tuple[list[str], int, int]] = []
    commitments = {1: [SimpleNamespace(device=DEVICES[0], watts=1_000)],
                   2: [SimpleNamespace(device=DEVICES[1], watts=2_000)]}

    def readings_in_range(_engine, devices, from_ts, to_ts, _interval=None):
        asked.append((list(devices), from_ts, to_ts))
        return {}

    monkeypatch.setattr(epoch.db, "commitments_of_request", lambda _engine, request_id: commitments[request_id])
    monkeypatch.setattr(epoch.meter_store, "readings_in_range", readings_in_range)
    later = request(2, start=EVENT_START + DAY, end=EVENT_START + DAY + 1_800)
    settlement, details = compute_epoch(None, [later, request(1)], registered(), economics(), 5, b"\x00" * 32,
                                        {}, 10**24)
    assert [r.request_id for r in settlement.requests] == [1, 2]
    assert sorted(details) == [1, 2]
    assert asked[0] == ([DEVICES[0]], EVENT_START - HISTORY_DAYS * DAY, EVENT_START + 3_600)
    assert asked[1] == ([DEVICES[1]], EVENT_START + DAY - HISTORY_DAYS * DAY, EVENT_START + DAY + 1_800)
    assert settlement.report.epoch == 5
    # nobody had history: nothing is paid, every device is reported with its reason
    assert all(not d.eligible and d.payout == 0 for r in settlement.requests for d in r.devices)


@pytest.mark.parametrize("interval", [300, 900, 3_600])
def test_event_window_is_on_the_grid_for_any_interval(interval):
    start, end = event_window(request(start=EVENT_START + 7, end=EVENT_START + 7_207), interval)
    assert start % interval == 0 and end % interval == 0
    assert EVENT_START + 7 <= start <= end <= EVENT_START + 7_207


# ---------------------------------------------------------------- bond cover (audit M-4)


def test_m4_a_commitment_the_owner_s_bond_does_not_cover_earns_nothing():
    """The attack: an owner commits far more than its bond, so a failed delivery's penalty exceeds what can
    be slashed. The oracle counts an owner's devices in a request only if the bond covers their sum."""
    from oracle.bonds import BOND_INSUFFICIENT, BondBook

    start, end = EVENT_START, EVENT_START + 3_600
    both_owned = {d: DeviceInfo(address=d, owner=OWNERS[0], kind=1, capacity_w=7_400, zone=1, active=True)
                  for d in DEVICES}
    commitments = [SimpleNamespace(device=d, watts=1_200) for d in DEVICES]
    readings = {d: history(start, end) for d in DEVICES}
    rules = economics(z1=BaselineSpec(HIGH_X_OF_Y, min_days=4))
    bond_per_kw = 10**18
    enough = BondBook(bond_per_kw, {OWNERS[0].lower(): 2_400 * bond_per_kw // 1000})
    short = BondBook(bond_per_kw, {OWNERS[0].lower(): 2_400 * bond_per_kw // 1000 - 1})  # covers one, not both
    covered, _ = request_input(request(), commitments, both_owned, readings, rules, enough)
    assert all(d.eligible for d in covered.devices)
    uncovered, records = request_input(request(), commitments, both_owned, readings, rules, short)
    assert [d.eligible for d in uncovered.devices] == [False, False]
    assert all(BOND_INSUFFICIENT in d.reasons and sum(d.curtailed_wh) == 0 for d in uncovered.devices)
    assert all(BOND_INSUFFICIENT in r["reasons"] for r in records)
    assert short.required(2_400) == enough.available[OWNERS[0].lower()]
