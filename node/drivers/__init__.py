"""Real device drivers: Modbus TCP battery inverters, OCPP chargers (the node is their local Central
System), MQTT relays/plugs, and site meters (SunSpec over Modbus, Shelly over MQTT, DSMR P1). Each
is a `node.devices.interface.Device`; their I/O runs on one background asyncio loop (aioloop). Driver
libraries are imported only when a driver of that kind is built, so a node with simulated devices
only does not load them.
"""

from __future__ import annotations

from node.drivers.settings import DRIVER_KINDS, DRIVER_SETTINGS, DriverSettings


def build_driver(driver: str, kind: str, device_id: str, capacity_w: int, settings: DriverSettings):
    """The driver object for one configured real device (not started: call `.start()` to connect)."""
    if driver not in DRIVER_SETTINGS:
        raise ValueError(f"unknown driver {driver!r}; one of {', '.join(DRIVER_SETTINGS)}")
    if kind not in DRIVER_KINDS[driver]:
        raise ValueError(f"the {driver} driver cannot stand for a {kind}; it drives {', '.join(DRIVER_KINDS[driver])}")
    if not isinstance(settings, DRIVER_SETTINGS[driver]):
        raise TypeError(f"the {driver} driver needs {DRIVER_SETTINGS[driver].__name__}")
    if driver == "modbus":
        from node.drivers.modbus_inverter import ModbusInverter

        return ModbusInverter(device_id, kind, capacity_w, settings)
    if driver == "ocpp":
        from node.drivers.ocpp_central import OcppCharger

        return OcppCharger(device_id, kind, capacity_w, settings)
    if driver == "sunspec":
        from node.drivers.sunspec_meter import SunSpecMeter

        return SunSpecMeter(device_id, kind, capacity_w, settings)
    if driver == "shelly":
        from node.drivers.shelly_meter import ShellyMeter

        return ShellyMeter(device_id, kind, capacity_w, settings)
    if driver == "p1":
        from node.drivers.dsmr_p1 import DsmrP1Meter

        return DsmrP1Meter(device_id, kind, capacity_w, settings)
    from node.drivers.mqtt_relay import MqttRelay

    return MqttRelay(device_id, kind, capacity_w, settings)
