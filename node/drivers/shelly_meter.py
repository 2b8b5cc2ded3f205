"""A Shelly Pro 3EM / Pro EM-class site meter over MQTT (aiomqtt), by its Gen2 RPC notifications.

A Gen2+ Shelly with MQTT enabled publishes JSON-RPC notification frames on `<topic>/events/rpc`:

    {"src": "<device id>", "dst": "<topic>/events", "method": "NotifyStatus",
     "params": {"ts": <unix time>, "em:0": {"total_act_power": <W>, ...},
                "emdata:0": {"total_act": <Wh>, ...}}}

(NotifyFullStatus carries the whole status the same way). A NotifyStatus carries only what
changed, so the driver overlays each one on what it knows. Profile `em` (Pro 3EM, triphase) reads
`em:0.total_act_power` (W, all phases) and `emdata:0.total_act` (imported active energy, Wh, all
phases); profile `em1` (Pro EM, EM Gen3, Pro 3EM monophase) reads `em1:<channel>.act_power` and
`em1data:<channel>.total_act_energy`. The device also answers RPC requests sent to `<topic>/rpc`
on the topic `<src>/rpc` of the request's `src`: on connecting, and then every `poll_seconds`, the
driver asks for `Shelly.GetStatus`, so it has a full reading without waiting for a change. The
generic status topics `<topic>/status/<component>` (when enabled on the device) are read too.

Power is grid import (a negative total, export, reads as 0 W and is kept as `export_w`); the
energy is the device's own counter, decimals kept exact and floored to whole Wh, through
node.drivers.site_meter.MonotonicCounter (a counter reset by EMData.ResetCounters continues from
the last value). The meter is available while connected to the broker and its last report is at
most `stale_seconds` old.

Security is the MQTT relay's (node.drivers.settings.MqttBrokerSettings): TLS 1.2+ with the
broker's certificate and host name verified, an optional client certificate, and a username with
a password from `password_env` or `password_file`; a refused login or an untrusted certificate
makes the meter unavailable with the reason, retried with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from decimal import Decimal
from typing import Any

from node.drivers.live import DriverError
from node.drivers.mqtt_relay import as_decimal, connect_broker
from node.drivers.settings import ShellyMeterSettings
from node.drivers.site_meter import SiteMeterDevice

log = logging.getLogger("negawatt.node.drivers.shelly")
NOTIFICATIONS = ("NotifyStatus", "NotifyFullStatus")


def components(settings: ShellyMeterSettings) -> tuple[str, str, str, str]:
    """(power component, its field, energy component, its field) of the settings' profile."""
    if settings.profile == "em":
        return "em:0", "total_act_power", "emdata:0", "total_act"
    c = settings.channel
    return f"em1:{c}", "act_power", f"em1data:{c}", "total_act_energy"


class ShellyMeter(SiteMeterDevice):
    """A Shelly energy meter behind an MQTT broker."""

    driver_name = "shelly"

    def __init__(self, device_id: str, kind: str, capacity_w: int, settings: ShellyMeterSettings):
        super().__init__(device_id, kind, capacity_w, settings)
        self.settings: ShellyMeterSettings = settings
        self.power_component, self.power_field, self.energy_component, self.energy_field = components(settings)
        self.src = f"negawatt-{device_id[-12:]}-{os.getpid()}"  # our RPC source: responses come on <src>/rpc
        t = settings.topic
        self.topics = {"events": f"{t}/events/rpc", "rpc": f"{t}/rpc", "response": f"{self.src}/rpc",
                       "power_status": f"{t}/status/{self.power_component}",
                       "energy_status": f"{t}/status/{self.energy_component}"}
        self._client = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._serving: asyncio.Future | None = None
        self._power: Decimal | None = None
        self._energy: Decimal | None = None
        self._request_id = 0
        self._connected_at = 0.0
        self.ignored = 0  # messages that were not a status of this meter
        settings.password()  # a missing password variable or file is an error now, at start-up
        self._tls = settings.ssl_context()

    # -- the connection --------------------------------------------------------------------------

    async def _connect(self) -> None:
        s = self.settings
        self._connected_at = time.monotonic()
        self._stack = contextlib.AsyncExitStack()
        self._client = await connect_broker(self._stack, s, self._tls, self.src)
        for name in ("events", "response", "power_status", "energy_status"):
            await self._client.subscribe(self.topics[name], qos=1)
        self._serving = asyncio.ensure_future(self._listen())
        await self._ask_status()
        deadline = asyncio.get_running_loop().time() + s.stale_seconds
        while self._reading is None or self._reading.at < self._connected_at:
            if self._serving.done():
                self._serving.result()
            if asyncio.get_running_loop().time() > deadline:
                break  # connected to the broker, but the meter is silent: unavailable until it reports
            await asyncio.sleep(0.05)

    async def _listen(self) -> None:
        async for message in self._client.messages:
            self._handle(str(message.topic), bytes(message.payload))

    async def _serve(self) -> None:
        while True:
            done, _ = await asyncio.wait({self._serving}, timeout=self.settings.poll_seconds)
            if done:
                self._serving.result()
                return
            await self._ask_status()

    async def _disconnect(self) -> None:
        if self._serving is not None:
            self._serving.cancel()
            self._serving = None
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def _ask_status(self) -> None:
        """Send Shelly.GetStatus to the device (its answer comes on <src>/rpc)."""
        import aiomqtt

        if self._client is None:
            raise ConnectionError("not connected to the broker")
        self._request_id += 1
        request = {"id": self._request_id, "src": self.src, "method": "Shelly.GetStatus"}
        try:
            await self._client.publish(self.topics["rpc"], json.dumps(request), qos=1)
        except aiomqtt.MqttError as error:
            raise ConnectionError(str(error)) from None

    # -- messages --------------------------------------------------------------------------------

    def _handle(self, topic: str, payload: bytes) -> None:
        try:
            body: Any = json.loads(payload.decode("utf-8", errors="replace"), parse_float=Decimal)
        except json.JSONDecodeError:
            self.ignored += 1
            return
        if not isinstance(body, dict):
            self.ignored += 1
            return
        if topic == self.topics["events"]:
            if body.get("method") not in NOTIFICATIONS or not isinstance(body.get("params"), dict):
                return  # NotifyEvent and the like carry no readings
            status = body["params"]
        elif topic == self.topics["response"]:
            if "error" in body:
                log.warning("shelly %s: Shelly.GetStatus failed: %s", self.device_id, body["error"])
                return
            status = body.get("result")
            if not isinstance(status, dict):
                self.ignored += 1
                return
        elif topic == self.topics["power_status"]:
            status = {self.power_component: body}
        elif topic == self.topics["energy_status"]:
            status = {self.energy_component: body}
        else:
            return
        self._overlay(status)

    def _overlay(self, status: dict[str, Any]) -> None:
        changed = False
        power = status.get(self.power_component)
        if isinstance(power, dict) and self.power_field in power:
            value = as_decimal(power[self.power_field])
            if value is not None:
                self._power, changed = value, True
        energy = status.get(self.energy_component)
        if isinstance(energy, dict) and self.energy_field in energy:
            value = as_decimal(energy[self.energy_field])
            if value is not None and value >= 0:
                self._energy, changed = value, True
        if changed and self._power is not None and self._energy is not None:
            raw_wh = int(self._energy.to_integral_value(rounding="ROUND_FLOOR"))
            watts = round(self._power)
            self._store(max(0, watts), self.counter.update(raw_wh), export_w=max(0, -watts), meter_energy_wh=raw_wh,
                        energy_resets=self.counter.resets, profile=self.settings.profile)
