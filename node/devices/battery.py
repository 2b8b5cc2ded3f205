"""Simulated home battery.

State of charge (SoC) in Wh, kept within [min_soc, max_soc] x capacity. A daily schedule of local
hours: inside a charge window it charges from the grid at `max_charge_w` until `max_soc`; inside a
discharge window it serves the household at `discharge_w` until `min_soc`; otherwise idle (no
self-discharge). Round-trip efficiency eta is split evenly: sqrt(eta) on the way in (SoC gains
grid energy x sqrt(eta)) and sqrt(eta) on the way out (SoC loses delivered energy / sqrt(eta)).
Near a bound the power is floored to whole watts so that the sub-step ends at, not past, the bound.

Metering: `power_w()` and `energy_wh()` are the grid import for charging only (>= 0). Discharge
covers household load behind the meter; it is reported in `state()` (`discharge_w`,
`discharged_wh`) and never appears as negative power. Curtailment limits (or stops) charging; the
battery has no constraint of its own, so a setpoint is always honoured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field, model_validator

from node.devices.simulated import SECONDS_PER_DAY, Decision, DeviceParams, SimulatedDevice

Window = tuple[float, float]  # local hours [start, end); start > end wraps past midnight


def _in_window(hour: float, window: Window) -> bool:
    start, end = window
    return start <= hour < end if start <= end else (hour >= start or hour < end)


class BatteryParams(DeviceParams):
    capacity_wh: int = Field(10_000, gt=0)
    min_soc: float = Field(0.10, ge=0, le=1)
    max_soc: float = Field(0.95, ge=0, le=1)
    initial_soc: float = Field(0.50, ge=0, le=1)
    max_charge_w: int = Field(5_000, gt=0)
    max_discharge_w: int = Field(5_000, ge=0)
    discharge_w: int = Field(1_500, ge=0, description="household load served inside a discharge window")
    round_trip_efficiency: float = Field(0.90, gt=0, le=1)
    charge_windows: list[Window] = Field(default_factory=lambda: [(1.0, 5.0)])
    discharge_windows: list[Window] = Field(default_factory=lambda: [(17.0, 21.0)])

    @model_validator(mode="after")
    def _check(self) -> BatteryParams:
        if not self.min_soc < self.max_soc:
            raise ValueError("min_soc must be < max_soc")
        if not self.min_soc <= self.initial_soc <= self.max_soc:
            raise ValueError("initial_soc must be within [min_soc, max_soc]")
        if self.discharge_w > self.max_discharge_w:
            raise ValueError("discharge_w must be <= max_discharge_w")
        for start, end in self.charge_windows + self.discharge_windows:
            for hour in (start, end):
                if not 0 <= hour <= 24 or not float(hour * 60).is_integer():
                    raise ValueError(f"window hour {hour} must be in [0, 24] on a whole minute")
            if start == end:
                raise ValueError(f"empty window ({start}, {end})")
        for minute in range(24 * 60):
            hour = minute / 60
            if any(_in_window(hour, w) for w in self.charge_windows) and \
                    any(_in_window(hour, w) for w in self.discharge_windows):
                raise ValueError(f"charge and discharge windows overlap at hour {hour:.2f}")
        return self


@dataclass
class BatteryState:
    energy_j: float = 0.0
    soc_wh: float = 0.0
    discharge_w: int = 0  # the controller's discharge power for the current sub-step
    discharged_wh: float = 0.0  # delivered to the house, cumulative


class Battery(SimulatedDevice):
    kind = "battery"
    params_model = BatteryParams
    params: BatteryParams

    def __init__(self, device_id: str, params: BatteryParams | None = None, *, seed: int = 0,
                 start_time: float = 0.0):
        super().__init__(device_id, params, seed=seed, start_time=start_time)
        self.capacity_w = self.params.max_charge_w

    @property
    def min_wh(self) -> float:
        return self.params.min_soc * self.params.capacity_wh

    @property
    def max_wh(self) -> float:
        return self.params.max_soc * self.params.capacity_wh

    @property
    def _sqrt_eta(self) -> float:
        return math.sqrt(self.params.round_trip_efficiency)

    def soc(self) -> float:
        """State of charge now, as a fraction of capacity."""
        return self._view().soc_wh / self.params.capacity_wh

    def _initial_state(self) -> BatteryState:
        return BatteryState(soc_wh=self.params.initial_soc * self.params.capacity_wh)

    def _decide(self, s: BatteryState, t: float, seconds: float) -> Decision:
        p, hour = self.params, self.local_hour(t)
        charge = 0
        if any(_in_window(hour, w) for w in p.charge_windows):
            headroom = self.max_wh - s.soc_wh
            if headroom > 0:
                charge = min(p.max_charge_w, math.floor(headroom * 3600 / (self._sqrt_eta * seconds)))
        if self._setpoint is not None:
            charge = min(charge, self._setpoint)
        s.discharge_w = 0
        if any(_in_window(hour, w) for w in p.discharge_windows):
            available = s.soc_wh - self.min_wh
            if available > 0:
                s.discharge_w = min(p.discharge_w, math.floor(available * self._sqrt_eta * 3600 / seconds))
        return Decision(charge)

    def _integrate(self, s: BatteryState, t: float, seconds: float, power_w: int) -> None:
        if power_w:
            s.soc_wh += power_w * seconds * self._sqrt_eta / 3600
        if s.discharge_w:
            s.soc_wh -= s.discharge_w * seconds / (self._sqrt_eta * 3600)
            s.discharged_wh += s.discharge_w * seconds / 3600

    def _idle_until(self, s: BatteryState, t: float) -> float | None:
        if s.discharge_w:
            return None
        local = self.local_seconds(t)
        day = math.floor(local / SECONDS_PER_DAY)
        edges = [d * SECONDS_PER_DAY + hour * 3600
                 for d in (day, day + 1)
                 for window in self.params.charge_windows + self.params.discharge_windows
                 for hour in window]
        later = [edge for edge in edges if edge > local]
        return (min(later) if later else local + 7 * SECONDS_PER_DAY) - self.offset_s

    def _state_details(self, view: BatteryState, now: float) -> dict:
        p = self.params
        return {
            "soc": view.soc_wh / p.capacity_wh,
            "soc_wh": round(view.soc_wh, 3),
            "min_soc": p.min_soc,
            "max_soc": p.max_soc,
            "capacity_wh": p.capacity_wh,
            "charge_w": self._decision.power_w,
            "discharge_w": view.discharge_w,
            "discharged_wh": round(view.discharged_wh, 3),
        }
