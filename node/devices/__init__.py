"""Device drivers: the `Device` interface (node.devices.interface) and deterministic simulators of
flexible assets (node.devices.simulated and one module per kind).

Only the interface is re-exported here, so that importing the package (as every real driver of
node.drivers does, for the interface) does not load the simulators; import a simulator from its
module (node.devices.battery, ...) and the factory from node.devices.factory.
"""

from node.devices.interface import KIND_NUMBERS, Device, DeviceUnavailable, SetpointResult, kind_number

__all__ = ["KIND_NUMBERS", "Device", "DeviceUnavailable", "SetpointResult", "kind_number"]
