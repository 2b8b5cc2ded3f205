"""The driver interface every device implements, simulated or real; nothing here simulates.

A driver (a simulator of node.devices, or a Modbus, OCPP or MQTT driver of node.drivers) is a `Device`:

    advance(to_time)                 bring the device up to `to_time` (unix seconds): simulators
                                     integrate their physics, real drivers poll
    power_w() -> int                 consumption now, W, >= 0
    energy_wh() -> int               cumulative consumed energy, integer Wh, never decreasing
    apply_setpoint(max_power_w, reason) -> SetpointResult
                                     curtail: consume at most `max_power_w` from now on, as far as
                                     the device's constraints (comfort, safety) allow
    restore()                        end curtailment, back to normal behaviour
    state() -> dict                  JSON-able status (power, energy, SoC/temperatures/session,
                                     setpoint, comfort limits, overrides)
    flexibility_w(now) -> int        W it could shed right now without breaking its constraints
                                     (simulators advance to `now` first)

Optional features have defaults here, so callers ask the interface instead of probing objects:

    live                             True for a real device (its state is what it last reported)
    max_read_delay_seconds           how late a meter boundary may still be read (inf: any time)
    setpoint_w                       the setpoint the driver knows to be in force (None: none known)
    start() / stop()                 connect / disconnect a real device (no-ops for simulators)
    forecast_flexibility_w(start, end) -> int | None
                                     W it is expected to shed over a future window (None: cannot tell)
    forecast_flexibility_windows_w(windows) -> list[int | None]
                                     the same for consecutive windows at once (a day-ahead forecast)
    minimum_power_to_meet_departure(now) -> int | None
                                     W it must keep drawing for its own deadline (None: no deadline)
    snapshot() -> dict | None, resume(snapshot) -> bool
                                     save and restore the dynamic state across a node restart
                                     (None / False: the device keeps its own state)

Power and energy are what the device draws from the grid (an import meter). Setpoints act at the
device's current time: advance the device to `now` first, then apply.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from protocol.kinds import KIND_NUMBERS, parse_kind

__all__ = ["KIND_NUMBERS", "NOT_DISPATCHABLE", "Device", "DeviceUnavailable", "SetpointResult", "kind_number"]


def kind_number(kind: str) -> int:
    """The on-chain kind number (DeviceRegistry) of a device kind name (protocol.kinds)."""
    if kind not in KIND_NUMBERS:  # names only: a node configures its devices by kind name
        raise ValueError(f"unknown device kind {kind!r}; known kinds: {', '.join(KIND_NUMBERS)}")
    return int(parse_kind(kind))


NOT_DISPATCHABLE = "a site meter meters the premises' grid connection and is never dispatched"


class DeviceUnavailable(Exception):
    """The device does not answer (a real driver's poll or command failed); callers retry later."""


@dataclass(frozen=True)
class SetpointResult:
    """What a curtailment request actually did.

    `requested_w` is what was asked, `power_w` the consumption right after applying it. `honoured` is
    True when the device now consumes at most `requested_w`; otherwise `reason` says which
    constraint keeps it higher (and `reason` may also carry a warning while honoured, e.g. an EV
    that will miss its departure target at this power).
    """

    device_id: str
    requested_w: int
    power_w: int
    honoured: bool
    reason: str = ""

    def to_dict(self) -> dict:
        """The result as a JSON-able dict."""
        return asdict(self)


class Device(ABC):
    """A flexible (or merely metered) device behind the gateway; see the module docstring."""

    device_id: str
    kind: str
    capacity_w: int  # the most power it can curtail (registered on chain)
    live: ClassVar[bool] = False
    max_read_delay_seconds: float = float("inf")

    @property
    def kind_number(self) -> int:
        """The device's on-chain kind number."""
        return kind_number(self.kind)

    @abstractmethod
    def advance(self, to_time: float) -> None: ...

    @abstractmethod
    def power_w(self) -> int: ...

    @abstractmethod
    def energy_wh(self) -> int: ...

    @abstractmethod
    def apply_setpoint(self, max_power_w: int, reason: str) -> SetpointResult: ...

    @abstractmethod
    def restore(self) -> None: ...

    @abstractmethod
    def state(self) -> dict: ...

    @abstractmethod
    def flexibility_w(self, now: float) -> int: ...

    # -- optional features, with their defaults ---------------------------------------------------

    @property
    def setpoint_w(self) -> int | None:
        """The setpoint the driver holds in its own state (a resumed simulator); None by default, so
        a restarted node sends the setpoint of a running window again."""
        return None

    def start(self) -> None:
        """Begin talking to the device (a real driver connects in the background); nothing by default."""

    def stop(self) -> None:
        """Stop talking to the device; nothing by default."""

    def forecast_flexibility_w(self, start: float, end: float) -> int | None:
        """Average W the device is expected to shed over [start, end); None when it cannot look ahead
        (then the node judges from `flexibility_w(now)`)."""
        return None

    def forecast_flexibility_windows_w(self, windows: Sequence[tuple[float, float]]) -> list[int | None]:
        """`forecast_flexibility_w` of each of `windows` (in time order, not overlapping); a simulator
        answers them in one pass, which is what makes a day-ahead forecast cheap."""
        return [self.forecast_flexibility_w(start, end) for start, end in windows]

    def minimum_power_to_meet_departure(self, now: float) -> int | None:
        """W the device must keep drawing now to meet its own deadline (an EV's departure); None when
        it has none."""
        return None

    def snapshot(self) -> dict[str, Any] | None:
        """The device's whole dynamic state, to resume from after a node restart; None when the device
        keeps its own state (a real device's register survives a gateway restart)."""
        return None

    def resume(self, snapshot: dict[str, Any]) -> bool:
        """Continue from `snapshot` (from `snapshot()`); False, unchanged, when it does not fit."""
        return False
