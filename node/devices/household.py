"""Simulated rest of the household load: not curtailable (capacity 0), but metered.

Power is constant over each local minute: a smooth daily shape (night base, morning and evening
peaks) scaled so an average day uses about `daily_kwh`, times per-minute noise (Gaussian, clipped),
plus a few appliance runs (kettle, oven, washing machine) a day — all drawn from the seed per local
day, clipped to `max_power_w`. The sub-step is a whole minute: power changes only on minutes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pydantic import Field

from node.devices.simulated import SECONDS_PER_DAY, Decision, DeviceParams, SimulatedDevice, day_seed


def _shape(hour: float) -> float:
    """Relative demand at a local hour (unnormalised)."""
    def bump(centre: float, width: float) -> float:
        distance = min(abs(hour - centre), 24 - abs(hour - centre))
        return math.exp(-0.5 * (distance / width) ** 2)
    return 0.45 + 0.9 * bump(7.5, 1.2) + 0.5 * bump(13.0, 2.5) + 1.6 * bump(19.5, 2.0)


_SHAPE = [_shape(minute / 60) for minute in range(24 * 60)]  # the shape of every minute, computed once
_SHAPE_MEAN = sum(_SHAPE) / (24 * 60)
APPLIANCES = ((2_000, 2, 4), (2_200, 20, 50), (500, 60, 120))  # (W, min minutes, max minutes)


class HouseholdParams(DeviceParams):
    step_seconds: int = Field(60, ge=1, le=60, description="power changes on whole minutes")
    daily_kwh: float = Field(7.0, ge=0, le=200, description="about, excluding appliance runs")
    noise: float = Field(0.2, ge=0, le=1, description="sd of the per-minute multiplicative noise")
    appliance_runs_per_day: int = Field(3, ge=0, le=20)
    max_power_w: int = Field(9_000, gt=0)


@dataclass
class HouseholdState:
    energy_j: float = 0.0


class Household(SimulatedDevice):
    kind = "household"
    params_model = HouseholdParams
    params: HouseholdParams
    capacity_w = 0

    def __init__(self, device_id: str, params: HouseholdParams | None = None, *, seed: int = 0,
                 start_time: float = 0.0):
        self._days: dict[int, list[int]] = {}
        super().__init__(device_id, params, seed=seed, start_time=start_time)

    @property
    def max_power_w(self) -> int:
        return self.params.max_power_w

    def profile_of_day(self, day: int) -> list[int]:
        """Power (W) of every minute of local day `day`."""
        if day in self._days:
            return self._days[day]
        p = self.params
        rng = random.Random(day_seed(self.seed, "household", day))
        mean_w = p.daily_kwh * 1000 / 24 / _SHAPE_MEAN
        watts = [mean_w * _SHAPE[minute] * min(max(rng.gauss(1.0, p.noise), 0.3), 2.0)
                 for minute in range(24 * 60)]
        for _ in range(p.appliance_runs_per_day):
            power, shortest, longest = APPLIANCES[rng.randrange(len(APPLIANCES))]
            start = rng.randrange(6 * 60, 23 * 60)
            for minute in range(start, min(start + rng.randint(shortest, longest), 24 * 60)):
                watts[minute] += power
        profile = [min(p.max_power_w, max(0, round(w))) for w in watts]
        if len(self._days) > 16:
            self._days.clear()
        self._days[day] = profile
        return profile

    def power_at(self, t: float) -> int:
        local = self.local_seconds(t)
        day = math.floor(local / SECONDS_PER_DAY)
        return self.profile_of_day(day)[int((local - day * SECONDS_PER_DAY) // 60)]

    def _initial_state(self) -> HouseholdState:
        return HouseholdState()

    def _decide(self, s: HouseholdState, t: float, seconds: float) -> Decision:
        power = self.power_at(t)
        if self._setpoint is not None and power > self._setpoint:
            return Decision(power, "household load is not curtailable")
        return Decision(power)

    def _state_details(self, view: HouseholdState, now: float) -> dict:
        return {"max_power_w": self.params.max_power_w, "curtailable": False}

    def _minimum_power(self, now: float) -> int:
        return self.power_at(now)  # nothing to shed

    def _integrate(self, s: HouseholdState, t: float, seconds: float, power_w: int) -> None:
        pass
