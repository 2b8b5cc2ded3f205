"""The time-stepping machinery the simulators share (`SimulatedDevice`), on the driver interface
of node.devices.interface; real drivers (node.drivers) do not import it.

A home battery's power and energy are what it draws from the grid (an import meter): its charging
power; its discharge to the house is reported in `state()` but is not on this device's register
(see node.devices.battery).

Simulators integrate on a fixed grid of sub-steps (multiples of `step_seconds` in absolute unix
time). The controller decides the power at the start of each sub-step and the power is constant over
it; the state is committed only at grid points and at control events (setpoint, restore), and
readings in between are computed from the committed state without changing it. The trajectory
therefore does not depend on how often, or at which times, `advance` is called. Energy is
accumulated in float joules (integer watts times sub-step lengths, exact) and the register
`energy_wh()` is floor(joules / 3600): differences of the register over consecutive intervals add
up exactly to the register's total, with no drift.
"""

from __future__ import annotations

import copy
import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from node.devices.interface import Device, SetpointResult
from protocol.units import JOULES_PER_WH, SECONDS_PER_DAY

__all__ = ["JOULES_PER_WH", "SECONDS_PER_DAY", "Decision", "DeviceParams", "SimulatedDevice", "day_seed"]


class DeviceParams(BaseModel):
    """Parameters common to every simulator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    utc_offset_hours: float = Field(0.0, ge=-14, le=14, description="local time = UTC + offset (daily profiles)")
    step_seconds: int = Field(10, ge=1, le=60, description="integration sub-step; divides 60")

    @field_validator("step_seconds")
    @classmethod
    def _divides_a_minute(cls, value: int) -> int:
        if 60 % value:
            raise ValueError("must divide 60 (schedules change on whole minutes)")
        return value

    @field_validator("utc_offset_hours")
    @classmethod
    def _whole_minutes(cls, value: float) -> float:
        if not float(value * 60).is_integer():
            raise ValueError("must be a whole number of minutes")
        return value


@dataclass
class Decision:
    """The controller's choice for one sub-step."""

    power_w: int
    override: str = ""  # why the device consumes more than its setpoint, "" if it does not


class SimulatedDevice(Device):
    """Fixed-grid time stepping, setpoints and the energy register, shared by all simulators.

    Subclasses provide `_initial_state()` (a dataclass with at least `energy_j`), `_decide(s, t,
    seconds)` (power for the sub-step starting at `t`, lasting at most `seconds`; may update
    controller latches in `s`) and `_integrate(s, t, seconds, power_w)` (the physics over a sub-step,
    excluding energy, which is added here).
    """

    kind: str
    params_model: ClassVar[type[DeviceParams]] = DeviceParams

    def __init__(self, device_id: str, params: DeviceParams | None = None, *, seed: int = 0,
                 start_time: float = 0.0):
        if not device_id:
            raise ValueError("device_id must not be empty")
        self.device_id = device_id
        self.params = params if params is not None else self.params_model()
        if not isinstance(self.params, self.params_model):
            raise TypeError(f"{type(self).__name__} needs {self.params_model.__name__}, got {type(params).__name__}")
        self.seed = int(seed)
        self.start_time = float(start_time)
        self.step = self.params.step_seconds
        self.offset_s = self.params.utc_offset_hours * 3600.0
        self._t = self.start_time  # committed time
        self._now = self.start_time  # time advanced to (>= _t)
        self._setpoint: int | None = None
        self._setpoint_reason = ""
        self.override_seconds = 0.0  # time spent above the setpoint to protect a constraint
        self.s = self._initial_state()
        self._decision = Decision(0)
        self._decide_now()

    # -- the interface --------------------------------------------------------------------------

    def advance(self, to_time: float) -> None:
        """Integrate up to `to_time`. Times at or before the device's clock are ignored: it never goes back."""
        to_time = float(to_time)
        if to_time <= self._now:
            return
        while True:
            boundary = self._next_boundary(self._t)
            if boundary > to_time:
                break
            idle_end = self._idle_until(self.s, self._t)
            if idle_end is not None and self._decision.power_w == 0:
                # Nothing changes and nothing is consumed until idle_end: jump to the last grid point before it.
                jump = min(math.floor(idle_end / self.step), math.floor(to_time / self.step)) * self.step
                if jump > boundary:
                    self._t = float(jump)
                    self._decide_now()
                    continue
            self._commit(boundary)
        self._now = to_time

    def power_w(self) -> int:
        return self._decision.power_w

    def energy_wh(self) -> int:
        return math.floor(self._view().energy_j / JOULES_PER_WH)

    def apply_setpoint(self, max_power_w: int, reason: str) -> SetpointResult:
        if isinstance(max_power_w, bool) or not isinstance(max_power_w, int):
            raise TypeError("max_power_w must be an int (W)")
        if max_power_w < 0:
            raise ValueError("max_power_w must be >= 0")
        self._control_event()
        self._setpoint = max_power_w
        self._setpoint_reason = reason
        self._decide_now()
        power = self._decision.power_w
        honoured = power <= max_power_w
        note = self._decision.override if not honoured else self._setpoint_warning()
        return SetpointResult(self.device_id, max_power_w, power, honoured, note)

    def restore(self) -> None:
        self._control_event()
        self._setpoint = None
        self._setpoint_reason = ""
        self._decide_now()

    def state(self) -> dict:
        view = self._view()
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "kind_number": self.kind_number,
            "time": self._now,
            "power_w": self._decision.power_w,
            "energy_wh": math.floor(view.energy_j / JOULES_PER_WH),
            "capacity_w": self.capacity_w,
            "setpoint_w": self._setpoint,
            "setpoint_reason": self._setpoint_reason,
            "override": bool(self._decision.override),
            "override_reason": self._decision.override,
            "override_seconds": self.override_seconds,
            **self._state_details(view, self._now),
        }

    def flexibility_w(self, now: float) -> int:
        self.advance(now)
        return min(self.capacity_w, max(0, self._normal_power() - self._minimum_power(now)))

    def forecast_flexibility_w(self, start: float, end: float) -> int:
        """Average W the device is expected to shed over [start, end) if curtailed as far as its
        constraints allow: its simulated normal consumption in the window minus its simulated
        consumption under a 0 W setpoint (comfort, departure and safety overrides included), both
        on copies, so the device itself is untouched. This is what a node can honestly commit."""
        return self.forecast_flexibility_windows_w([(start, end)])[0]

    def forecast_flexibility_windows_w(self, windows: Sequence[tuple[float, float]]) -> list[int]:
        """`forecast_flexibility_w` of each window, in one pass: the windows must be in time order and
        not overlap. One copy plays the device's normal behaviour forward through all of them, and
        each window's curtailed run starts from a copy of it at the window's start, so a day of
        hourly windows costs one day of simulation plus one hour per window, not a day per window.
        The answers are the same as window by window: a simulator's run to `t` does not depend on
        where it stopped on the way."""
        for (start, end), (next_start, _) in zip(windows, windows[1:]):
            if next_start < max(start, end):
                raise ValueError(f"forecast windows must be in time order and not overlap: [{start}, {end}) "
                                 f"then [{next_start}, ...)")
        normal = copy.deepcopy(self)
        if normal._setpoint is not None:
            normal.restore()
        shed = []
        for start, end in windows:
            if end <= start:
                shed.append(0)
                continue
            normal.advance(start)
            curtailed = copy.deepcopy(normal)
            curtailed.apply_setpoint(0, "forecast")
            energy = []
            for probe in (normal, curtailed):
                before = probe._view().energy_j
                probe.advance(end)
                energy.append(probe._view().energy_j - before)
            shed_w = (energy[0] - energy[1]) / (end - start)
            shed.append(max(0, min(self.capacity_w, math.floor(shed_w))))
        return shed

    # -- helpers for the policy and the factory -------------------------------------------------

    @property
    def now(self) -> float:
        """The time the device has been advanced to."""
        return self._now

    @property
    def setpoint_w(self) -> int | None:
        return self._setpoint

    @property
    def max_power_w(self) -> int:
        """The most the device can ever draw (for plausibility checks); `capacity_w` unless overridden."""
        return self.capacity_w

    def snapshot(self) -> dict[str, Any]:
        """The simulator's whole dynamic state (physics, clock, setpoint), so a restarted node resumes
        the device where it was, as a real device's own register and state survive a gateway restart."""
        return {"identity": self._identity(), "t": self._t, "now": self._now, "setpoint": self._setpoint,
                "setpoint_reason": self._setpoint_reason, "override_seconds": self.override_seconds,
                "s": copy.deepcopy(self.s)}

    def resume(self, snapshot: dict[str, Any]) -> bool:
        """Continue from `snapshot` (from `snapshot()` of this same device); False, unchanged, if it is
        another device's or another configuration's state."""
        if not isinstance(snapshot, dict) or snapshot.get("identity") != self._identity():
            return False
        self._t, self._now = float(snapshot["t"]), float(snapshot["now"])
        self._setpoint, self._setpoint_reason = snapshot["setpoint"], snapshot["setpoint_reason"]
        self.override_seconds = float(snapshot["override_seconds"])
        self.s = copy.deepcopy(snapshot["s"])
        self._decide_now()
        return True

    def _identity(self) -> tuple:
        return (type(self).__name__, self.device_id, self.seed, self.params.model_dump_json())

    def fresh(self, start_time: float) -> SimulatedDevice:
        """A new simulator with the same parameters and seed, in its initial state at `start_time`."""
        return type(self)(self.device_id, self.params, seed=self.seed, start_time=start_time)

    def local_seconds(self, t: float) -> float:
        """Local time of day and day number folded together: seconds since the local epoch."""
        return t + self.offset_s

    def local_day(self, t: float) -> int:
        return math.floor(self.local_seconds(t) / SECONDS_PER_DAY)

    def local_hour(self, t: float) -> float:
        return (self.local_seconds(t) % SECONDS_PER_DAY) / 3600.0

    # -- for subclasses -------------------------------------------------------------------------

    @abstractmethod
    def _initial_state(self) -> Any: ...

    @abstractmethod
    def _decide(self, s: Any, t: float, seconds: float) -> Decision: ...

    @abstractmethod
    def _integrate(self, s: Any, t: float, seconds: float, power_w: int) -> None: ...

    def _state_details(self, view: Any, now: float) -> dict:
        return {}

    def _idle_until(self, s: Any, t: float) -> float | None:
        """If the state stays constant with zero power from `t` until some time, that time (else None)."""
        return None

    def _setpoint_warning(self) -> str:
        return ""

    def _normal_power(self) -> int:
        """The power the device would draw now without a setpoint."""
        s = copy.deepcopy(self._view())
        return self._decide_without_setpoint(s, self._now, self._next_boundary(self._now) - self._now).power_w

    def _minimum_power(self, now: float) -> int:
        """The least power that keeps the device's constraints now (0 when anything goes)."""
        return 0

    def _decide_without_setpoint(self, s: Any, t: float, seconds: float) -> Decision:
        saved = self._setpoint
        self._setpoint = None
        try:
            return self._decide(s, t, seconds)
        finally:
            self._setpoint = saved

    # -- machinery ------------------------------------------------------------------------------

    def _next_boundary(self, t: float) -> float:
        return float((math.floor(t / self.step) + 1) * self.step)

    def _commit(self, until: float) -> None:
        seconds = until - self._t
        if seconds > 0:
            power = self._decision.power_w
            self._integrate(self.s, self._t, seconds, power)
            self.s.energy_j += power * seconds
            if self._decision.override:
                self.override_seconds += seconds
        self._t = until
        self._decide_now()

    def _control_event(self) -> None:
        """Commit the state up to the current time, so the controller can decide anew from here."""
        if self._now > self._t:
            self._commit(self._now)

    def _decide_now(self) -> None:
        decision = self._decide(self.s, self._t, self._next_boundary(self._t) - self._t)
        if decision.power_w < 0:
            raise AssertionError(f"{self.device_id}: negative power {decision.power_w}")
        self._decision = decision

    def _view(self) -> Any:
        """The state at the current time, without committing the partial sub-step."""
        if self._now == self._t:
            return self.s
        view = copy.deepcopy(self.s)
        seconds = self._now - self._t
        self._integrate(view, self._t, seconds, self._decision.power_w)
        view.energy_j += self._decision.power_w * seconds
        return view


def day_seed(seed: int, purpose: str, day: int) -> str:
    """A stable seed string for the random draws of one local day (random.Random hashes it with SHA-512)."""
    return f"negawatt:{purpose}:{seed}:{day}"
