"""Device drivers: the `Device` interface (base) and deterministic simulators of flexible assets."""

from node.devices.base import (
    KIND_NUMBERS,
    Device,
    DeviceParams,
    DeviceUnavailable,
    SetpointResult,
    SimulatedDevice,
    kind_number,
)
from node.devices.battery import Battery, BatteryParams
from node.devices.ev_charger import EVCharger, EVChargerParams, SessionSpec
from node.devices.factory import DEVICE_CLASSES, DeviceConfigError, backfill, build_device, build_devices
from node.devices.household import Household, HouseholdParams
from node.devices.thermal import HVAC, HeatPump, HeatPumpParams, HVACParams, ThermalDevice, ThermalParams
from node.devices.water_heater import WaterHeater, WaterHeaterParams

__all__ = [
    "DEVICE_CLASSES",
    "HVAC",
    "KIND_NUMBERS",
    "Battery",
    "BatteryParams",
    "Device",
    "DeviceConfigError",
    "DeviceParams",
    "DeviceUnavailable",
    "EVCharger",
    "EVChargerParams",
    "HVACParams",
    "HeatPump",
    "HeatPumpParams",
    "Household",
    "HouseholdParams",
    "SessionSpec",
    "SetpointResult",
    "SimulatedDevice",
    "ThermalDevice",
    "ThermalParams",
    "WaterHeater",
    "WaterHeaterParams",
    "backfill",
    "build_device",
    "build_devices",
    "kind_number",
]
