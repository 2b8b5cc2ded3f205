"""Factory: building devices from configuration with clear errors; backfilled history."""

from __future__ import annotations

import itertools

import pytest

from node.devices.battery import Battery
from node.devices.ev_charger import EVCharger
from node.devices.factory import DEVICE_CLASSES, DeviceConfigError, backfill, build_device, build_devices
from node.devices.household import Household
from node.devices.thermal import HeatPump

DAY = 86_400
T0 = 1_700_006_400
INTERVAL = 900


def test_builds_every_kind_with_its_parameters():
    for kind, cls in DEVICE_CLASSES.items():
        device = build_device({"kind": kind, "device_id": f"d-{kind}", "seed": 2}, start_time=T0)
        assert type(device) is cls and device.kind == kind and device.seed == 2 and device.now == T0
    ev = build_device({"kind": "ev_charger", "device_id": "ev", "max_power_w": 11_000, "efficiency": 0.9})
    assert isinstance(ev, EVCharger) and ev.capacity_w == 11_000
    bat = build_device({"kind": "battery", "device_id": "b", "capacity_wh": 13_500, "charge_windows": [[12, 15]]})
    assert isinstance(bat, Battery) and bat.params.charge_windows == [(12.0, 15.0)]
    hvac = build_device({"kind": "hvac", "device_id": "ac"})
    assert hvac.params.mode == "cool" and hvac.kind_number == 2
    assert build_device({"kind": "household", "device_id": "h"}).capacity_w == 0


@pytest.mark.parametrize("config, message", [
    ({"device_id": "x"}, "kind must be one of"),
    ({"kind": "toaster", "device_id": "x"}, "kind must be one of ev_charger"),
    ({"kind": "battery"}, "device_id is required"),
    ({"kind": "battery", "device_id": ""}, "device_id is required"),
    ({"kind": "battery", "device_id": "b", "seed": "7"}, "seed must be an integer"),
    ({"kind": "battery", "device_id": "b", "capacity_wh": -5}, "device 'b' (battery): capacity_wh: Input should be greater than 0"),
    ({"kind": "battery", "device_id": "b", "min_soc": 0.9, "max_soc": 0.5}, "min_soc must be < max_soc"),
    ({"kind": "heat_pump", "device_id": "h", "max_power": 3000}, "max_power: Extra inputs are not permitted"),
    ({"kind": "heat_pump", "device_id": "h", "comfort_min_c": 21.5}, "thermostat band"),
    ({"kind": "ev_charger", "device_id": "e", "max_power_w": "lots"}, "max_power_w: Input should be a valid integer"),
    ({"kind": "ev_charger", "device_id": "e", "sessions": [{"arrival": 120, "departure": 60, "energy_needed_wh": 1}]},
     "departure must be after arrival"),
    ({"kind": "water_heater", "device_id": "w", "step_seconds": 7}, "step_seconds: Value error, must divide 60"),
    ({"kind": "household", "device_id": "h", "utc_offset_hours": 0.001}, "whole number of minutes"),
])
def test_invalid_configurations_say_what_is_wrong(config, message):
    with pytest.raises(DeviceConfigError) as error:
        build_device(config)
    assert message in str(error.value)


def test_configuration_must_be_a_mapping_and_ids_unique():
    with pytest.raises(DeviceConfigError, match="mapping"):
        build_device(["battery"])
    with pytest.raises(DeviceConfigError, match="used twice"):
        build_devices([{"kind": "battery", "device_id": "a"}, {"kind": "household", "device_id": "a"}])
    assert len(build_devices([{"kind": "battery", "device_id": "a"}, {"kind": "household", "device_id": "b"}])) == 2


@pytest.mark.parametrize("kind", sorted(DEVICE_CLASSES))
def test_backfill_is_plausible_integer_wh(kind):
    device = build_device({"kind": kind, "device_id": kind, "seed": 4}, start_time=T0 + 10 * DAY)
    readings = backfill(device, T0, T0 + 3 * DAY, INTERVAL)
    assert len(readings) == 3 * DAY // INTERVAL
    ceiling = device.max_power_w * INTERVAL // 3600 + 1  # a floored register can gain 1 Wh at a boundary
    assert all(isinstance(r, int) and 0 <= r <= ceiling for r in readings)
    assert sum(readings) > 0
    # the same as metering a fresh simulator live, interval by interval
    live = build_device({"kind": kind, "device_id": kind, "seed": 4}, start_time=T0)
    counters = [live.energy_wh()]
    for boundary in range(T0 + INTERVAL, T0 + 3 * DAY + 1, INTERVAL):
        live.advance(boundary)
        counters.append(live.energy_wh())
    assert readings == [b - a for a, b in itertools.pairwise(counters)]
    assert sum(readings) == live.energy_wh()


def test_backfill_is_deterministic_and_leaves_the_device_alone():
    device = build_device({"kind": "heat_pump", "device_id": "hp", "seed": 8}, start_time=T0 + 5 * DAY)
    device.advance(T0 + 5 * DAY + 3600)
    state = device.state()
    first = backfill(device, T0, T0 + 2 * DAY, INTERVAL)
    assert first == backfill(device, T0, T0 + 2 * DAY, INTERVAL)
    assert device.state() == state
    other = build_device({"kind": "heat_pump", "device_id": "hp", "seed": 9})
    assert backfill(other, T0, T0 + 2 * DAY, INTERVAL) != first
    # a plausible daily shape: a heat pump at 5 C mean uses kWh a day, a household several kWh
    assert 10_000 < sum(first) / 2 < 40_000
    household = backfill(Household("h", seed=1), T0, T0 + DAY, INTERVAL)
    assert 5_000 < sum(household) < 15_000
    assert isinstance(device, HeatPump)


def test_backfill_checks_its_arguments():
    device = build_device({"kind": "battery", "device_id": "b"})
    with pytest.raises(ValueError):
        backfill(device, T0 + 1, T0 + DAY + 1, INTERVAL)  # not on an interval boundary
    with pytest.raises(ValueError):
        backfill(device, T0, T0 + 100, INTERVAL)
    with pytest.raises(ValueError):
        backfill(device, T0, T0 + DAY, 0)
    with pytest.raises(TypeError):
        backfill(object(), T0, T0 + DAY, INTERVAL)
    assert backfill(device, T0, T0, INTERVAL) == []
