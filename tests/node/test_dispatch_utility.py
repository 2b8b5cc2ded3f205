"""Counted once, in the dispatcher alone (no chain, no VTN): a device a negawatt request already
holds keeps one setpoint when a utility's event overlaps it, the larger reduction, from the same
reference draw; when the utility's window ends first the request's setpoint is applied again, and
the device is restored only when neither holds it. A utility event the VTN withdraws restores."""

from __future__ import annotations

from dispatch_setup import SettableClock
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from node.devices.factory import build_device
from node.dispatch import Dispatcher, NodeDevice, Policy, open_dispatch_db
from node.outbox import Outbox
from protocol.requests import FlexRequest

S = 1_800_000_000 // 900 * 900


def charger(tmp_path, site: str | None = None, capability: int | None = None):
    key = Account.create()
    ev = build_device({"kind": "ev_charger", "device_id": key.address, "seed": 2, "max_power_w": 7_400,
                       "sessions": [{"arrival": S - 3_600, "departure": S + 12 * 3_600,
                                     "energy_needed_wh": 60_000}]}, start_time=S - 3_600)
    device = NodeDevice(key.address, bytes(key.key), ev, zone=1, capacity_w=7_400)
    clock = SettableClock(S - 1_800)
    dispatcher = Dispatcher(open_dispatch_db(str(tmp_path / "dispatch.sqlite")), Outbox(tmp_path / "outbox.sqlite"),
                            [device], Policy(), 31337, "0x" + "22" * 20, lambda: [], clock=clock, site=site,
                            capability=lambda: capability)
    return dispatcher, device, ev, clock


def power_at(ev, clock, at: float) -> int:
    clock.now = at
    ev.advance(at)
    return ev.power_w()


def test_a_larger_utility_reduction_over_a_commitment_is_applied_once_and_handed_back(tmp_path):
    site = "0x" + "33" * 20  # a site meter the node has: its capability caps the offer at 1 kW
    dispatcher, device, ev, clock = charger(tmp_path, site=site, capability=1_000)
    request = FlexRequest(11, 1, S, S + 1_800, 1_000, 10**6, "0x" + "11" * 20)
    assert dispatcher.on_request(request) == 1_000
    assert dispatcher.on_utility_event("peak", "utility-flex", [(0, S, S + 900, 5_000)]) == 1
    [window] = dispatcher.utility_windows()
    assert window["overlap_request"] == 11 and window["watts"] == 5_000

    reference = power_at(ev, clock, S)
    assert reference >= 7_000
    dispatcher.step()  # both start: one setpoint, the larger reduction
    assert ev.setpoint_w == reference - 5_000
    assert power_at(ev, clock, S + 300) <= reference - 5_000
    clock.now = S + 900
    dispatcher.step()  # the utility's window ends first: the request's own setpoint again
    assert ev.setpoint_w == reference - 1_000
    assert dispatcher.utility_windows()[0]["state"] == "restored"
    assert reference - 1_000 - 200 <= power_at(ev, clock, S + 1_200) <= reference - 1_000
    clock.now = S + 1_800
    dispatcher.step()
    assert ev.setpoint_w is None
    assert power_at(ev, clock, S + 1_900) >= 7_000


def test_a_smaller_utility_reduction_rides_on_the_commitment(tmp_path):
    dispatcher, device, ev, clock = charger(tmp_path)
    committed = dispatcher.on_request(FlexRequest(12, 1, S, S + 900, 5_000, 10**6, "0x" + "11" * 20))
    assert committed >= 2_000
    dispatcher.on_utility_event("small", "utility-flex", [(0, S, S + 900, 1_000)])
    reference = power_at(ev, clock, S)
    dispatcher.step()
    assert ev.setpoint_w == reference - committed  # the request's setpoint, not a second one
    assert "applied once" in dispatcher.utility_windows()[0]["note"]


def test_a_withdrawn_utility_event_restores_the_device(tmp_path):
    dispatcher, device, ev, clock = charger(tmp_path)
    dispatcher.on_utility_event("gone", "utility-flex", [(0, S, S + 900, 4_000), (1, S + 900, S + 1_800, 4_000)])
    reference = power_at(ev, clock, S)
    dispatcher.step()
    assert ev.setpoint_w == reference - 4_000
    clock.now = S + 900
    dispatcher.step()  # the next interval follows from the same reference, not from the curtailed draw
    assert ev.setpoint_w == reference - 4_000
    assert dispatcher.on_utility_gone("gone") == 1
    assert ev.setpoint_w == reference - 4_000  # the dispatch loop restores it, at its next step
    dispatcher.step()
    assert ev.setpoint_w is None
    assert {w["state"] for w in dispatcher.utility_windows()} == {"restored", "cancelled"}


@settings(max_examples=40, deadline=None)
@given(request=st.tuples(st.integers(0, 8), st.integers(1, 6)), utility=st.tuples(st.integers(0, 8), st.integers(1, 6)),
       cap=st.integers(500, 5_000), reduction=st.integers(500, 5_900), utility_first=st.booleans())
def test_one_setpoint_the_larger_reduction_of_whatever_holds_the_device(request, utility, cap, reduction,
                                                                        utility_first):
    """Whatever the windows and their order: at every step the device's setpoint is its full draw
    minus the largest reduction of the windows that hold it then, and no setpoint when none does."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        dispatcher, device, ev, clock = charger(Path(folder), site="0x" + "33" * 20, capability=cap)
        a, b = S + request[0] * 300, S + (request[0] + request[1]) * 300
        c, d = S + utility[0] * 300, S + (utility[0] + utility[1]) * 300
        offer = FlexRequest(21, 1, a, b, cap, 10**6, "0x" + "11" * 20)
        if utility_first:
            dispatcher.on_utility_event("u", "p", [(0, c, d, reduction)])
            committed = dispatcher.on_request(offer)
            assert committed == 0 or not (a < d and c < b)  # a window the utility holds is not offered
        else:
            committed = dispatcher.on_request(offer)
            dispatcher.on_utility_event("u", "p", [(0, c, d, reduction)])
        full = power_at(ev, clock, S)
        for t in range(S, S + 15 * 300, 150):
            clock.now = t
            dispatcher.step()
            held = [w for lo, hi, w in ((a, b, committed), (c, d, reduction)) if w and lo <= t < hi]
            assert ev.setpoint_w == (full - max(held) if held else None), (t, held)


def test_a_restarted_node_applies_a_running_utility_window_again(tmp_path):
    dispatcher, device, ev, clock = charger(tmp_path)
    dispatcher.on_utility_event("long", "utility-flex", [(0, S, S + 1_800, 3_000)])
    reference = power_at(ev, clock, S)
    dispatcher.step()
    assert ev.setpoint_w == reference - 3_000
    again, device_again, ev_again, _clock = charger(tmp_path)  # the same database, a rebuilt driver
    again.clock = clock
    again.devices = [NodeDevice(device.address, device.key, ev_again, 1, 7_400)]
    clock.now = S + 600
    assert ev_again.setpoint_w is None
    assert again.resume_applied() == 1
    assert ev_again.setpoint_w == reference - 3_000
