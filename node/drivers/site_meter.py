"""What every real site-meter driver shares (SunSpec over Modbus, Shelly over MQTT, DSMR P1): the
meter is read, never dispatched, and its import counter only ever goes up.

A site meter (kind `site_meter`) meters the premises' grid connection. It is read like every other
real device (node.drivers.live: background connection, back-off, freshness), but it has nothing to
curtail: `flexibility_w()` and `forecast_flexibility_w()` are 0, so the node never commits it, and
`apply_setpoint()` refuses with a SetpointResult that is not honoured and says why (the dispatcher
records the reason; nothing is sent to the meter and no setpoint is remembered). `restore()` has
nothing to undo and only logs.

The import energy the node signs must never decrease, but a meter's own register can: a 32-bit
accumulator wraps, a meter is replaced or its counters are reset. `MonotonicCounter` turns the
meter's raw counter into one that does not:

    raw goes up                  the counter follows it
    raw drops by <= jitter_wh    held at its last value (a rounding wobble, not a reset)
    raw drops, wrap modulus set, and the drop is more than half the modulus
                                 a wrap: the modulus is added (counting continues exactly)
    any other drop               a reset: counting continues from the last value, from the new raw
                                 (the energy between the last reading and the reset is lost, at
                                 most one poll's worth); logged and counted in `resets`

The counter's state is the driver's snapshot (Device.snapshot, saved by node.device_state after
every metering boundary), so a restarted node continues the same counter: a meter reset while the
node was down reads as a reset, not as energy going backwards.
"""

from __future__ import annotations

import logging
from typing import Any

from node.devices.interface import NOT_DISPATCHABLE, SetpointResult
from node.drivers.live import LiveDevice
from node.drivers.settings import DriverSettings

log = logging.getLogger("negawatt.node.drivers.site_meter")



class MonotonicCounter:
    """A never-decreasing integer Wh counter over a meter's raw register; see the module docstring."""

    def __init__(self, what: str, *, modulus_wh: int | None = None, jitter_wh: int = 1):
        if modulus_wh is not None and modulus_wh <= 0:
            raise ValueError("modulus_wh must be > 0")
        self.what, self.modulus_wh, self.jitter_wh = what, modulus_wh, jitter_wh
        self.offset_wh = 0
        self.last_raw_wh: int | None = None
        self.value_wh: int | None = None
        self.resets = 0
        self.wraps = 0

    def update(self, raw_wh: int, modulus_wh: int | None = None) -> int:
        """The counter after the meter reported `raw_wh` (integer Wh); `modulus_wh` overrides the
        wrap modulus for this reading (a SunSpec register's depends on its scale factor)."""
        if isinstance(raw_wh, bool) or not isinstance(raw_wh, int):
            raise TypeError(f"{self.what}: the raw counter must be an int (Wh)")
        if raw_wh < 0:
            raise ValueError(f"{self.what}: a negative energy counter ({raw_wh} Wh)")
        modulus = modulus_wh if modulus_wh is not None else self.modulus_wh
        last = self.last_raw_wh
        if last is not None and raw_wh < last:
            drop = last - raw_wh
            if drop <= self.jitter_wh:
                return self.value_wh  # a wobble: hold, and keep comparing with the higher raw value
            if modulus is not None and drop > modulus // 2:
                self.offset_wh += modulus
                self.wraps += 1
                log.info("%s: the energy register wrapped (%d -> %d Wh, modulus %d Wh)", self.what, last, raw_wh,
                         modulus)
            else:
                self.offset_wh += last
                self.resets += 1
                log.warning("%s: the energy register went back from %d to %d Wh (a meter reset or replacement): "
                            "counting on from %d Wh", self.what, last, raw_wh, self.offset_wh)
        self.last_raw_wh = raw_wh
        value = self.offset_wh + raw_wh
        self.value_wh = value if self.value_wh is None else max(self.value_wh, value)
        return self.value_wh

    def snapshot(self) -> dict[str, int | None]:
        """The counter's state, to continue it after a restart."""
        return {"offset_wh": self.offset_wh, "last_raw_wh": self.last_raw_wh, "value_wh": self.value_wh,
                "resets": self.resets, "wraps": self.wraps}

    def restore(self, state: dict[str, Any]) -> bool:
        """Continue from `snapshot()`'s `state`; False, unchanged, when it is not one."""
        keys = ("offset_wh", "last_raw_wh", "value_wh", "resets", "wraps")
        if not isinstance(state, dict) or set(state) != set(keys):
            return False
        if not all(state[k] is None or (isinstance(state[k], int) and state[k] >= 0) for k in keys):
            return False
        self.offset_wh, self.last_raw_wh, self.value_wh, self.resets, self.wraps = (
            state["offset_wh"], state["last_raw_wh"], state["value_wh"], state["resets"], state["wraps"])
        return True


class SiteMeterDevice(LiveDevice):
    """A real site meter: read like any live device, never dispatched."""

    driver_name = "site_meter"

    def __init__(self, device_id: str, kind: str, capacity_w: int, settings: DriverSettings, *,
                 modulus_wh: int | None = None):
        super().__init__(device_id, kind, capacity_w, settings)
        self.counter = MonotonicCounter(f"{self.driver_name} {device_id}", modulus_wh=modulus_wh)

    def snapshot(self) -> dict[str, Any] | None:
        """The import counter's state (its offset over the meter's register), saved across node restarts."""
        return {"driver": self.driver_name, "counter": self.counter.snapshot()}

    def resume(self, snapshot: dict[str, Any]) -> bool:
        """Continue the import counter of a previous run of this driver; False if `snapshot` is not one."""
        if not isinstance(snapshot, dict) or snapshot.get("driver") != self.driver_name:
            return False
        return self.counter.restore(snapshot.get("counter"))

    def flexibility_w(self, now: float) -> int:
        """Nothing: a site meter sheds no load of its own."""
        return 0

    def forecast_flexibility_w(self, start: float, end: float) -> int | None:
        """Nothing, over any window: the node never commits a site meter."""
        return 0

    def apply_setpoint(self, max_power_w: int, reason: str) -> SetpointResult:
        """Refuse: nothing is sent to the meter and no setpoint is kept; the result says why."""
        if isinstance(max_power_w, bool) or not isinstance(max_power_w, int):
            raise TypeError("max_power_w must be an int (W)")
        if max_power_w < 0:
            raise ValueError("max_power_w must be >= 0")
        reading = self._reading if self.available() else None
        power = reading.power_w if reading is not None else 0
        log.warning("%s %s: setpoint %d W (%s) refused: %s", self.driver_name, self.device_id, max_power_w, reason,
                    NOT_DISPATCHABLE)
        return SetpointResult(self.device_id, max_power_w, power, False, NOT_DISPATCHABLE)

    def restore(self) -> None:
        """Nothing to restore (a site meter is never curtailed); logged, never raises."""
        log.info("%s %s: restore ignored: %s", self.driver_name, self.device_id, NOT_DISPATCHABLE)

    def state(self) -> dict:
        """The live state, marked as a meter that cannot be dispatched."""
        return {**super().state(), "dispatchable": False}

    async def _apply(self, max_power_w: int) -> SetpointResult:  # never reached: apply_setpoint refuses
        raise RuntimeError(NOT_DISPATCHABLE)

    async def _restore(self) -> None:  # never reached: restore() does nothing
        return None
