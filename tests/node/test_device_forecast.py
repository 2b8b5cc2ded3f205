"""A simulator's forecast of what it can shed (node.devices.simulated): the one-pass answer for
consecutive windows (`forecast_flexibility_windows_w`, what a day-ahead forecast uses) equals the
window-by-window answer, computed here the plain way: two fresh copies of the device per window,
one left alone and one under a 0 W setpoint from the window's start. The device itself is never
touched, and windows out of order are refused."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.devices.factory import build_device

KINDS = ("ev_charger", "heat_pump", "hvac", "battery", "water_heater")
T0 = 1_790_000_000  # a Thursday, 13:33:20 UTC


def shed_window_by_window(device, start: float, end: float) -> int:
    """The plain reference: each window on its own pair of fresh copies."""
    if end <= start:
        return 0
    energy = []
    for setpoint in (None, 0):
        probe = copy.deepcopy(device)
        if probe.setpoint_w is not None:
            probe.restore()
        probe.advance(start)
        if setpoint is not None:
            probe.apply_setpoint(setpoint, "reference")
        before = probe._view().energy_j  # joules, unrounded: the simulator's own register
        probe.advance(end)
        energy.append(probe._view().energy_j - before)
    return max(0, min(device.capacity_w, math.floor((energy[0] - energy[1]) / (end - start))))


@st.composite
def windows(draw):
    """Up to 6 windows from the device's now on, in order, with gaps, of 10 min to 2 h."""
    at = T0 + draw(st.integers(0, 3_600))
    out = []
    for _ in range(draw(st.integers(1, 6))):
        at += draw(st.sampled_from([0, 0, 600, 1_800, 3_600]))
        length = draw(st.sampled_from([600, 900, 3_600, 7_200]))
        out.append((at, at + length))
        at += length
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 50), lead=st.integers(0, 86_400),
       curtailed_now=st.booleans(), spans=windows())
def test_one_pass_equals_window_by_window_and_leaves_the_device_alone(kind, seed, lead, curtailed_now, spans):
    device = build_device({"kind": kind, "device_id": "d", "seed": seed}, start_time=T0 - lead)
    device.advance(T0 - 7)  # mid-step: the copies start from a partial sub-step
    if curtailed_now:
        device.apply_setpoint(device.capacity_w // 3, "a running window")
    before = device.snapshot(), device.state()
    expected = [shed_window_by_window(device, start, end) for start, end in spans]
    assert device.forecast_flexibility_windows_w(spans) == expected
    assert [device.forecast_flexibility_w(start, end) for start, end in spans] == expected
    assert (device.snapshot(), device.state()) == before


def test_a_day_of_hours_sheds_something_and_windows_out_of_order_are_refused():
    device = build_device({"kind": "heat_pump", "device_id": "hp", "seed": 3}, start_time=T0 - 86_400)
    device.advance(T0)
    day = (T0 // 3_600 + 1) * 3_600
    hours = [(day + h * 3_600, day + (h + 1) * 3_600) for h in range(24)]
    shed = device.forecast_flexibility_windows_w(hours)
    assert len(shed) == 24 and all(0 <= w <= device.capacity_w for w in shed) and sum(shed) > 0
    with pytest.raises(ValueError, match="time order"):
        device.forecast_flexibility_windows_w([hours[1], hours[0]])
    with pytest.raises(ValueError, match="not overlap"):
        device.forecast_flexibility_windows_w([(day, day + 7_200), (day + 3_600, day + 10_800)])
