"""Simulated EV charger (wallbox) with plug-in sessions.

A session is (arrival, departure, energy needed by the car). Sessions come from the seed — at most
one a day, arriving in the evening and leaving the next morning, on whole minutes of local time — or
are given explicitly in the parameters. While plugged in and not yet full, the charger draws its
maximum power, or the setpoint if lower; the last sub-step tapers so the car gets what it needs and
no more. Energy into the car = grid energy x `efficiency`.

The charger always honours a setpoint (the owner committed the car's flexibility); whether the car
can still get its energy by departure is for the node's policy to decide, with
`minimum_power_to_meet_departure(now)`, and a setpoint below that power comes back with a warning.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from node.devices.simulated import SECONDS_PER_DAY, Decision, DeviceParams, SimulatedDevice, day_seed


class SessionSpec(BaseModel):
    """One plug-in session, unix seconds on whole minutes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arrival: int
    departure: int
    energy_needed_wh: int = Field(ge=0)

    @model_validator(mode="after")
    def _check(self) -> SessionSpec:
        if self.arrival % 60 or self.departure % 60:
            raise ValueError("arrival and departure must be whole minutes (multiples of 60 s)")
        if self.departure <= self.arrival:
            raise ValueError("departure must be after arrival")
        return self


class EVChargerParams(DeviceParams):
    max_power_w: int = Field(7_400, gt=0, le=350_000)
    efficiency: float = Field(0.92, gt=0, le=1, description="energy into the car / energy from the grid")
    session_probability: float = Field(0.85, ge=0, le=1, description="chance a day has an evening session")
    arrival_hour_mean: float = Field(18.0, ge=12, le=23.5)
    arrival_hour_sd: float = Field(1.5, ge=0, le=6)
    departure_hour_mean: float = Field(7.5, ge=4, le=12)
    departure_hour_sd: float = Field(0.75, ge=0, le=4)
    energy_needed_min_wh: int = Field(4_000, ge=0)
    energy_needed_max_wh: int = Field(30_000, ge=0)
    sessions: list[SessionSpec] | None = Field(None, description="explicit sessions instead of random ones")

    @model_validator(mode="after")
    def _check(self) -> EVChargerParams:
        if self.energy_needed_min_wh > self.energy_needed_max_wh:
            raise ValueError("energy_needed_min_wh must be <= energy_needed_max_wh")
        if self.sessions:
            ordered = sorted(self.sessions, key=lambda session: session.arrival)
            for before, after in itertools.pairwise(ordered):
                if after.arrival < before.departure:
                    raise ValueError("sessions must not overlap")
        return self


@dataclass(frozen=True)
class Session:
    arrival: float
    departure: float
    energy_needed_wh: int


@dataclass
class EVState:
    energy_j: float = 0.0
    session: Session | None = None  # the current session, or the last one once the car has left
    plugged: bool = False
    delivered_wh: float = 0.0  # into the car during `session`


class EVCharger(SimulatedDevice):
    kind = "ev_charger"
    params_model = EVChargerParams
    params: EVChargerParams

    def __init__(self, device_id: str, params: EVChargerParams | None = None, *, seed: int = 0,
                 start_time: float = 0.0):
        self._day_sessions: dict[int, Session | None] = {}
        self._explicit = None
        if params is not None and params.sessions is not None:
            self._explicit = sorted((Session(float(s.arrival), float(s.departure), s.energy_needed_wh)
                                     for s in params.sessions), key=lambda session: session.arrival)
        super().__init__(device_id, params, seed=seed, start_time=start_time)
        self.capacity_w = self.params.max_power_w

    # -- sessions -------------------------------------------------------------------------------

    def _session_of_day(self, day: int) -> Session | None:
        """The random session arriving on local day `day` (None on days without one)."""
        if day in self._day_sessions:
            return self._day_sessions[day]
        p = self.params
        rng = random.Random(day_seed(self.seed, "ev", day))
        session = None
        if rng.random() < p.session_probability:
            arrival_h = min(max(rng.gauss(p.arrival_hour_mean, p.arrival_hour_sd), 12.0), 23.75)
            departure_h = min(max(rng.gauss(p.departure_hour_mean, p.departure_hour_sd), 4.0), 12.0)
            base = day * SECONDS_PER_DAY - self.offset_s
            arrival = base + round(arrival_h * 60) * 60
            departure = base + SECONDS_PER_DAY + round(departure_h * 60) * 60
            needed = rng.randint(p.energy_needed_min_wh, p.energy_needed_max_wh)
            reachable = int(0.9 * p.max_power_w * p.efficiency * (departure - arrival) / 3600)
            session = Session(arrival, departure, min(needed, reachable))
        if len(self._day_sessions) > 64:
            self._day_sessions.clear()
        self._day_sessions[day] = session
        return session

    def session_at(self, t: float) -> Session | None:
        """The session during which the car is plugged in at `t` (arrival <= t < departure)."""
        if self._explicit is not None:
            for session in self._explicit:
                if session.arrival <= t < session.departure:
                    return session
            return None
        day = self.local_day(t)
        for d in (day, day - 1):
            session = self._session_of_day(d)
            if session is not None and session.arrival <= t < session.departure:
                return session
        return None

    def next_arrival(self, t: float) -> float | None:
        """The first arrival after `t` (within a week for random sessions)."""
        if self._explicit is not None:
            return next((s.arrival for s in self._explicit if s.arrival > t), None)
        day = self.local_day(t)
        for d in range(day, day + 8):
            session = self._session_of_day(d)
            if session is not None and session.arrival > t:
                return session.arrival
        return (day + 8) * SECONDS_PER_DAY - self.offset_s

    def sessions_between(self, start: float, end: float) -> list[Session]:
        """Sessions arriving in [start, end)."""
        if self._explicit is not None:
            return [s for s in self._explicit if start <= s.arrival < end]
        days = range(self.local_day(start), self.local_day(end) + 1)
        return [s for d in days if (s := self._session_of_day(d)) is not None and start <= s.arrival < end]

    # -- the policy's question ------------------------------------------------------------------

    def minimum_power_to_meet_departure(self, now: float) -> int:
        """The least constant grid power (W) from `now` that gets the car its energy by departure.

        Uses the energy delivered as of the device's clock (advance it to `now` first). 0 when no car
        is plugged in or it is full. May exceed `max_power_w`: the target is then out of reach.
        """
        view = self._view()
        session = view.session
        if not view.plugged or not session.arrival <= now < session.departure:
            return 0
        remaining = session.energy_needed_wh - view.delivered_wh
        if remaining <= 0:
            return 0
        return math.ceil(remaining * 3600 / (self.params.efficiency * (session.departure - now)))

    # -- simulation -----------------------------------------------------------------------------

    def _initial_state(self) -> EVState:
        return EVState()

    def _decide(self, s: EVState, t: float, seconds: float) -> Decision:
        session = self.session_at(t)
        s.plugged = session is not None
        if session is None:
            return Decision(0)
        if session != s.session:
            s.session = session
            s.delivered_wh = 0.0
        remaining = session.energy_needed_wh - s.delivered_wh
        if remaining <= 0:
            return Decision(0)
        p = self.params
        power = min(p.max_power_w, math.ceil(remaining * 3600 / (p.efficiency * seconds)))
        if self._setpoint is not None:
            power = min(power, self._setpoint)
        return Decision(power)

    def _integrate(self, s: EVState, t: float, seconds: float, power_w: int) -> None:
        if s.plugged:
            s.delivered_wh += power_w * seconds * self.params.efficiency / 3600

    def _idle_until(self, s: EVState, t: float) -> float | None:
        if not s.plugged:
            return self.next_arrival(t)
        if s.delivered_wh >= s.session.energy_needed_wh:
            return s.session.departure
        return None

    def _minimum_power(self, now: float) -> int:
        return self.minimum_power_to_meet_departure(now)

    def _setpoint_warning(self) -> str:
        needed = self.minimum_power_to_meet_departure(self._now)
        if self._setpoint is not None and needed > self._setpoint:
            return (f"departure target at risk: the car needs at least {needed} W until "
                    f"{self._view().session.departure:.0f} to get its energy")
        return ""

    def _state_details(self, view: EVState, now: float) -> dict:
        session = view.session
        details = {"max_power_w": self.params.max_power_w, "plugged_in": view.plugged,
                   "delivered_wh": round(view.delivered_wh, 3)}
        if session is not None:  # the current session, or the last one
            details.update({
                "arrival": session.arrival,
                "departure": session.departure,
                "energy_needed_wh": session.energy_needed_wh,
                "remaining_wh": round(max(0.0, session.energy_needed_wh - view.delivered_wh), 3),
                "minimum_power_to_meet_departure_w": self.minimum_power_to_meet_departure(now),
            })
        return details
