"""Heat pump / HVAC: the 1R1C model, the thermostat, and the comfort band under curtailment."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from node.devices.thermal import HVAC, HeatPump, HeatPumpParams, HVACParams

T0 = 1_700_006_400
HOUR = 3_600


def steady(cls=HeatPump, params_cls=HeatPumpParams, outdoor=-5.0, **params):
    """A device with a constant outdoor temperature."""
    return cls("t", params_cls(outdoor_mean_c=outdoor, outdoor_amplitude_k=0, outdoor_day_sd_k=0, **params),
               start_time=T0)


def test_free_drift_follows_the_exponential():
    hp = steady(outdoor=0.0, initial_temp_c=21.0)
    hp.apply_setpoint(0, "off")  # 21 -> ~19 over hours, then the comfort override starts
    hp.advance(T0 + HOUR)
    tau = 2.0e7 / 200.0
    assert hp.state()["indoor_c"] == pytest.approx(21.0 * math.exp(-HOUR / tau), abs=1e-4)
    assert hp.power_w() == 0 and not hp.state()["override"]


def test_thermostat_cycles_inside_its_deadband():
    hp = steady(outdoor=-5.0)
    temperatures, powers = [], set()
    for t in range(T0, T0 + 24 * HOUR, 60):
        hp.advance(t)
        temperatures.append(hp.state()["indoor_c"])
        powers.add(hp.power_w())
    assert 20.45 < min(temperatures) and max(temperatures) < 21.55
    assert powers == {0, 3_000}  # on/off


def test_curtailment_is_honoured_while_comfortable_then_overridden_and_reported():
    hp = steady(outdoor=-5.0)
    hp.advance(T0 + 60)
    result = hp.apply_setpoint(0, "flex event")
    assert result.honoured and result.power_w == 0 and result.reason == ""
    temperatures, overridden_at = [], None
    for t in range(T0 + 120, T0 + 12 * HOUR, 60):
        hp.advance(t)
        state = hp.state()
        temperatures.append(state["indoor_c"])
        if state["override"] and overridden_at is None:
            overridden_at = t
            assert "comfort" in state["override_reason"]
    assert overridden_at is not None
    assert min(temperatures) >= 19.0
    assert temperatures[-1] == pytest.approx(19.05, abs=0.01)  # held at the comfort limit (+ guard)
    holding = 200 * (19.05 + 5.0) / 3.0  # UA (T - T_out) / COP
    assert hp.power_w() == pytest.approx(holding, abs=5)
    assert hp.state()["override_seconds"] > 0
    # a new setpoint now cannot be honoured, and says why
    result = hp.apply_setpoint(100, "deeper")
    assert not result.honoured and result.power_w > 100 and "comfort" in result.reason
    hp.restore()
    assert hp.power_w() == 3_000 and not hp.state()["override"]
    hp.advance(T0 + 16 * HOUR)
    assert 20.4 < hp.state()["indoor_c"] < 21.6


def test_partial_setpoint_limits_power():
    hp = steady(outdoor=-5.0, initial_temp_c=20.0)  # below the deadband: heating at full power
    assert hp.power_w() == 3_000
    result = hp.apply_setpoint(1_200, "flex")
    assert result.honoured and hp.power_w() == 1_200
    hp.advance(T0 + HOUR)
    assert hp.power_w() == 1_200
    hp.restore()
    assert hp.power_w() == 3_000


def test_flexibility_is_what_can_be_shed_without_leaving_comfort():
    hp = steady(outdoor=-5.0, initial_temp_c=20.0)
    assert hp.flexibility_w(T0) == 3_000  # 15 min off from 20 C stays above 19.05 C
    cold = steady(outdoor=-5.0, initial_temp_c=19.06)
    assert 0 < cold.flexibility_w(T0) < 3_000
    idle = steady(outdoor=-5.0, initial_temp_c=21.4)
    assert idle.power_w() == 0 and idle.flexibility_w(T0) == 0


def test_hvac_cools_and_protects_the_upper_comfort_limit():
    ac = steady(HVAC, HVACParams, outdoor=35.0)
    ac.advance(T0 + 600)
    ac.apply_setpoint(0, "flex")
    peak = 0.0
    for t in range(T0 + 660, T0 + 12 * HOUR, 60):
        ac.advance(t)
        peak = max(peak, ac.state()["indoor_c"])
    assert 25.9 < peak <= 26.0
    assert ac.state()["override"] and ac.power_w() > 0


def test_outdoor_profile_is_daily_and_deterministic():
    hp = HeatPump("t", HeatPumpParams(outdoor_mean_c=5, outdoor_amplitude_k=6, outdoor_day_sd_k=0), start_time=T0)
    assert hp.outdoor_c(T0 + 15 * HOUR) == pytest.approx(11.0)
    assert hp.outdoor_c(T0 + 3 * HOUR) == pytest.approx(-1.0)
    a = HeatPump("t", HeatPumpParams(), seed=1, start_time=T0)
    b = HeatPump("t", HeatPumpParams(), seed=1, start_time=T0)
    c = HeatPump("t", HeatPumpParams(), seed=2, start_time=T0)
    times = range(T0, T0 + 5 * 86_400, 3_600)
    assert [a.outdoor_c(t) for t in times] == [b.outdoor_c(t) for t in times]
    assert [a.outdoor_c(t) for t in times] != [c.outdoor_c(t) for t in times]
    assert max(abs(a.outdoor_c(t + 1) - a.outdoor_c(t)) for t in times) < 0.01  # continuous


def test_parameters_are_validated():
    with pytest.raises(ValidationError, match="thermostat band"):
        HeatPumpParams(setpoint_c=18.0)
    with pytest.raises(ValidationError, match="initial_temp_c"):
        HeatPumpParams(initial_temp_c=25.0)


schedules = st.lists(st.tuples(st.integers(60, 6 * HOUR), st.none() | st.integers(0, 3_000)), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), mean=st.floats(-10, 8), amplitude=st.floats(0, 6), day_sd=st.floats(0, 1.5),
       initial=st.floats(19.0, 23.0), capacity=st.floats(2e6, 2e7), schedule=schedules)
def test_heat_pump_never_leaves_the_comfort_band(seed, mean, amplitude, day_sd, initial, capacity, schedule):
    hp = HeatPump("hp", HeatPumpParams(outdoor_mean_c=mean, outdoor_amplitude_k=amplitude, outdoor_day_sd_k=day_sd,
                                       initial_temp_c=initial, heat_capacity_j_per_k=capacity),
                  seed=seed, start_time=T0)
    _check_band(hp, schedule, 19.0, 23.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), mean=st.floats(26, 34), amplitude=st.floats(0, 5), day_sd=st.floats(0, 1.0),
       initial=st.floats(22.0, 26.0), capacity=st.floats(2e6, 2e7), schedule=schedules)
# hypothesis found it (CI, stop 26): a night at 21.9 °C outdoors takes a light house below the AC's 22 °C
@example(seed=0, mean=26.0, amplitude=4.0, day_sd=1.0, initial=22.0, capacity=2e6, schedule=[(301, None)])
def test_hvac_never_leaves_the_comfort_band(seed, mean, amplitude, day_sd, initial, capacity, schedule):
    ac = HVAC("ac", HVACParams(outdoor_mean_c=mean, outdoor_amplitude_k=amplitude, outdoor_day_sd_k=day_sd,
                               initial_temp_c=initial, heat_capacity_j_per_k=capacity), seed=seed, start_time=T0)
    _check_band(ac, schedule, 22.0, 26.0)


def _check_band(device, schedule, low, high):
    """The device keeps the house in [low, high], except where physics alone takes it out: a cooling
    unit cannot warm a house the night air cools below `low` (nor a heat pump cool one above `high`),
    so the band widens to the coldest (warmest) outdoor temperature seen so far (sampled every 60 s)."""
    t = T0
    coldest = warmest = device.outdoor_c(T0)
    for seconds, setpoint in schedule:
        if setpoint is None:
            device.restore()
        else:
            device.apply_setpoint(setpoint, "random")
        for step in range(0, seconds, 300):
            for moment in range(t + step, t + step + 301, 60):
                outdoor = device.outdoor_c(moment)
                coldest, warmest = min(coldest, outdoor), max(warmest, outdoor)
            device.advance(t + step + 1)
            assert min(low, coldest) - 1e-9 <= device.state()["indoor_c"] <= max(high, warmest) + 1e-9
            if device.setpoint_w is not None and device.power_w() > device.setpoint_w:
                assert device.state()["override"]  # any excess over the setpoint is a reported override
        t += seconds
