"""The sites of the ground-truth bench (`python -m bench mv`): who lives where, with which devices.

Every site is the uncontrolled rest of a home (a `household` simulator) plus 1-3 controllable
devices, drawn from the bench seed and the site's index alone (so a site is the same whichever
worker simulates it and however many sites there are). Parameters are varied within each Params
model's valid ranges, at residential sizes:

  household     daily_kwh 4-12, noise 0.10-0.30, 1-5 appliance runs a day
  ev_charger    3.7 / 7.4 / 11 kW wallbox; an evening session on 40-90 % of days, arriving at
                16:30-19:30 on average (sd 0.75-2 h), leaving 06:30-08:30 (sd 0.5-1 h);
                3-6 kWh to 12-35 kWh needed
  heat_pump     heating; house UA 120-300 W/K, heat capacity 1.2-3.0e7 J/K, COP 2.5-4.0, thermostat
                20-22 C (deadband 0.6-1.4 K, comfort +-2 K); climate -5..8 C mean, 3-7 K daily swing,
                day-to-day sd 1-3 K; electrical power sized to 1.25 x the design heat loss, 1-8 kW
  hvac          cooling; the same house ranges, thermostat 23-25 C, climate 24-31 C mean,
                4-8 K swing; sized the same way
  battery       5 / 10 / 13.5 kWh, 2.5-5 kW charging; 35 % charge on an afternoon tariff
                (from 14-16 h for 2-4 h, discharging after it), the rest at night (from 0-2 h for
                3-5 h, discharging 17-21 h or 18-22 h)
  water_heater  150-300 L tank, 2 / 3 / 4.5 kW element, thermostat 55-65 C (deadband 4-8 K),
                never below 45 C, standing losses 1.2-3 W/K, draws x0.5-1.6

A site has at most one thermal device (a heat pump in a cold climate, 60 % of sites, else an
HVAC). All simulators step every 60 s (the longest sub-step the models allow) at UTC+0, so the
event hour is the local hour. A site's address is a fixed fake Ethereum address derived from the
seed and its index, so the holdout draw (protocol.holdout) is well defined.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak, to_checksum_address

CONTROLLABLE_KINDS = ("ev_charger", "heat_pump", "hvac", "battery", "water_heater")
STEP_SECONDS = 60  # every model allows a 60 s sub-step; setpoints then act on whole minutes


@dataclass(frozen=True)
class SiteSpec:
    """One site: its index, its fake address and its device configurations (household first)."""

    index: int
    address: str
    devices: tuple[dict[str, Any], ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kind of each device, in order (the household first)."""
        return tuple(config["kind"] for config in self.devices)


def site_address(seed: int, index: int) -> str:
    """The fixed fake address of site `index` under bench seed `seed` (checksummed)."""
    return to_checksum_address(keccak(text=f"negawatt:bench-mv:site:{seed}:{index}")[12:])


def _rng(seed: int, index: int) -> random.Random:
    return random.Random(f"negawatt:bench-mv:params:{seed}:{index}")  # str seeds hash with SHA-512: stable


def _household(rng: random.Random) -> dict[str, Any]:
    return {"daily_kwh": round(rng.uniform(4.0, 12.0), 2), "noise": round(rng.uniform(0.10, 0.30), 3),
            "appliance_runs_per_day": rng.randint(1, 5)}


def _ev_charger(rng: random.Random) -> dict[str, Any]:
    return {"max_power_w": rng.choices((3_700, 7_400, 11_000), weights=(2, 5, 3))[0],
            "session_probability": round(rng.uniform(0.40, 0.90), 3),
            "arrival_hour_mean": round(rng.uniform(16.5, 19.5), 2),
            "arrival_hour_sd": round(rng.uniform(0.75, 2.0), 2),
            "departure_hour_mean": round(rng.uniform(6.5, 8.5), 2),
            "departure_hour_sd": round(rng.uniform(0.5, 1.0), 2),
            "energy_needed_min_wh": rng.randint(3_000, 6_000),
            "energy_needed_max_wh": rng.randint(12_000, 35_000)}


def _thermal(rng: random.Random, mode: str) -> dict[str, Any]:
    ua = round(rng.uniform(120.0, 300.0), 1)
    cop = round(rng.uniform(2.5, 4.0), 2)
    deadband = round(rng.uniform(0.6, 1.4), 2)
    amplitude = round(rng.uniform(3.0, 7.0) if mode == "heat" else rng.uniform(4.0, 8.0), 2)
    day_sd = round(rng.uniform(1.0, 3.0), 2)
    if mode == "heat":
        setpoint, outdoor = round(rng.uniform(20.0, 22.0), 1), round(rng.uniform(-5.0, 8.0), 2)
        design_k = setpoint - (outdoor - amplitude - 2 * day_sd)
    else:
        setpoint, outdoor = round(rng.uniform(23.0, 25.0), 1), round(rng.uniform(24.0, 31.0), 2)
        design_k = (outdoor + amplitude + 2 * day_sd) - setpoint
    power = math.ceil(1.25 * ua * max(design_k, 1.0) / cop / 100) * 100
    return {"mode": mode, "max_power_w": min(8_000, max(1_000, power)), "cop": cop, "ua_w_per_k": ua,
            "heat_capacity_j_per_k": round(rng.uniform(1.2e7, 3.0e7), -4), "setpoint_c": setpoint,
            "deadband_k": deadband, "comfort_min_c": setpoint - 2.0, "comfort_max_c": setpoint + 2.0,
            "initial_temp_c": round(setpoint + rng.uniform(-deadband / 2, deadband / 2), 3),
            "outdoor_mean_c": outdoor, "outdoor_amplitude_k": amplitude, "outdoor_day_sd_k": day_sd}


def _battery(rng: random.Random) -> dict[str, Any]:
    charge_w = rng.choice((2_500, 3_300, 5_000))
    discharge_w = rng.randrange(800, 2_001, 100)
    if rng.random() < 0.35:  # an afternoon tariff: charging across the evening's first hours
        start = float(rng.choice((14, 15, 16)))
        end = start + rng.choice((2, 3, 4))
        charge, discharge = [(start, end)], [(end, 23.0)]
    else:
        start = float(rng.choice((0, 1, 2)))
        charge = [(start, start + rng.choice((3, 4, 5)))]
        discharge = [rng.choice(((17.0, 21.0), (18.0, 22.0)))]
    return {"capacity_wh": rng.choice((5_000, 10_000, 13_500)), "max_charge_w": charge_w,
            "max_discharge_w": max(charge_w, discharge_w), "discharge_w": discharge_w,
            "initial_soc": round(rng.uniform(0.15, 0.9), 3), "charge_windows": charge,
            "discharge_windows": discharge}


def _water_heater(rng: random.Random) -> dict[str, Any]:
    return {"volume_l": float(rng.choice((150, 200, 270, 300))),
            "element_w": rng.choices((2_000, 3_000, 4_500), weights=(3, 5, 2))[0],
            "setpoint_c": round(rng.uniform(55.0, 65.0), 1), "deadband_k": round(rng.uniform(4.0, 8.0), 1),
            "min_temp_c": 45.0, "loss_w_per_k": round(rng.uniform(1.2, 3.0), 2),
            "draw_scale": round(rng.uniform(0.5, 1.6), 2), "ambient_c": round(rng.uniform(15.0, 22.0), 1),
            "inlet_c": round(rng.uniform(8.0, 15.0), 1)}


def draw_site(seed: int, index: int, without: tuple[str, ...] = ()) -> SiteSpec:
    """Site `index` of the bench run with seed `seed`: a household and 1-3 controllable devices
    (parameters and device seeds drawn as the module docstring says; build them with
    node.devices.factory.build_device). `without` leaves kinds out of the draw (e.g. EV chargers,
    to see what they do to the estimate); with none left out the draw is unchanged."""
    if index < 0:
        raise ValueError(f"site index must be >= 0, got {index}")
    rng = _rng(seed, index)
    count = rng.choices((1, 2, 3), weights=(4, 4, 2))[0]
    thermal = "heat_pump" if rng.random() < 0.6 else "hvac"
    pool = [kind for kind in ("ev_charger", thermal, "battery", "water_heater") if kind not in without]
    kinds = rng.sample(pool, min(count, len(pool)))
    kinds.sort(key=CONTROLLABLE_KINDS.index)
    configs: list[dict[str, Any]] = [{"kind": "household", **_household(rng)}]
    for kind in kinds:
        if kind == "ev_charger":
            params = _ev_charger(rng)
        elif kind in ("heat_pump", "hvac"):
            params = _thermal(rng, "heat" if kind == "heat_pump" else "cool")
        elif kind == "battery":
            params = _battery(rng)
        else:
            params = _water_heater(rng)
        configs.append({"kind": kind, **params})
    devices = []
    for number, config in enumerate(configs):
        devices.append({**config, "device_id": f"site{index}-{number}-{config['kind']}",
                        "seed": rng.getrandbits(48), "step_seconds": STEP_SECONDS})
    return SiteSpec(index, site_address(seed, index), tuple(devices))
