"""Simulated electric water heater: a fully mixed tank with a resistive element and a thermostat.

    C dT/dt = P + UA (T_amb - T) + q c_w (T_in - T)

T tank temperature, C = volume x 4186 J/(L K), P element power, UA standing losses (W/K), q the
hot-water draw (L/s) replaced by cold water at T_in. Over a sub-step P and q are constant and the
equation is integrated exactly (exponential toward the equilibrium temperature).

Draws: a deterministic daily schedule from the seed (morning showers, small daytime draws, evening
draws), starting on whole minutes, with flows scaled by `draw_scale` (0 = no draws).

Thermostat: on/off at full element power between setpoint -+ deadband/2. Curtailment is honoured
while the sub-step ends with the tank at or above `min_temp_c` + `comfort_guard_k`; otherwise the
element runs at the least power that keeps the tank there (up to full power: a large draw can pull
the tank below the minimum whatever the element does, and then no curtailment is in effect).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pydantic import Field, model_validator

from node.devices.simulated import SECONDS_PER_DAY, Decision, DeviceParams, SimulatedDevice, day_seed

WATER_J_PER_L_K = 4_186.0


class WaterHeaterParams(DeviceParams):
    volume_l: float = Field(200.0, gt=0)
    element_w: int = Field(3_000, gt=0)
    setpoint_c: float = Field(60.0, le=95)
    deadband_k: float = Field(5.0, gt=0)
    min_temp_c: float = Field(45.0, description="curtailment never takes the tank below this")
    comfort_guard_k: float = Field(0.1, ge=0, le=2)
    initial_temp_c: float | None = Field(None, description="default: the thermostat setpoint")
    ambient_c: float = 20.0
    inlet_c: float = 12.0
    loss_w_per_k: float = Field(2.0, ge=0, description="standing losses")
    draw_scale: float = Field(1.0, ge=0, le=5, description="multiplies every draw's flow")

    @model_validator(mode="after")
    def _check(self) -> WaterHeaterParams:
        if not self.min_temp_c + self.comfort_guard_k <= self.setpoint_c - self.deadband_k / 2:
            raise ValueError("min_temp_c (plus the guard) must be at or below setpoint - deadband/2")
        if self.inlet_c >= self.min_temp_c:
            raise ValueError("inlet_c must be below min_temp_c")
        if self.initial_temp_c is not None and not self.inlet_c <= self.initial_temp_c <= 100:
            raise ValueError("initial_temp_c must be between inlet_c and 100")
        return self


@dataclass
class WaterHeaterState:
    energy_j: float = 0.0
    tank_c: float = 60.0
    on: bool = False
    drawn_l: float = 0.0


class WaterHeater(SimulatedDevice):
    kind = "water_heater"
    params_model = WaterHeaterParams
    params: WaterHeaterParams
    flex_horizon_s = 900.0

    def __init__(self, device_id: str, params: WaterHeaterParams | None = None, *, seed: int = 0,
                 start_time: float = 0.0):
        self._day_flows: dict[int, list[float]] = {}
        super().__init__(device_id, params, seed=seed, start_time=start_time)
        self.capacity_w = self.params.element_w

    # -- draws ----------------------------------------------------------------------------------

    def draws_of_day(self, day: int) -> list[tuple[int, int, float]]:
        """(start minute of the local day, minutes, L/min) of every draw on local day `day`."""
        rng = random.Random(day_seed(self.seed, "water", day))
        draws: list[tuple[int, int, float]] = []

        def add(hour_mean: float, hour_sd: float, minutes: tuple[int, int], flow: tuple[float, float]) -> None:
            start = min(max(round(rng.gauss(hour_mean, hour_sd) * 60), 0), 23 * 60)
            draws.append((start, rng.randint(*minutes), rng.uniform(*flow)))

        for _ in range(rng.randint(1, 2)):
            add(7.0, 0.7, (4, 8), (3.5, 5.0))  # showers
        for _ in range(rng.randint(2, 5)):
            add(13.0, 3.0, (1, 3), (2.0, 4.0))  # taps
        for _ in range(rng.randint(1, 3)):
            add(20.0, 1.2, (3, 8), (3.0, 5.0))  # dishes, baths, showers
        return sorted(draws)

    def _flows(self, day: int) -> list[float]:
        if day not in self._day_flows:
            if len(self._day_flows) > 16:
                self._day_flows.clear()
            flows = [0.0] * (24 * 60)
            for start, minutes, flow in self.draws_of_day(day):
                for minute in range(start, min(start + minutes, 24 * 60)):
                    flows[minute] += flow * self.params.draw_scale
            self._day_flows[day] = flows
        return self._day_flows[day]

    def flow_l_per_min(self, t: float) -> float:
        local = self.local_seconds(t)
        day = math.floor(local / SECONDS_PER_DAY)
        return self._flows(day)[int((local - day * SECONDS_PER_DAY) // 60)]

    # -- the model --------------------------------------------------------------------------------

    def _coefficients(self, flow_l_per_min: float) -> tuple[float, float]:
        """(total conductance W/K, its weighted source temperature x conductance W) without the element."""
        p = self.params
        water = flow_l_per_min / 60 * WATER_J_PER_L_K
        return p.loss_w_per_k + water, p.loss_w_per_k * p.ambient_c + water * p.inlet_c

    def predict(self, tank_c: float, flow_l_per_min: float, power_w: float, seconds: float) -> float:
        conductance, source = self._coefficients(flow_l_per_min)
        capacity = self.params.volume_l * WATER_J_PER_L_K
        if conductance == 0:
            return tank_c + power_w * seconds / capacity
        equilibrium = (power_w + source) / conductance
        return equilibrium + (tank_c - equilibrium) * math.exp(-conductance * seconds / capacity)

    def power_to_reach(self, target_c: float, tank_c: float, flow_l_per_min: float, seconds: float) -> float:
        conductance, source = self._coefficients(flow_l_per_min)
        capacity = self.params.volume_l * WATER_J_PER_L_K
        if conductance == 0:
            return (target_c - tank_c) * capacity / seconds
        decay = math.exp(-conductance * seconds / capacity)
        equilibrium = (target_c - tank_c * decay) / (1 - decay)
        return equilibrium * conductance - source

    def _initial_state(self) -> WaterHeaterState:
        p = self.params
        return WaterHeaterState(tank_c=p.setpoint_c if p.initial_temp_c is None else p.initial_temp_c)

    def _decide(self, s: WaterHeaterState, t: float, seconds: float) -> Decision:
        p = self.params
        if s.tank_c <= p.setpoint_c - p.deadband_k / 2:
            s.on = True
        elif s.tank_c >= p.setpoint_c + p.deadband_k / 2:
            s.on = False
        want = p.element_w if s.on else 0
        if self._setpoint is None or want <= self._setpoint:
            return Decision(want)
        limited = self._setpoint
        flow = self.flow_l_per_min(t)
        bound = p.min_temp_c + p.comfort_guard_k
        if self.predict(s.tank_c, flow, limited, seconds) >= bound:
            return Decision(limited)
        need = min(want, max(limited, math.ceil(self.power_to_reach(bound, s.tank_c, flow, seconds))))
        return Decision(need, f"hot water: tank {s.tank_c:.2f} C would fall below {bound:.2f} C at {limited} W; "
                              f"running {need} W instead")

    def _integrate(self, s: WaterHeaterState, t: float, seconds: float, power_w: int) -> None:
        flow = self.flow_l_per_min(t)
        s.tank_c = self.predict(s.tank_c, flow, power_w, seconds)
        s.drawn_l += flow * seconds / 60

    def _minimum_power(self, now: float) -> int:
        view, flow = self._view(), self.flow_l_per_min(now)
        bound = self.params.min_temp_c + self.params.comfort_guard_k
        if self.predict(view.tank_c, flow, 0, self.flex_horizon_s) >= bound:
            return 0
        need = math.ceil(self.power_to_reach(bound, view.tank_c, flow, self.flex_horizon_s))
        return min(self.params.element_w, max(0, need))

    def _state_details(self, view: WaterHeaterState, now: float) -> dict:
        p = self.params
        return {
            "tank_c": round(view.tank_c, 4),
            "thermostat_setpoint_c": p.setpoint_c,
            "deadband_k": p.deadband_k,
            "thermostat_on": view.on,
            "min_temp_c": p.min_temp_c,
            "flow_l_per_min": round(self.flow_l_per_min(now), 4),
            "drawn_l": round(view.drawn_l, 3),
            "element_w": p.element_w,
        }
