"""The charger side of the simulated EV charger's OCPP session: handlers for the Central System's
SetChargingProfile, ClearChargingProfile and TriggerMessage, per OCPP version."""

from __future__ import annotations

import asyncio

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201


class ChargerClient16(ChargePoint16):
    """OCPP 1.6J, charge point side."""

    def __init__(self, peer, connection):
        super().__init__(peer.charge_point_id, connection, response_timeout=10)
        self.peer = peer

    @on(Action16.set_charging_profile)
    def on_set_profile(self, connector_id, cs_charging_profiles, **_):
        schedule = cs_charging_profiles["charging_schedule"]
        period = schedule["charging_schedule_period"][0]
        self.peer.set_profile(cs_charging_profiles["charging_profile_id"], float(period["limit"]),
                              schedule["charging_rate_unit"], cs_charging_profiles)
        return result16.SetChargingProfile(status="Accepted")

    @after(Action16.set_charging_profile)
    async def after_set_profile(self, **_):
        await self.peer.send_meter_values()

    @on(Action16.clear_charging_profile)
    def on_clear_profile(self, id=None, **_):
        return result16.ClearChargingProfile(status="Accepted" if self.peer.clear_profile(id) else "Unknown")

    @after(Action16.clear_charging_profile)
    async def after_clear_profile(self, **_):
        await self.peer.send_meter_values()

    @on(Action16.trigger_message)
    def on_trigger(self, requested_message, **_):
        return result16.TriggerMessage(status="Accepted" if requested_message == "MeterValues" else "NotImplemented")

    @after(Action16.trigger_message)
    async def after_trigger(self, requested_message, **_):
        if requested_message == "MeterValues":
            await asyncio.sleep(0)
            await self.peer.send_meter_values()


class ChargerClient201(ChargePoint201):
    """OCPP 2.0.1, charging station side."""

    def __init__(self, peer, connection):
        super().__init__(peer.charge_point_id, connection, response_timeout=10)
        self.peer = peer

    @on(Action201.set_charging_profile)
    def on_set_profile(self, evse_id, charging_profile, **_):
        schedule = charging_profile["charging_schedule"][0]
        period = schedule["charging_schedule_period"][0]
        self.peer.set_profile(charging_profile["id"], float(period["limit"]), schedule["charging_rate_unit"],
                              charging_profile)
        return result201.SetChargingProfile(status="Accepted")

    @after(Action201.set_charging_profile)
    async def after_set_profile(self, **_):
        await self.peer.send_meter_values()

    @on(Action201.clear_charging_profile)
    def on_clear_profile(self, charging_profile_id=None, **_):
        removed = self.peer.clear_profile(charging_profile_id)
        return result201.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @after(Action201.clear_charging_profile)
    async def after_clear_profile(self, **_):
        await self.peer.send_meter_values()

    @on(Action201.trigger_message)
    def on_trigger(self, requested_message, **_):
        return result201.TriggerMessage(status="Accepted" if requested_message == "MeterValues" else "NotImplemented")

    @after(Action201.trigger_message)
    async def after_trigger(self, requested_message, **_):
        if requested_message == "MeterValues":
            await self.peer.send_meter_values()
