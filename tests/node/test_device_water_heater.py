"""Water heater: losses, draws, thermostat, curtailment limited by the minimum tank temperature."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from node.devices.water_heater import WaterHeater, WaterHeaterParams

T0 = 1_700_006_400
HOUR = 3_600
C = 200 * 4_186.0  # J/K of a 200 L tank


def heater(seed=0, **params) -> WaterHeater:
    return WaterHeater("wh", WaterHeaterParams(**params), seed=seed, start_time=T0)


def test_standing_losses_follow_the_exponential():
    wh = heater(draw_scale=0, initial_temp_c=60.0)
    wh.apply_setpoint(0, "off")
    wh.advance(T0 + 10 * HOUR)
    expected = 20 + 40 * math.exp(-2.0 * 10 * HOUR / C)
    assert wh.state()["tank_c"] == pytest.approx(expected, abs=1e-4)
    assert wh.energy_wh() == 0


def test_element_heats_at_full_power_below_the_deadband():
    wh = heater(draw_scale=0, initial_temp_c=46.0)
    assert wh.power_w() == 3_000
    wh.advance(T0 + HOUR)
    assert wh.energy_wh() == 3_000
    # 3 kWh into 200 L, less a little standing loss: about 12.9 K
    assert wh.state()["tank_c"] == pytest.approx(46 + 3_000 * HOUR / C, abs=0.3)
    wh.advance(T0 + 2 * HOUR)
    assert wh.power_w() == 0 and 62.0 < wh.state()["tank_c"] < 62.6  # switched off at 62.5 C, cooling since


def test_draws_are_deterministic_and_plausible():
    a, b, c = heater(seed=1), heater(seed=1), heater(seed=2)
    assert a.draws_of_day(19_700) == b.draws_of_day(19_700) != c.draws_of_day(19_700)
    for day in range(19_700, 19_730):
        litres = sum(minutes * flow for _, minutes, flow in a.draws_of_day(day))
        assert 20 < litres < 250
    a.advance(T0 + 86_400)
    assert a.state()["drawn_l"] == pytest.approx(sum(m * f for _, m, f in a.draws_of_day(T0 // 86_400)), abs=1e-3)


def test_curtailment_is_honoured_above_the_minimum_then_overridden():
    wh = heater(draw_scale=0, initial_temp_c=46.0)
    result = wh.apply_setpoint(0, "flex")
    assert result.honoured and wh.power_w() == 0
    temperatures = []
    for t in range(T0 + 60, T0 + 12 * HOUR, 60):
        wh.advance(t)
        temperatures.append(wh.state()["tank_c"])
    assert min(temperatures) >= 45.0
    state = wh.state()
    assert state["override"] and "hot water" in state["override_reason"]
    assert state["tank_c"] == pytest.approx(45.1, abs=0.01)
    assert wh.power_w() == pytest.approx(2.0 * (45.1 - 20), abs=2)  # holding against standing losses
    wh.restore()
    assert wh.power_w() == 3_000


def test_flexibility():
    assert heater(draw_scale=0, initial_temp_c=50.0).flexibility_w(T0) == 3_000
    assert heater(draw_scale=0, initial_temp_c=61.0).flexibility_w(T0) == 0  # not heating: nothing to shed
    # at the minimum it can shed all but what keeps it at 45.1 C for the next 15 minutes
    holding = 0.1 * C / 900 + 2.0 * 25.05
    assert heater(draw_scale=0, initial_temp_c=45.0).flexibility_w(T0) == pytest.approx(3_000 - holding, abs=2)


def test_parameters_are_validated():
    with pytest.raises(ValidationError, match="min_temp_c"):
        WaterHeaterParams(min_temp_c=58.0)
    with pytest.raises(ValidationError, match="inlet_c"):
        WaterHeaterParams(inlet_c=50.0, min_temp_c=45.0)


setpoints = st.none() | st.integers(0, 100) | st.integers(0, 3_000)  # None: restore
schedules = st.lists(st.tuples(st.integers(60, 8 * HOUR), setpoints), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(initial=st.floats(45.0, 52.0), schedule=schedules)
def test_without_draws_curtailment_never_takes_the_tank_below_the_minimum(initial, schedule):
    wh = heater(draw_scale=0, initial_temp_c=initial)
    t = T0
    for seconds, setpoint in schedule:
        wh.restore() if setpoint is None else wh.apply_setpoint(setpoint, "random")
        for step in range(0, seconds, 120):
            wh.advance(t + step + 1)
            assert wh.state()["tank_c"] >= 45.0
        t += seconds


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), scale=st.floats(0.5, 3.0), schedule=schedules)
def test_below_the_minimum_the_element_always_runs_at_full_power(seed, scale, schedule):
    """Big draws can pull the tank under the minimum; curtailment is then never in effect."""
    wh = heater(seed=seed, draw_scale=scale)
    t = T0
    for seconds, setpoint in schedule:
        wh.restore() if setpoint is None else wh.apply_setpoint(setpoint, "random")
        for step in range(0, seconds, 60):
            wh.advance(t + step)
            if wh.state()["tank_c"] < 45.0:
                assert wh.power_w() == 3_000
        t += seconds
