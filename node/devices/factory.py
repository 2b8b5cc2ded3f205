"""Build simulated devices from configuration, and backfill their history.

A device's configuration is one flat mapping: `kind`, `device_id`, optional `seed` (int, default 0)
and the parameters of that kind (see the `*Params` models; unknown keys are errors), e.g.

    {"kind": "ev_charger", "device_id": "ev-1", "seed": 7, "max_power_w": 11000}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from node.devices.interface import KIND_NUMBERS, Device
from node.devices.simulated import SimulatedDevice
from node.devices.battery import Battery
from node.devices.ev_charger import EVCharger
from node.devices.household import Household
from node.devices.thermal import HVAC, HeatPump
from node.devices.water_heater import WaterHeater

DEVICE_CLASSES: dict[str, type[SimulatedDevice]] = {
    "ev_charger": EVCharger,
    "heat_pump": HeatPump,
    "hvac": HVAC,
    "battery": Battery,
    "water_heater": WaterHeater,
    "household": Household,
}
assert set(DEVICE_CLASSES) == set(KIND_NUMBERS) - {"site_meter"}  # a site meter sums the others (node.devices.site_meter)


class DeviceConfigError(ValueError):
    """A device configuration that cannot be built; the message says which device and which field."""


def _describe(errors: list[dict]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"]) or "(parameters)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def build_device(config: Mapping[str, Any], *, start_time: float = 0.0) -> SimulatedDevice:
    """A simulator from its configuration, in its initial state at `start_time`."""
    if not isinstance(config, Mapping):
        raise DeviceConfigError(f"a device configuration is a mapping, got {type(config).__name__}")
    rest = dict(config)
    device_id = rest.pop("device_id", None)
    kind = rest.pop("kind", None)
    seed = rest.pop("seed", 0)
    label = f"device {device_id!r}" if device_id else "device"
    if not isinstance(device_id, str) or not device_id.strip():
        raise DeviceConfigError(f"{label}: device_id is required (a non-empty string)")
    if kind not in DEVICE_CLASSES:
        raise DeviceConfigError(f"{label}: kind must be one of {', '.join(DEVICE_CLASSES)}; got {kind!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DeviceConfigError(f"{label} ({kind}): seed must be an integer, got {seed!r}")
    cls = DEVICE_CLASSES[kind]
    try:
        params = cls.params_model.model_validate(rest)
    except ValidationError as error:
        raise DeviceConfigError(f"{label} ({kind}): {_describe(error.errors())}") from None
    return cls(device_id, params, seed=seed, start_time=start_time)


def build_devices(configs: list[Mapping[str, Any]], *, start_time: float = 0.0) -> list[SimulatedDevice]:
    """Simulators for a list of configurations; device ids must be unique."""
    devices = [build_device(config, start_time=start_time) for config in configs]
    seen: set[str] = set()
    for device in devices:
        if device.device_id in seen:
            raise DeviceConfigError(f"device {device.device_id!r}: device_id used twice")
        seen.add(device.device_id)
    return devices


def backfill(device: Device, start: int, end: int, interval_seconds: int) -> list[int]:
    """Integer Wh per interval over [start, end), from a fresh copy of `device` started at `start`.

    `device` itself is not touched. Deterministic for the device's parameters and seed. `start` must
    be a multiple of `interval_seconds` (as MeterBatch requires) and `end - start` a multiple too.
    """
    return backfill_with_state(device, start, end, interval_seconds)[0]


def backfill_with_state(device: Device, start: int, end: int, interval_seconds: int) -> tuple[list[int], Device]:
    """As `backfill`, and the simulator at `end`, so a devnet node can continue from its history
    (node.device_state) instead of starting its devices afresh."""
    if not isinstance(device, SimulatedDevice):
        raise TypeError(f"only simulated devices have a history to backfill, not {type(device).__name__}")
    for name, value in (("start", start), ("end", end), ("interval_seconds", interval_seconds)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int")
    if interval_seconds <= 0:
        raise ValueError("interval_seconds must be > 0")
    if end < start or (end - start) % interval_seconds or start % interval_seconds:
        raise ValueError("start and end must be interval boundaries with start <= end")
    simulator = device.fresh(start)
    readings = []
    previous = simulator.energy_wh()
    for boundary in range(start + interval_seconds, end + 1, interval_seconds):
        simulator.advance(boundary)
        counter = simulator.energy_wh()
        readings.append(counter - previous)
        previous = counter
    return readings, simulator
