"""The common part of every real device driver: connection supervision with back-off, the last
reading and its freshness, and the synchronous `Device` interface on top of asynchronous I/O.

A real driver does not integrate physics: `advance(to_time)` only checks that the device answered
recently (its last reading is at most `stale_seconds` old, taken while connected) and raises
`DeviceUnavailable` otherwise; `power_w()` and `energy_wh()` are the device's own last reading
(the energy from its own meter register). Setpoints are sent to the device and confirmed: a
setpoint is `honoured` only when the device accepted it and its power came down to the limit within
`confirm_seconds`. A device that does not answer raises `DeviceUnavailable` for a setpoint (so it
is never counted as curtailing). `restore()` on an unreachable device is remembered and carried
out as soon as the device answers again; a setpoint in force when the connection dropped is sent
again on reconnection (a charger or inverter that rebooted may have forgotten it).

Subclasses implement the coroutines `_connect()`, `_serve()` (returns or raises when the
connection is lost; keeps `self._reading` fresh), `_disconnect()`, `_apply(max_power_w)` and
`_restore()`; they all run on the drivers' loop (node.drivers.aioloop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import node.drivers.aioloop as aioloop  # the module, not the package: the package builds drivers
from node.devices.interface import Device, DeviceUnavailable, SetpointResult
from node.drivers.backoff import Backoff
from node.drivers.settings import DriverSettings

log = logging.getLogger("negawatt.node.drivers")


class DriverError(Exception):
    """The device answered, but not as the driver expects (an exception response, a bad value)."""


@dataclass(frozen=True)
class Reading:
    """One reading of a real device."""

    power_w: int  # grid import now, >= 0
    energy_wh: int  # the device's import counter
    at: float  # time.monotonic() when read
    wall: float  # time.time() when read
    details: dict[str, Any] = field(default_factory=dict)


class LiveDevice(Device):
    """A device reached over the network; see the module docstring."""

    driver_name = "live"
    live = True  # metering reads "now", not at an exact boundary (see node.metering)

    def __init__(self, device_id: str, kind: str, capacity_w: int, settings: DriverSettings):
        if not device_id:
            raise ValueError("device_id must not be empty")
        self.device_id, self.kind, self.capacity_w, self.settings = device_id, kind, capacity_w, settings
        self.max_read_delay_seconds = settings.max_read_delay_seconds
        self.backoff = Backoff(settings.backoff_initial_seconds, settings.backoff_max_seconds)
        self._reading: Reading | None = None
        self._connected = False
        self._error = "not started"
        self._setpoint: int | None = None
        self._setpoint_reason = ""
        self._restore_pending = False
        self._future = None
        self.connects = 0
        self.failures = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (in the background, with back-off); idempotent."""
        if self._future is None:
            self._error = "connecting"
            self._future = aioloop.submit(self._supervise())

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the connection and its task."""
        if self._future is not None:
            self._future.cancel()
            self._future = None
            try:
                aioloop.run(self._close(), timeout)
            except Exception:  # already gone
                pass
        self._connected = False
        self._error = "stopped"

    async def _supervise(self) -> None:
        while True:
            try:
                await self._connect()
                self.connects += 1  # the counters first: another thread that sees it connected sees them too
                self.backoff.reset()
                self._connected, self._error = True, ""
                log.info("%s %s: connected%s", self.driver_name, self.device_id,
                         f" (reconnect {self.connects - 1})" if self.connects > 1 else "")
                if self._restore_pending:
                    await self._restore()
                    self._finish_restore()
                elif self._setpoint is not None:  # a device that restarted may have forgotten it
                    result = await self._apply(self._setpoint)
                    log.info("%s %s: setpoint %d W applied again after reconnecting (%s)", self.driver_name,
                             self.device_id, self._setpoint, "honoured" if result.honoured else result.reason)
                await self._serve()
                raise ConnectionError("connection closed")
            except asyncio.CancelledError:
                self._connected = False
                raise
            except Exception as error:  # any I/O failure: report, back off, reconnect
                if self._connected or self.failures == 0:
                    log.warning("%s %s: unavailable: %s", self.driver_name, self.device_id, _describe(error))
                self._connected, self._error = False, _describe(error)
                self.failures += 1
                try:
                    await self._disconnect()
                except Exception:
                    pass
                await asyncio.sleep(self.backoff.next_delay())

    # -- availability ----------------------------------------------------------------------------

    def available(self) -> bool:
        """Connected, with a reading no older than `stale_seconds`."""
        reading = self._reading
        return (self._connected and reading is not None
                and time.monotonic() - reading.at <= self.settings.stale_seconds)

    def unavailable_reason(self) -> str:
        """Why the device is unavailable ('' when it is available)."""
        if self.available():
            return ""
        if not self._connected:
            return self._error or "not connected"
        if self._reading is None:
            return "no reading yet"
        return f"last reading {time.monotonic() - self._reading.at:.0f} s old (stale after {self.settings.stale_seconds:g} s)"

    def _require(self) -> Reading:
        if not self.available():
            raise DeviceUnavailable(f"{self.driver_name} {self.device_id}: {self.unavailable_reason()}")
        return self._reading

    # -- the Device interface --------------------------------------------------------------------

    def advance(self, to_time: float) -> None:
        """Check that the device answers (its reading is fresh); raises DeviceUnavailable if not."""
        self._require()

    def power_w(self) -> int:
        return self._require().power_w

    def energy_wh(self) -> int:
        return self._require().energy_wh

    def flexibility_w(self, now: float) -> int:
        """What it draws now, up to its capacity: a real device can shed all of it."""
        return min(self.capacity_w, self._require().power_w)

    def apply_setpoint(self, max_power_w: int, reason: str) -> SetpointResult:
        if isinstance(max_power_w, bool) or not isinstance(max_power_w, int):
            raise TypeError("max_power_w must be an int (W)")
        if max_power_w < 0:
            raise ValueError("max_power_w must be >= 0")
        if not self._connected:
            raise DeviceUnavailable(f"{self.driver_name} {self.device_id}: {self.unavailable_reason()}")
        timeout = self.settings.timeout_seconds * 3 + self.settings.confirm_seconds
        try:
            result: SetpointResult = aioloop.run(self._apply(max_power_w), timeout)
        except (TimeoutError, ConnectionError, OSError, DriverError) as error:
            raise DeviceUnavailable(f"{self.driver_name} {self.device_id}: setpoint failed: {_describe(error)}") from None
        self._setpoint, self._setpoint_reason = max_power_w, reason
        self._restore_pending = False
        log.info("%s %s: setpoint %d W (%s): consuming %d W, %s", self.driver_name, self.device_id, max_power_w,
                 reason, result.power_w, "honoured" if result.honoured else f"not honoured: {result.reason}")
        return result

    def restore(self) -> None:
        """End curtailment; if the device does not answer, it is restored when it answers again."""
        self._restore_pending = True
        if not self._connected:
            raise DeviceUnavailable(f"{self.driver_name} {self.device_id}: {self.unavailable_reason()}; "
                                    "restoring when it answers again")
        try:
            aioloop.run(self._restore(), self.settings.timeout_seconds * 3)
        except (TimeoutError, ConnectionError, OSError, DriverError) as error:
            raise DeviceUnavailable(f"{self.driver_name} {self.device_id}: restore failed ({_describe(error)}); "
                                    "retrying when it answers again") from None
        self._finish_restore()

    def _finish_restore(self) -> None:
        self._restore_pending = False
        self._setpoint, self._setpoint_reason = None, ""
        log.info("%s %s: restored", self.driver_name, self.device_id)

    def state(self) -> dict:
        """Never raises: availability, the last reading and its age, the setpoint."""
        reading, available = self._reading, self.available()
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "kind_number": self.kind_number,
            "driver": self.driver_name,
            "available": available,
            "error": self.unavailable_reason(),
            "connected": self._connected,
            "connects": self.connects,
            "time": reading.wall if reading else None,
            "age_seconds": round(time.monotonic() - reading.at, 1) if reading else None,
            "power_w": reading.power_w if reading else None,
            "energy_wh": reading.energy_wh if reading else None,
            "capacity_w": self.capacity_w,
            "setpoint_w": self._setpoint,
            "setpoint_reason": self._setpoint_reason,
            "curtailing": available and self._setpoint is not None,
            "restore_pending": self._restore_pending,
            **(reading.details if reading else {}),
        }

    # -- for subclasses --------------------------------------------------------------------------

    def _store(self, power_w: int, energy_wh: int, **details: Any) -> Reading:
        self._reading = Reading(max(0, int(power_w)), int(energy_wh), time.monotonic(), time.time(), details)
        return self._reading

    async def _wait_for_power(self, max_power_w: int) -> int:
        """Wait up to `confirm_seconds` for a reading at or below `max_power_w`; the last power seen."""
        deadline = time.monotonic() + self.settings.confirm_seconds
        started = time.monotonic()
        while True:
            reading = self._reading
            if reading is not None and reading.at >= started and reading.power_w <= max_power_w:
                return reading.power_w
            if time.monotonic() >= deadline:
                return reading.power_w if reading is not None else -1
            await self._refresh()
            await asyncio.sleep(0.05)

    async def _refresh(self) -> None:
        """Ask the device for a fresh reading (default: wait for the next one)."""
        await asyncio.sleep(0.2)

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _serve(self) -> None:
        raise NotImplementedError

    async def _disconnect(self) -> None:
        return None

    async def _close(self) -> None:
        """Stopping the driver for good (default: disconnect)."""
        await self._disconnect()

    async def _apply(self, max_power_w: int) -> SetpointResult:
        raise NotImplementedError

    async def _restore(self) -> None:
        raise NotImplementedError


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if type(error).__name__ in text else f"{type(error).__name__}: {text}"
