"""A simulated Shelly energy meter (Pro 3EM triphase `em`, or Pro EM-class `em1`) on a real MQTT broker.

It speaks the Gen2 RPC-over-MQTT shapes: every `publish_seconds` a NotifyStatus frame on
`<topic>/events/rpc`,

    {"src": <device id>, "dst": "<topic>/events", "method": "NotifyStatus",
     "params": {"ts": <unix time>, "em:0": {"id": 0, "a_act_power": .., "b_act_power": ..,
                "c_act_power": .., "total_act_power": <W>, ...},
                "emdata:0": {"id": 0, "total_act": <Wh>, "total_act_ret": 0, ...}}}

(`em1`: "em1:0": {"act_power": W, ...}, "em1data:0": {"total_act_energy": Wh, ...}), and it answers
`Shelly.GetStatus`, `EM.GetStatus` and `EMData.GetStatus` requests on `<topic>/rpc` with a
response frame on `<src>/rpc`. The load is a household's: base_w + swing_w x (1 + sin(2 pi t /
period_seconds)) / 2 W, and the energy counter is its integral over wall-clock time (each
published power held until the next). `freeze()` stops the clock (the next frames repeat the same
values), `reset_counters()` zeroes the energy counter (EMData.ResetCounters). It reconnects to the
broker with back-off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import zlib
from collections import deque

from node.drivers.backoff import Backoff
from node.drivers.peers.background import BackgroundPeer

log = logging.getLogger("negawatt.peers.shelly")


class ShellyEmPeer(BackgroundPeer):
    """A Shelly energy meter on an MQTT broker (see the module docstring)."""

    def __init__(self, broker_host: str, broker_port: int, topic: str, *, profile: str = "em", base_w: float = 350.0,
                 swing_w: float = 2_400.0, period_seconds: float = 60.0, publish_seconds: float = 1.0,
                 energy_offset_wh: float = 812_345.67, tls_context=None, username: str | None = None,
                 password: str | None = None):
        if profile not in ("em", "em1"):
            raise ValueError(f"unknown profile {profile!r}")
        self.broker_host, self.broker_port, self.topic, self.profile = broker_host, broker_port, topic, profile
        self.tls_context, self.username, self.password = tls_context, username, password
        self.base_w, self.swing_w, self.period_seconds = base_w, swing_w, period_seconds
        self.publish_seconds = publish_seconds
        self.device_id = f"shellypro3em-{zlib.crc32(topic.encode()):012x}"
        self.energy_wh = energy_offset_wh
        self._t = time.time()
        self._power = self._power_at(self._t)
        self.frozen = False
        self.requests: deque[str] = deque(maxlen=100)  # the last RPC methods asked for
        self.connected = False
        self._task: asyncio.Task | None = None

    # -- physics ---------------------------------------------------------------------------------

    def _power_at(self, t: float) -> float:
        # Shelly reports power with 3 decimals: that is the power the counter integrates.
        return round(self.base_w + self.swing_w * (1 + math.sin(2 * math.pi * t / self.period_seconds)) / 2, 3)

    def _advance(self) -> None:
        now = time.time()
        if not self.frozen:
            self.energy_wh += self._power * max(0.0, now - self._t) / 3600
            self._power = self._power_at(now)
        self._t = now

    def freeze(self) -> None:
        """Stop the clock: the next frames carry the same power and energy until `unfreeze()`."""
        self._advance()
        self.frozen = True

    def unfreeze(self) -> None:
        """Let time run again (the frozen time is not counted)."""
        self._t = time.time()
        self.frozen = False

    def reset_counters(self) -> None:
        """EMData.ResetCounters: the energy counter starts again from 0."""
        self._advance()
        self.energy_wh = 0.0

    def reported(self) -> dict:
        """The power (W) and energy (Wh) the next frame carries, exactly as published."""
        return {"power_w": self._power, "energy_wh": round(self.energy_wh, 2)}

    def snapshot(self) -> dict:
        """The meter's state now."""
        self._advance()
        return {**self.reported(), "frozen": self.frozen, "connected": self.connected, "requests": list(self.requests)}

    # -- frames ----------------------------------------------------------------------------------

    def _status(self) -> dict:
        self._advance()
        power, energy = self.reported()["power_w"], self.reported()["energy_wh"]
        if self.profile == "em1":
            return {"em1:0": {"id": 0, "current": round(power / 230, 3), "voltage": 230.0, "act_power": power,
                              "aprt_power": round(power * 1.02, 1), "pf": 0.98, "freq": 50.0, "calibration": "factory"},
                    "em1data:0": {"id": 0, "total_act_energy": energy, "total_act_ret_energy": 0.0}}
        third = round(power / 3, 3)
        phases = {"a": third, "b": third, "c": round(power - 2 * third, 3)}
        em = {"id": 0, "total_act_power": power, "total_aprt_power": round(power * 1.02, 3),
              "total_current": round(power / 230, 3), "n_current": None}
        data = {"id": 0, "total_act": energy, "total_act_ret": 0.0}
        for phase, watts in phases.items():
            em.update({f"{phase}_current": round(watts / 230, 3), f"{phase}_voltage": 230.0,
                       f"{phase}_act_power": watts, f"{phase}_aprt_power": round(watts * 1.02, 3),
                       f"{phase}_pf": 0.98, f"{phase}_freq": 50.0})
            data.update({f"{phase}_total_act_energy": round(energy / 3, 2), f"{phase}_total_act_ret_energy": 0.0})
        return {"em:0": em, "emdata:0": data}

    def _notification(self) -> str:
        return json.dumps({"src": self.device_id, "dst": f"{self.topic}/events", "method": "NotifyStatus",
                           "params": {"ts": round(time.time(), 2), **self._status()}})

    def _answer(self, payload: bytes) -> tuple[str, str] | None:
        try:
            request = json.loads(payload)
            src, method = request["src"], request["method"]
        except (ValueError, KeyError, TypeError):
            return None
        self.requests.append(method)
        status = self._status()
        power_key, energy_key = ("em:0", "emdata:0") if self.profile == "em" else ("em1:0", "em1data:0")
        results = {"Shelly.GetStatus": status, "EM.GetStatus": status[power_key], "EMData.GetStatus": status[energy_key]}
        frame: dict = {"id": request.get("id"), "src": self.device_id, "dst": src}
        if method in results:
            frame["result"] = results[method]
        else:
            frame["error"] = {"code": 404, "message": f"No handler for {method}"}
        return f"{src}/rpc", json.dumps(frame)

    # -- the connection --------------------------------------------------------------------------

    async def _run(self) -> None:
        import aiomqtt

        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                async with aiomqtt.Client(self.broker_host, self.broker_port, identifier=f"negawatt-peer-{self.topic}",
                                          username=self.username, password=self.password,
                                          tls_context=self.tls_context) as client:
                    self.connected = True
                    backoff.reset()
                    await client.subscribe(f"{self.topic}/rpc", qos=1)
                    publisher = asyncio.ensure_future(self._publish_loop(client))
                    try:
                        async for message in client.messages:
                            answer = self._answer(bytes(message.payload))
                            if answer is not None:
                                await client.publish(*answer, qos=1)
                    finally:
                        publisher.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker went away: retry
                log.info("shelly peer %s: broker connection lost (%s)", self.topic, error)
            finally:
                self.connected = False
            await asyncio.sleep(backoff.next_delay())

    async def _publish_loop(self, client) -> None:
        while True:
            await client.publish(f"{self.topic}/events/rpc", self._notification(), qos=1)
            await asyncio.sleep(self.publish_seconds)
