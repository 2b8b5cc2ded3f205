"""Which driver stands for each configured device: a simulator (node.devices) or a real device's
driver (node.drivers). The one module that knows both, so neither package imports the other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.devices.factory import DeviceConfigError, build_device
from node.devices.interface import Device


def build_node_device(kind: str, device_id: str, capacity_w: int, params: Mapping[str, Any], driver: str = "simulated",
                      settings: Any = None, *, start_time: float = 0.0) -> Device:
    """The driver of one device of a node's configuration: a simulator (driver "simulated", from
    `params`) or a real device's driver (node.drivers; not connected until its `start()`)."""
    if driver == "simulated":
        return build_device({"kind": kind, "device_id": device_id, **params}, start_time=start_time)
    from node.drivers import build_driver  # driver libraries load only when a real device is configured

    try:
        return build_driver(driver, kind, device_id, capacity_w, settings)
    except (TypeError, ValueError) as error:
        raise DeviceConfigError(f"device {device_id!r}: {error}") from None


def is_simulated_site_meter(device: Any) -> bool:
    """Whether a configured device (node.config.DeviceConfig) is a simulated site meter, which is
    built from the node's other simulated devices (`build_site_meter`)."""
    return device.kind == "site_meter" and device.driver == "simulated"


def build_site_meter(device_id: str, members: list[Device], capacity_w: int, params: Mapping[str, Any], *,
                     start_time: float = 0.0) -> Device:
    """A simulated site meter over the node's simulated `members` and its own household (params:
    node.devices.site_meter.SiteMeterParams)."""
    from pydantic import ValidationError

    from node.devices.site_meter import SimulatedSiteMeter, SiteMeterParams

    try:
        return SimulatedSiteMeter(device_id, members, capacity_w, SiteMeterParams(**params), start_time=start_time)
    except (ValidationError, ValueError) as error:
        raise DeviceConfigError(f"site meter {device_id!r}: {error}") from None
