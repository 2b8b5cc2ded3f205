"""A simulated site meter: the premises' grid connection of a node whose devices are simulated.

The rule: the site meter reads, exactly, the sum of the node's simulated devices and the rest of the
household (a `Household` simulator the meter owns, since nothing else meters it):

    energy_wh() = household.energy_wh() + sum of member.energy_wh()      (integer registers)
    power_w()   = household.power_w()   + sum of member.power_w()

so every interval's site reading is the sum of the members' interval readings plus the household's,
to the Wh. The members are the node's own device drivers (the same objects the node meters and
dispatches), advanced to the same instants; a simulator's trajectory does not depend on how often
it is advanced, so the meter advancing them too changes nothing. A site meter is never dispatched:
it has no flexibility and refuses setpoints. Its own dynamic state is its household's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from node.devices.household import Household, HouseholdParams
from node.devices.interface import NOT_DISPATCHABLE, Device, SetpointResult



class SiteMeterParams(BaseModel):
    """A simulated site meter's own parameters: its household (the load nothing else meters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    household: dict[str, Any] = Field(default_factory=dict, description="HouseholdParams of the rest of the home")


class SimulatedSiteMeter(Device):
    """The sum of a node's simulated devices and its household; see the module docstring."""

    kind = "site_meter"
    live = False

    def __init__(self, device_id: str, members: Sequence[Device], capacity_w: int, params: SiteMeterParams | None = None,
                 *, start_time: float = 0.0, household: Household | None = None):
        if not device_id:
            raise ValueError("device_id must not be empty")
        self.device_id = device_id
        self.capacity_w = capacity_w
        self.params = params or SiteMeterParams()
        self.members = list(members)
        for member in self.members:
            if member.live:
                raise ValueError(f"{member.device_id}: a simulated site meter sums simulated devices only")
        self.household = household or Household(f"{device_id}-household",
                                                 HouseholdParams(**self.params.household),
                                                 seed=self.params.seed, start_time=start_time)

    def fresh(self, start_time: float, members: Sequence[Device] | None = None) -> SimulatedSiteMeter:
        """A copy starting at `start_time` over `members` (fresh copies of its members by default)."""
        members = [m.fresh(start_time) for m in self.members] if members is None else members  # type: ignore[attr-defined]
        return SimulatedSiteMeter(self.device_id, members, self.capacity_w, self.params, start_time=start_time,
                                  household=self.household.fresh(start_time))

    def advance(self, to_time: float) -> None:
        self.household.advance(to_time)
        for member in self.members:
            member.advance(to_time)

    def power_w(self) -> int:
        return self.household.power_w() + sum(m.power_w() for m in self.members)

    def energy_wh(self) -> int:
        return self.household.energy_wh() + sum(m.energy_wh() for m in self.members)

    def apply_setpoint(self, max_power_w: int, reason: str) -> SetpointResult:
        return SetpointResult(self.device_id, max_power_w, self.power_w(), False, NOT_DISPATCHABLE)

    def restore(self) -> None:
        """Nothing to restore: a site meter is never curtailed."""

    def flexibility_w(self, now: float) -> int:
        return 0

    def forecast_flexibility_w(self, start: float, end: float) -> int | None:
        return 0

    def state(self) -> dict:
        return {"kind": self.kind, "power_w": self.power_w(), "energy_wh": self.energy_wh(),
                "household_w": self.household.power_w(), "members": [m.device_id for m in self.members]}

    def snapshot(self) -> dict[str, Any] | None:
        return self.household.snapshot()

    def resume(self, snapshot: dict[str, Any]) -> bool:
        return self.household.resume(snapshot)
