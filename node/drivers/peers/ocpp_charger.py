"""A simulated EV charger: a real `ocpp` ChargePoint client (1.6J or 2.0.1) over websockets.

It connects to `<central_url>/<charge_point_id>`, boots, reports its connector as charging, starts
a transaction and sends meter values (Power.Active.Import W, Energy.Active.Import.Register Wh) every
`meter_seconds` (1.6: MeterValues; 2.0.1: TransactionEvent Updated), and at once when the Central
System triggers MeterValues or changes a charging profile. The physics is the node's own EV
charger simulator (node.devices.ev_charger.EVCharger) with a car plugged in for a day: a
SetChargingProfile's limit (W, or A at 230 V x 3 phases) becomes its setpoint; clearing the
profile restores it. When the Central System goes away, it reconnects with back-off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from node.devices.ev_charger import EVCharger, EVChargerParams
from node.drivers.backoff import Backoff
from node.drivers.peers.background import BackgroundPeer

log = logging.getLogger("negawatt.peers.ocpp")
VOLTS, PHASES = 230, 3


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ChargerPeer(BackgroundPeer):
    """An EV charger with a car plugged in, speaking OCPP to a Central System."""

    def __init__(self, central_url: str, charge_point_id: str, *, version: str = "1.6", max_power_w: int = 7_400,
                 meter_seconds: float = 2.0, energy_offset_wh: int = 250_000, ssl=None, password: str | None = None):
        if version not in ("1.6", "2.0.1"):
            raise ValueError("version must be 1.6 or 2.0.1")
        self.url = central_url.rstrip("/") + "/" + charge_point_id
        self.charge_point_id, self.version, self.meter_seconds = charge_point_id, version, meter_seconds
        self.ssl, self.password = ssl, password  # security profile 2: wss:// and Basic auth
        self.last_error = ""
        self.energy_offset_wh = energy_offset_wh
        arrival = int(time.time()) // 60 * 60
        self.ev = EVCharger("peer-ev", EVChargerParams(
            max_power_w=max_power_w, step_seconds=1,
            sessions=[{"arrival": arrival, "departure": arrival + 86_400, "energy_needed_wh": 60_000}]),
            start_time=time.time())
        self.profiles: dict[int, dict] = {}  # profile id -> the profile the Central System set
        self.limit_w: int | None = None
        self.connected = False
        self.boots = 0
        self._task: asyncio.Task | None = None
        self._cp = None
        self._seq = 0
        self._transaction_id: int | str | None = None

    # -- physics ---------------------------------------------------------------------------------

    def _advance(self) -> None:
        self.ev.advance(time.time())

    def snapshot(self) -> dict:
        """The charger's state now."""
        self._advance()
        return {"power_w": self.ev.power_w(), "energy_wh": self.energy_offset_wh + self.ev.energy_wh(),
                "limit_w": self.limit_w, "profiles": dict(self.profiles), "connected": self.connected,
                "boots": self.boots}

    def set_profile(self, profile_id: int, limit: float, unit: str, profile: dict) -> None:
        """A charging profile arrived: its first period's limit caps the charger."""
        self._advance()
        watts = int(limit if unit == "W" else limit * VOLTS * PHASES)
        self.profiles[profile_id] = profile
        self.limit_w = watts
        self.ev.apply_setpoint(watts, f"OCPP profile {profile_id}")
        log.info("charger peer %s: profile %d limits to %d W", self.charge_point_id, profile_id, watts)

    def clear_profile(self, profile_id: int | None) -> bool:
        """ClearChargingProfile: True if a profile was removed."""
        self._advance()
        removed = self.profiles.pop(profile_id, None) if profile_id is not None else self.profiles.clear()
        if not self.profiles:
            self.limit_w = None
            self.ev.restore()
        return removed is not None or profile_id is None

    def meter_value(self) -> dict:
        self._advance()
        return {"timestamp": _now(), "sampled_value": [
            {"value": str(self.ev.power_w()), "measurand": "Power.Active.Import", "unit": "W"},
            {"value": str(self.energy_offset_wh + self.ev.energy_wh()), "measurand": "Energy.Active.Import.Register",
             "unit": "Wh"}]}

    def meter_value_201(self) -> dict:
        self._advance()
        return {"timestamp": _now(), "sampled_value": [
            {"value": self.ev.power_w(), "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W"}},
            {"value": self.energy_offset_wh + self.ev.energy_wh(), "measurand": "Energy.Active.Import.Register",
             "unit_of_measure": {"unit": "Wh"}}]}

    # -- connection ------------------------------------------------------------------------------

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                async with connect(self.url, subprotocols=[f"ocpp{self.version}"], open_timeout=5, ssl=self.ssl,
                                   additional_headers=self._headers()) as ws:
                    self._cp = make_client(self, ws)
                    self.connected = True
                    backoff.reset()
                    reader = asyncio.ensure_future(self._cp.start())
                    try:
                        await self._session()
                    finally:
                        reader.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the Central System went away (or refused us): retry
                self.last_error = f"{type(error).__name__}: {error}"
                log.info("charger peer %s: connection lost (%s)", self.charge_point_id, self.last_error)
            finally:
                self.connected = False
                self._cp = None
            await asyncio.sleep(backoff.next_delay())

    def _headers(self) -> dict[str, str]:
        if self.password is None:
            return {}
        from node.drivers.ocpp_auth import basic_header

        return {"Authorization": basic_header(self.charge_point_id, self.password)}

    async def _session(self) -> None:
        cp = self._cp
        if self.version == "1.6":
            from ocpp.v16 import call

            await cp.call(call.BootNotification(charge_point_model="negawatt-sim", charge_point_vendor="negawatt"))
            self.boots += 1
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging",
                                                  timestamp=_now()))
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="negawatt", timestamp=_now(),
                                                          meter_start=self.energy_offset_wh + self.ev.energy_wh()))
            self._transaction_id = started.transaction_id
            while True:
                await self.send_meter_values()
                await asyncio.sleep(self.meter_seconds)
        else:
            from ocpp.v201 import call

            await cp.call(call.BootNotification(charging_station={"model": "negawatt-sim", "vendor_name": "negawatt"},
                                                reason="PowerUp"))
            self.boots += 1
            await cp.call(call.StatusNotification(timestamp=_now(), connector_status="Occupied", evse_id=1,
                                                  connector_id=1))
            self._transaction_id = f"tx-{int(time.time())}"
            await self._transaction_event("Started", "CablePluggedIn")
            while True:
                await asyncio.sleep(self.meter_seconds)
                await self._transaction_event("Updated", "MeterValuePeriodic")

    async def _transaction_event(self, event_type: str, trigger: str) -> None:
        from ocpp.v201 import call

        self._seq += 1
        await self._cp.call(call.TransactionEvent(
            event_type=event_type, timestamp=_now(), trigger_reason=trigger, seq_no=self._seq,
            transaction_info={"transaction_id": self._transaction_id, "charging_state": "Charging"},
            evse={"id": 1, "connector_id": 1}, meter_value=[self.meter_value_201()]))

    async def send_meter_values(self) -> None:
        """Send the current meter values now."""
        if self._cp is None:
            return
        if self.version == "1.6":
            from ocpp.v16 import call

            await self._cp.call(call.MeterValues(connector_id=1, transaction_id=self._transaction_id,
                                                 meter_value=[self.meter_value()]))
        else:
            from ocpp.v201 import call

            await self._cp.call(call.MeterValues(evse_id=1, meter_value=[self.meter_value_201()]))


def make_client(peer: ChargerPeer, connection):
    """The `ocpp` ChargePoint (charger side) for one connection of `peer`."""
    from node.drivers.peers.ocpp_clients import ChargerClient16, ChargerClient201

    cls = ChargerClient16 if peer.version == "1.6" else ChargerClient201
    return cls(peer, connection)
