"""Simulated heat pump / HVAC: a first-order (1R1C) thermal model of the house with a thermostat.

    C dT/dt = UA (T_out - T) + s COP P            s = +1 heating, -1 cooling

T indoor temperature, T_out outdoor temperature, UA the heat-loss coefficient (W/K), C the heat
capacity (J/K), so the time constant is tau = C / UA; P the electrical power and COP the
coefficient of performance (constant). Over one sub-step P and T_out are constant and the equation
is integrated exactly: T_end = T_eq + (T - T_eq) exp(-dt / tau) with T_eq = T_out + s COP P / UA.

Thermostat: on/off at full power with a deadband around `setpoint_c` (heating switches on at
setpoint - deadband/2 and off at setpoint + deadband/2; mirrored for cooling).

Comfort: the indoor temperature must stay within [comfort_min_c, comfort_max_c]. A curtailment
setpoint is honoured while the sub-step would end inside the band (with a `comfort_guard_k`
margin); when it would not, the device overrides the setpoint with the least power that keeps it at
the guard (reported in `state()["override_reason"]` and counted in `override_seconds`). Since the
exact solution moves monotonically toward T_eq, checking the end of each sub-step is enough.

Outdoor temperature: a deterministic daily profile, mean + amplitude cos(2 pi (hour - peak) / 24),
plus a day-to-day offset drawn from the seed (Gaussian, `outdoor_day_sd_k`), interpolated linearly
between local noons.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from node.devices.simulated import SECONDS_PER_DAY, Decision, DeviceParams, SimulatedDevice, day_seed


class ThermalParams(DeviceParams):
    mode: Literal["heat", "cool"] = "heat"
    max_power_w: int = Field(3_000, gt=0, description="electrical")
    cop: float = Field(3.0, gt=0, le=10)
    ua_w_per_k: float = Field(200.0, gt=0, description="heat-loss coefficient of the house")
    heat_capacity_j_per_k: float = Field(2.0e7, gt=0)
    setpoint_c: float = 21.0
    deadband_k: float = Field(1.0, gt=0)
    comfort_min_c: float = 19.0
    comfort_max_c: float = 23.0
    comfort_guard_k: float = Field(0.05, ge=0, le=1)
    initial_temp_c: float | None = Field(None, description="default: the thermostat setpoint")
    outdoor_mean_c: float = Field(5.0, ge=-40, le=50)
    outdoor_amplitude_k: float = Field(5.0, ge=0, le=20)
    outdoor_peak_hour: float = Field(15.0, ge=0, lt=24)
    outdoor_day_sd_k: float = Field(2.0, ge=0, le=10)

    @model_validator(mode="after")
    def _check(self) -> ThermalParams:
        low = self.comfort_min_c + self.comfort_guard_k
        high = self.comfort_max_c - self.comfort_guard_k
        if not low <= self.setpoint_c - self.deadband_k / 2 or not self.setpoint_c + self.deadband_k / 2 <= high:
            raise ValueError("the thermostat band (setpoint +- deadband/2) must lie inside the comfort band "
                             "(less the guard)")
        if self.initial_temp_c is not None and not self.comfort_min_c <= self.initial_temp_c <= self.comfort_max_c:
            raise ValueError("initial_temp_c must be inside the comfort band")
        return self


class HeatPumpParams(ThermalParams):
    pass


class HVACParams(ThermalParams):
    mode: Literal["heat", "cool"] = "cool"
    max_power_w: int = Field(2_500, gt=0, description="electrical")
    setpoint_c: float = 24.0
    comfort_min_c: float = 22.0
    comfort_max_c: float = 26.0
    outdoor_mean_c: float = Field(27.0, ge=-40, le=50)
    outdoor_amplitude_k: float = Field(6.0, ge=0, le=20)


@dataclass
class ThermalState:
    energy_j: float = 0.0
    indoor_c: float = 20.0
    on: bool = False  # thermostat latch


class ThermalDevice(SimulatedDevice):
    """Heat pump (kind "heat_pump") or HVAC (kind "hvac"); `mode` chooses heating or cooling."""

    params_model = ThermalParams
    params: ThermalParams
    flex_horizon_s = 900.0  # flexibility_w: power it can shed for this long without leaving comfort

    def __init__(self, device_id: str, params: ThermalParams | None = None, *, seed: int = 0,
                 start_time: float = 0.0):
        self._day_offsets: dict[int, float] = {}
        super().__init__(device_id, params, seed=seed, start_time=start_time)
        self.capacity_w = self.params.max_power_w

    # -- outdoor temperature ----------------------------------------------------------------------

    def _day_offset(self, day: int) -> float:
        if day not in self._day_offsets:
            if len(self._day_offsets) > 64:
                self._day_offsets.clear()
            rng = random.Random(day_seed(self.seed, "outdoor", day))
            self._day_offsets[day] = rng.gauss(0.0, self.params.outdoor_day_sd_k)
        return self._day_offsets[day]

    def outdoor_c(self, t: float) -> float:
        p = self.params
        local = self.local_seconds(t)
        hour = (local % SECONDS_PER_DAY) / 3600.0
        position = local / SECONDS_PER_DAY - 0.5  # days since the local noon of day 0
        day = math.floor(position)
        fraction = position - day
        offset = (1 - fraction) * self._day_offset(day) + fraction * self._day_offset(day + 1)
        daily = p.outdoor_amplitude_k * math.cos(2 * math.pi * (hour - p.outdoor_peak_hour) / 24)
        return p.outdoor_mean_c + daily + offset

    # -- the model --------------------------------------------------------------------------------

    def predict(self, indoor_c: float, outdoor_c: float, power_w: float, seconds: float) -> float:
        """Indoor temperature after `seconds` at constant power and outdoor temperature."""
        sign = 1.0 if self.params.mode == "heat" else -1.0
        equilibrium = outdoor_c + sign * self.params.cop * power_w / self.params.ua_w_per_k
        return equilibrium + (indoor_c - equilibrium) * math.exp(-seconds / self._tau())

    def power_to_reach(self, target_c: float, indoor_c: float, outdoor_c: float, seconds: float) -> float:
        """The constant power (W, unclamped) that brings the indoor temperature to `target_c` in `seconds`."""
        p = self.params
        decay = math.exp(-seconds / self._tau())
        equilibrium = (target_c - indoor_c * decay) / (1 - decay)
        sign = 1.0 if p.mode == "heat" else -1.0
        return sign * (equilibrium - outdoor_c) * p.ua_w_per_k / p.cop

    def _tau(self) -> float:
        return self.params.heat_capacity_j_per_k / self.params.ua_w_per_k

    def _bound(self) -> float:
        """The temperature a curtailed device must not cross (comfort limit less the guard)."""
        p = self.params
        return p.comfort_min_c + p.comfort_guard_k if p.mode == "heat" else p.comfort_max_c - p.comfort_guard_k

    def _within(self, temperature: float, bound: float) -> bool:
        return temperature >= bound if self.params.mode == "heat" else temperature <= bound

    def _initial_state(self) -> ThermalState:
        p = self.params
        return ThermalState(indoor_c=p.setpoint_c if p.initial_temp_c is None else p.initial_temp_c)

    def _decide(self, s: ThermalState, t: float, seconds: float) -> Decision:
        p = self.params
        low, high = p.setpoint_c - p.deadband_k / 2, p.setpoint_c + p.deadband_k / 2
        if p.mode == "heat":
            s.on = True if s.indoor_c <= low else False if s.indoor_c >= high else s.on
        else:
            s.on = True if s.indoor_c >= high else False if s.indoor_c <= low else s.on
        want = p.max_power_w if s.on else 0
        if self._setpoint is None or want <= self._setpoint:
            return Decision(want)
        limited = self._setpoint
        outdoor = self.outdoor_c(t)
        bound = self._bound()
        if self._within(self.predict(s.indoor_c, outdoor, limited, seconds), bound):
            return Decision(limited)
        need = min(want, max(limited, math.ceil(self.power_to_reach(bound, s.indoor_c, outdoor, seconds))))
        return Decision(need, f"comfort: indoor {s.indoor_c:.2f} C would pass {bound:.2f} C at {limited} W; "
                              f"running {need} W instead")

    def _integrate(self, s: ThermalState, t: float, seconds: float, power_w: int) -> None:
        s.indoor_c = self.predict(s.indoor_c, self.outdoor_c(t), power_w, seconds)

    def _minimum_power(self, now: float) -> int:
        view = self._view()
        outdoor, bound = self.outdoor_c(now), self._bound()
        if self._within(self.predict(view.indoor_c, outdoor, 0, self.flex_horizon_s), bound):
            return 0
        need = math.ceil(self.power_to_reach(bound, view.indoor_c, outdoor, self.flex_horizon_s))
        return min(self.params.max_power_w, max(0, need))

    def _state_details(self, view: ThermalState, now: float) -> dict:
        p = self.params
        return {
            "mode": p.mode,
            "indoor_c": round(view.indoor_c, 4),
            "outdoor_c": round(self.outdoor_c(now), 4),
            "thermostat_setpoint_c": p.setpoint_c,
            "deadband_k": p.deadband_k,
            "thermostat_on": view.on,
            "comfort_min_c": p.comfort_min_c,
            "comfort_max_c": p.comfort_max_c,
            "max_power_w": p.max_power_w,
        }


class HeatPump(ThermalDevice):
    kind = "heat_pump"
    params_model = HeatPumpParams


class HVAC(ThermalDevice):
    kind = "hvac"
    params_model = HVACParams
