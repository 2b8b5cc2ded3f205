"""A simulated smart plug on a real MQTT broker, speaking Shelly Gen2, Tasmota or generic topics.

The plug switches a constant load (`load_w` while on; with `generic` style a power limit published
to `<topic>/limit/set` caps it). Its energy counter integrates the power over wall-clock time. It
publishes its status every `publish_seconds` and right after every command, and reconnects to the
broker with back-off when the broker goes away.

    shelly_gen2  <topic>/status/switch:0  {"id":0,"output":true,"apower":..,"aenergy":{"total":Wh}}
                 commands on <topic>/command/switch:0: on | off
    tasmota      tele/<topic>/SENSOR {"ENERGY":{"Power":W,"Total":kWh}}, stat/<topic>/POWER ON|OFF
                 commands on cmnd/<topic>/POWER: ON | OFF
    generic      <topic>/power (W), <topic>/energy (Wh), <topic>/state ON|OFF,
                 commands on <topic>/set: ON | OFF, limit on <topic>/limit/set (W)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from node.drivers.backoff import Backoff
from node.drivers.peers.background import BackgroundPeer

log = logging.getLogger("negawatt.peers.mqtt")


class PlugPeer(BackgroundPeer):
    """A plug with a constant load, on an MQTT broker."""

    def __init__(self, broker_host: str, broker_port: int, topic: str, *, style: str = "shelly_gen2",
                 load_w: int = 2_000, publish_seconds: float = 1.0, energy_offset_wh: float = 5_000.0,
                 tls_context=None, username: str | None = None, password: str | None = None):
        if style not in ("shelly_gen2", "tasmota", "generic"):
            raise ValueError(f"unknown style {style!r}")
        self.broker_host, self.broker_port, self.topic, self.style = broker_host, broker_port, topic, style
        self.tls_context, self.username, self.password = tls_context, username, password  # a secured broker
        self.load_w, self.publish_seconds = load_w, publish_seconds
        self.on = True
        self.limit_w: int | None = None
        self.energy_j = energy_offset_wh * 3600
        self._t = time.time()
        self.commands: list[str] = []
        self.connected = False
        self._task: asyncio.Task | None = None
        self._client = None

    # -- physics ---------------------------------------------------------------------------------

    def power_w(self) -> int:
        """What the load draws now."""
        if not self.on:
            return 0
        return self.load_w if self.limit_w is None else min(self.load_w, self.limit_w)

    def _advance(self) -> None:
        now = time.time()
        self.energy_j += self.power_w() * max(0.0, now - self._t)
        self._t = now

    def snapshot(self) -> dict:
        """The plug's state now."""
        self._advance()
        return {"on": self.on, "power_w": self.power_w(), "energy_wh": self.energy_j / 3600, "limit_w": self.limit_w,
                "connected": self.connected, "commands": list(self.commands)}

    # -- topics ----------------------------------------------------------------------------------

    def _command_topics(self) -> dict[str, str]:
        t = self.topic
        if self.style == "shelly_gen2":
            return {f"{t}/command/switch:0": "switch"}
        if self.style == "tasmota":
            return {f"cmnd/{t}/POWER": "switch"}
        return {f"{t}/set": "switch", f"{t}/limit/set": "limit"}

    def _status(self) -> list[tuple[str, str]]:
        self._advance()
        t, power, wh = self.topic, self.power_w(), self.energy_j / 3600
        if self.style == "shelly_gen2":
            body = {"id": 0, "source": "negawatt-peer", "output": self.on, "apower": float(power),
                    "voltage": 230.0, "aenergy": {"total": round(wh, 3)}}
            return [(f"{t}/status/switch:0", json.dumps(body))]
        if self.style == "tasmota":
            body = {"Time": time.strftime("%Y-%m-%dT%H:%M:%S"), "ENERGY": {"Total": round(wh / 1000, 5),
                                                                             "Power": power, "Voltage": 230}}
            return [(f"tele/{t}/SENSOR", json.dumps(body)), (f"stat/{t}/POWER", "ON" if self.on else "OFF")]
        return [(f"{t}/power", str(power)), (f"{t}/energy", f"{wh:.3f}"), (f"{t}/state", "ON" if self.on else "OFF")]

    def _command(self, kind: str, payload: str) -> None:
        self._advance()
        self.commands.append(f"{kind}:{payload}")
        if kind == "switch":
            word = payload.strip().lower()
            if word in ("on", "1", "true"):
                self.on = True
            elif word in ("off", "0", "false"):
                self.on = False
            elif word == "toggle":
                self.on = not self.on
        else:
            try:
                limit = int(float(payload))
            except ValueError:
                return
            self.limit_w = None if limit >= self.load_w else max(0, limit)
        log.info("plug peer %s: %s %s -> on=%s limit=%s", self.topic, kind, payload, self.on, self.limit_w)

    # -- the connection --------------------------------------------------------------------------

    async def _run(self) -> None:
        import aiomqtt

        backoff = Backoff(0.2, 5.0)
        commands = self._command_topics()
        while True:
            try:
                async with aiomqtt.Client(self.broker_host, self.broker_port, identifier=f"negawatt-peer-{self.topic}",
                                          username=self.username, password=self.password,
                                          tls_context=self.tls_context) as client:
                    self._client = client
                    self.connected = True
                    backoff.reset()
                    for topic in commands:
                        await client.subscribe(topic, qos=1)
                    publisher = asyncio.ensure_future(self._publish_loop(client))
                    try:
                        async for message in client.messages:
                            self._command(commands.get(str(message.topic), "switch"), bytes(message.payload).decode())
                            await self._publish(client)
                    finally:
                        publisher.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker went away: retry
                log.info("plug peer %s: broker connection lost (%s)", self.topic, error)
            finally:
                self.connected = False
                self._client = None
            await asyncio.sleep(backoff.next_delay())

    async def _publish(self, client) -> None:
        for topic, payload in self._status():
            await client.publish(topic, payload, qos=1)

    async def _publish_loop(self, client) -> None:
        while True:
            await self._publish(client)
            await asyncio.sleep(self.publish_seconds)
