"""The driver interface across every simulator: kinds, energy accounting, step-size independence,
determinism, setpoints and restore."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.devices import KIND_NUMBERS, Device, DeviceUnavailable, SetpointResult, kind_number
from node.devices.factory import DEVICE_CLASSES, build_device

DAY = 86_400
T0 = 1_700_006_400  # a UTC midnight
KINDS = sorted(DEVICE_CLASSES)


def make(kind: str, seed: int = 1, start: float = T0, **params):
    return build_device({"kind": kind, "device_id": f"{kind}-{seed}", "seed": seed, **params}, start_time=start)


def test_kind_numbers_match_the_registry():
    assert KIND_NUMBERS == {"ev_charger": 0, "heat_pump": 1, "hvac": 2, "battery": 3, "water_heater": 4,
                            "household": 5, "site_meter": 6}
    for kind in KINDS:
        device = make(kind)
        assert isinstance(device, Device)
        assert device.kind == kind
        assert device.kind_number == kind_number(kind)
    with pytest.raises(ValueError, match="unknown device kind"):
        kind_number("toaster")
    assert issubclass(DeviceUnavailable, Exception)


@pytest.mark.parametrize("kind", KINDS)
def test_energy_register_is_the_integral_of_power(kind):
    """Over a day, energy_wh grows by the integral of power_w (constant over each sub-step) within 1 Wh."""
    device = make(kind, seed=5)
    step = device.step
    start_wh = device.energy_wh()
    integral_j = 0
    t = T0
    previous = start_wh
    for _ in range(DAY // step):
        power = device.power_w()
        assert power >= 0
        integral_j += power * step
        t += step
        device.advance(t)
        assert device.energy_wh() >= previous  # a meter register never goes back
        previous = device.energy_wh()
    assert integral_j > 0
    assert abs((device.energy_wh() - start_wh) - integral_j / 3600) < 1


@pytest.mark.parametrize("kind", KINDS)
def test_interval_readings_add_up_to_the_total(kind):
    device = make(kind, seed=9)
    readings, previous = [], device.energy_wh()
    for boundary in range(T0 + 900, T0 + DAY + 1, 900):
        device.advance(boundary)
        readings.append(device.energy_wh() - previous)
        previous = device.energy_wh()
    assert all(isinstance(r, int) and r >= 0 for r in readings)
    assert sum(readings) == device.energy_wh()


def _run(device, times, setpoint_at=None):
    """Advance through `times`; apply a setpoint at `setpoint_at` = (time, watts) and restore 2 h later."""
    for t in times:
        if setpoint_at and t == setpoint_at[0]:
            device.advance(t)
            device.apply_setpoint(setpoint_at[1], "test")
        elif setpoint_at and t == setpoint_at[0] + 7200:
            device.advance(t)
            device.restore()
        else:
            device.advance(t)
    return device.state()


@pytest.mark.parametrize("kind", KINDS)
def test_results_do_not_depend_on_how_often_advance_is_called(kind):
    end = T0 + DAY
    event = (T0 + 18 * 3600 + 7, 500)  # off the sub-step grid on purpose
    events = [event[0], event[0] + 7200]
    rng = random.Random(4)
    irregular, t = [], float(T0)
    while t < end:
        t = min(end, t + rng.choice([0.3, 1.7, 9.99, 10, 61.5, 600, 3599.9]))
        irregular.append(t)
    once = _run(make(kind), sorted({*events, end}), event)
    often = _run(make(kind), sorted({*irregular, *events}), event)
    every_second = _run(make(kind), sorted({*range(T0 + 1, end + 1), *events}), event)
    assert once == often == every_second
    assert once["energy_wh"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_reading_between_sub_steps_does_not_change_the_trajectory(kind):
    """state() and energy_wh() at off-grid times are views: they commit nothing."""
    a, b = make(kind), make(kind)
    for t in range(T0, T0 + 6 * 3600, 37):
        a.advance(t + 0.5)
        a.state(), a.energy_wh(), a.flexibility_w(t + 0.5)
    a.advance(T0 + 6 * 3600)
    b.advance(T0 + 6 * 3600)
    assert a.state() == b.state()


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_history_other_seed_other_history(kind):
    def readings(seed):
        device = make(kind, seed=seed)
        out = []
        for boundary in range(T0 + 900, T0 + 2 * DAY + 1, 900):
            device.advance(boundary)
            out.append(device.energy_wh())
        return out

    assert readings(11) == readings(11)
    if kind != "battery":  # the battery follows a fixed schedule: nothing random about it
        assert readings(11) != readings(12)


@pytest.mark.parametrize("kind", KINDS)
def test_state_is_json_and_carries_the_basics(kind):
    device = make(kind)
    device.advance(T0 + 12 * 3600 + 5)
    state = json.loads(json.dumps(device.state()))
    for key in ("device_id", "kind", "kind_number", "power_w", "energy_wh", "setpoint_w", "override"):
        assert key in state
    assert state["power_w"] == device.power_w()
    assert state["energy_wh"] == device.energy_wh()


def test_advance_never_goes_back():
    device = make("household")
    device.advance(T0 + 3600)
    energy, state = device.energy_wh(), device.state()
    device.advance(T0 + 1800)  # a metering boundary before the device's clock: ignored
    assert device.energy_wh() == energy and device.state() == state


def test_setpoint_arguments_are_checked():
    device = make("heat_pump")
    with pytest.raises(ValueError):
        device.apply_setpoint(-1, "negative")
    with pytest.raises(TypeError):
        device.apply_setpoint(1.5, "not watts")


def test_household_is_metered_but_not_curtailable():
    device = make("household")
    assert device.capacity_w == 0
    device.advance(T0 + 19 * 3600)
    assert device.power_w() > 0
    result = device.apply_setpoint(0, "event")
    assert isinstance(result, SetpointResult)
    assert not result.honoured and "not curtailable" in result.reason
    assert device.flexibility_w(T0 + 19 * 3600) == 0


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 10**6),
       schedule=st.lists(st.tuples(st.integers(1, 7200), st.none() | st.integers(0, 8000)), max_size=8))
def test_power_is_never_negative_nor_above_the_maximum(kind, seed, schedule):
    device = make(kind, seed=seed)
    t = T0
    for seconds, setpoint in schedule:
        t += seconds
        device.advance(t)
        if setpoint is None:
            device.restore()
        else:
            device.apply_setpoint(setpoint, "random")
        assert 0 <= device.power_w() <= device.max_power_w
