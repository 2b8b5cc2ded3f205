"""Home battery: SoC bounds, efficiency, schedule, curtailment of charging."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from node.devices.battery import Battery, BatteryParams

T0 = 1_700_006_400  # UTC midnight
EPS = 1e-6


def battery(**params) -> Battery:
    return Battery("bat", BatteryParams(**params), start_time=T0)


def test_charges_in_the_night_window_with_sqrt_eta_losses():
    bat = battery(initial_soc=0.2)
    bat.advance(T0 + 3600 - 1)
    assert bat.power_w() == 0 and bat.soc() == pytest.approx(0.2)
    bat.advance(T0 + 3600)
    assert bat.power_w() == 5_000
    bat.advance(T0 + 3600 + 720)  # 12 min at 5 kW = 1 kWh from the grid
    assert bat.energy_wh() == 1_000
    assert bat.soc() * 10_000 == pytest.approx(2_000 + 1_000 * math.sqrt(0.9))
    bat.advance(T0 + 5 * 3600)
    assert bat.soc() == pytest.approx(0.95, abs=EPS)  # full: stopped at max_soc
    assert bat.power_w() == 0


def test_discharges_to_the_house_in_the_evening_without_negative_power():
    bat = battery(initial_soc=0.5, discharge_w=3_000)
    bat.advance(T0 + 17 * 3600)
    energy, soc_wh = bat.energy_wh(), bat.state()["soc_wh"]
    assert soc_wh == pytest.approx(9_500)  # charged overnight
    bat.advance(T0 + 18 * 3600)
    state = bat.state()
    assert state["discharge_w"] == 3_000 and bat.power_w() == 0
    assert state["discharged_wh"] == pytest.approx(3_000)
    assert state["soc_wh"] == pytest.approx(9_500 - 3_000 / math.sqrt(0.9))
    assert bat.energy_wh() == energy  # discharge is not on the import register
    bat.advance(T0 + 21 * 3600)
    assert bat.soc() == pytest.approx(0.1, abs=EPS)  # emptied to min_soc and stopped there
    assert bat.state()["discharge_w"] == 0
    assert bat.state()["discharged_wh"] == pytest.approx(8_500 * math.sqrt(0.9), abs=0.01)


def test_curtailment_limits_charging_and_restore_resumes():
    bat = battery(initial_soc=0.2)
    bat.advance(T0 + 2 * 3600)
    assert bat.flexibility_w(T0 + 2 * 3600) == 5_000
    result = bat.apply_setpoint(1_200, "flex")
    assert result.honoured and result.power_w == 1_200 and bat.power_w() == 1_200
    before = bat.energy_wh()
    bat.advance(T0 + 3 * 3600)
    assert bat.energy_wh() - before == 1_200
    assert bat.apply_setpoint(0, "flex").power_w == 0
    bat.advance(T0 + 3 * 3600 + 600)
    assert bat.power_w() == 0
    bat.restore()
    assert bat.power_w() == 5_000 and bat.state()["setpoint_w"] is None


def test_parameters_are_validated():
    with pytest.raises(ValidationError, match="min_soc must be < max_soc"):
        BatteryParams(min_soc=0.9, max_soc=0.5, initial_soc=0.6)
    with pytest.raises(ValidationError, match="initial_soc"):
        BatteryParams(initial_soc=0.99)
    with pytest.raises(ValidationError, match="overlap"):
        BatteryParams(charge_windows=[(16.0, 18.0)])


windows = st.tuples(st.integers(0, 23), st.integers(1, 8)).map(lambda w: (float(w[0]), float((w[0] + w[1]) % 24 or 24)))


@settings(max_examples=40, deadline=None)
@given(
    capacity_wh=st.integers(1_000, 20_000),
    soc=st.tuples(st.floats(0, 0.5), st.floats(0.55, 1.0), st.floats(0, 1)),
    eta=st.floats(0.5, 1.0),
    max_charge_w=st.integers(100, 11_000),
    discharge_w=st.integers(0, 11_000),
    charge_window=windows,
    schedule=st.lists(st.tuples(st.integers(1, 4 * 3600), st.none() | st.integers(0, 12_000)), max_size=12),
)
def test_soc_never_leaves_its_bounds(capacity_wh, soc, eta, max_charge_w, discharge_w, charge_window, schedule):
    low, high, where = soc
    end = charge_window[1]
    discharge = ((end % 24), (end % 24 + 3) % 24 or 24.0)
    try:
        params = BatteryParams(capacity_wh=capacity_wh, min_soc=low, max_soc=high,
                               initial_soc=low + where * (high - low), round_trip_efficiency=eta,
                               max_charge_w=max_charge_w, max_discharge_w=discharge_w, discharge_w=discharge_w,
                               charge_windows=[charge_window], discharge_windows=[discharge])
    except ValidationError:
        return  # windows that overlap: rejected, nothing to simulate
    bat = Battery("bat", params, start_time=T0)
    t, active = T0, None
    for seconds, setpoint in schedule + [(86_400, None)]:
        for part in (seconds // 3, seconds):  # check in the middle of each step too
            bat.advance(t + part)
            assert low - EPS <= bat.soc() <= high + EPS
            assert 0 <= bat.power_w() <= (max_charge_w if active is None else min(max_charge_w, active))
        t, active = t + seconds, setpoint
        if setpoint is None:
            bat.restore()
        else:
            bat.apply_setpoint(setpoint, "random")


def test_a_battery_without_a_schedule_stays_idle():
    bat = battery(charge_windows=[], discharge_windows=[])
    bat.advance(T0 + 30 * 86_400)
    assert bat.energy_wh() == 0 and bat.soc() == pytest.approx(0.5)
