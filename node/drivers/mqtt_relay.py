"""A smart relay or plug over MQTT (aiomqtt): Shelly Gen2, Tasmota or explicit Home Assistant-style topics.

The driver subscribes to the device's power, energy and relay-state topics (node.drivers.settings
MqttSettings.resolved gives them per style) and keeps the last values; the device is available
while connected to the broker and its last power/energy report is at most `stale_seconds` old
(Shelly and Tasmota publish on change and periodically: set Tasmota's TelePeriod below
stale_seconds). Curtailment switches the relay off (or, with a `limit_topic`, publishes the limit
in W) and is honoured once the device reports the relay off and its power at or below the limit;
restore switches it back on only if it was on before.

Energy is the device's own counter (Shelly `aenergy.total` in Wh, Tasmota `ENERGY.Total` in kWh),
parsed as decimals and floored to whole Wh.

Security: with `tls` (or a `tls_ca_file`) the connection is TLS 1.2+ and the broker's certificate
and host name are verified (optionally presenting a client certificate); a username and a password
(from `password_env` or `password_file`) log in. A refused login or an untrusted certificate makes
the device unavailable with the broker's or TLS's reason, retried with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from node.devices.interface import SetpointResult
from node.drivers.live import DriverError, LiveDevice
from node.drivers.settings import MqttSettings

log = logging.getLogger("negawatt.node.drivers.mqtt")


def extract(payload: bytes, path: str | None) -> Any:
    """The value at a dotted JSON `path` in `payload` (decimals kept exact); the whole payload if no path."""
    text = payload.decode("utf-8", errors="replace").strip()
    if path is None:
        return text
    try:
        value: Any = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError:
        return None
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def as_decimal(value: Any) -> Decimal | None:
    """A number from a JSON value or a plain-text payload (None if it is not one)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None



async def connect_broker(stack: contextlib.AsyncExitStack, settings: Any, tls: Any, identifier: str) -> Any:
    """An aiomqtt client logged in to the broker of `settings` (node.drivers.settings.MqttBrokerSettings),
    entered on `stack`; a password that cannot be read or a refused login is a DriverError that says so.
    The MQTT relay and the Shelly meter connect the same way."""
    import aiomqtt

    try:
        password = settings.password()
    except ValueError as error:
        raise DriverError(str(error)) from None
    client = aiomqtt.Client(settings.host, settings.port, username=settings.username, password=password,
                            tls_context=tls, identifier=identifier, timeout=settings.timeout_seconds)
    try:
        return await stack.enter_async_context(client)
    except aiomqtt.MqttCodeError as error:
        if getattr(error, "rc", None) in (4, 5, 134, 135):  # bad user name or password / not authorized
            raise DriverError(f"the broker at {settings.host}:{settings.port} refused the login of "
                              f"{settings.username!r}: {error}") from None
        raise


class MqttRelay(LiveDevice):
    """A relay or plug behind an MQTT broker."""

    driver_name = "mqtt"

    def __init__(self, device_id: str, kind: str, capacity_w: int, settings: MqttSettings):
        super().__init__(device_id, kind, capacity_w, settings)
        self.settings: MqttSettings = settings
        self.topics = settings.resolved()
        self._client = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._power: Decimal | None = None
        self._energy: Decimal | None = None
        self._relay_on: bool | None = None
        self._was_on: bool | None = None
        self._state_seen = 0  # count of relay-state reports, to wait for a fresh one
        self._serving: asyncio.Future | None = None
        self._connected_at = 0.0
        settings.password()  # a missing password variable or file is an error now, at start-up
        self._tls = settings.ssl_context()

    async def _connect(self) -> None:
        s = self.settings
        self._connected_at = time.monotonic()
        self._stack = contextlib.AsyncExitStack()
        self._client = await connect_broker(self._stack, s, self._tls,
                                            f"negawatt-{self.device_id[-12:]}-{os.getpid()}")
        for topic in {self.topics["power_topic"], self.topics["energy_topic"], self.topics["state_topic"]} - {None}:
            await self._client.subscribe(topic, qos=1)
        # Available once the device reports: wait (bounded) for its first power and energy.
        deadline = asyncio.get_running_loop().time() + s.stale_seconds
        self._serving = asyncio.ensure_future(self._listen())
        while self._reading is None or not self._fresh_since_connect():
            if self._serving.done():
                self._serving.result()
            if asyncio.get_running_loop().time() > deadline:
                break  # connected to the broker, but the device is silent: unavailable until it reports
            await asyncio.sleep(0.05)

    def _fresh_since_connect(self) -> bool:
        return self._reading is not None and self._reading.at >= self._connected_at

    async def _listen(self) -> None:
        async for message in self._client.messages:
            self._handle(str(message.topic), bytes(message.payload))

    async def _serve(self) -> None:
        await self._serving

    async def _disconnect(self) -> None:
        if self._serving is not None:
            self._serving.cancel()
            self._serving = None
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            with contextlib.suppress(Exception):
                await stack.aclose()

    def _handle(self, topic: str, payload: bytes) -> None:
        t = self.topics
        changed = False
        if topic == t["power_topic"]:
            value = as_decimal(extract(payload, t["power_path"]))
            if value is not None:
                self._power, changed = value, True
        if topic == t["energy_topic"]:
            value = as_decimal(extract(payload, t["energy_path"]))
            if value is not None:
                self._energy = value * (1000 if t["energy_unit"] == "kWh" else 1)
                changed = True
        if topic == t["state_topic"]:
            value = extract(payload, t["state_path"])
            if value is not None:
                self._relay_on = str(value).lower() == str(t["state_on"]).lower()
                self._state_seen += 1
        if changed and self._power is not None and self._energy is not None:
            self._store(round(self._power), int(self._energy.to_integral_value(rounding="ROUND_FLOOR")),
                        relay_on=self._relay_on)

    def state(self) -> dict:
        """The common state, with the relay's last reported position (its own topic may lag the power)."""
        return {**super().state(), "relay_on": self._relay_on}

    async def _publish(self, topic: str, payload: str) -> None:
        if self._client is None:
            raise ConnectionError("not connected to the broker")
        import aiomqtt

        try:
            await self._client.publish(topic, payload, qos=1)
        except aiomqtt.MqttError as error:
            raise ConnectionError(str(error)) from None

    async def _apply(self, max_power_w: int) -> SetpointResult:
        t = self.topics
        if t["limit_topic"]:
            await self._publish(t["limit_topic"], str(max_power_w))
            power = await self._wait_for_power(max_power_w)
            honoured = 0 <= power <= max_power_w
            return SetpointResult(self.device_id, max_power_w, power, honoured,
                                  "" if honoured else f"still drawing {power} W after {self.settings.confirm_seconds:g} s")
        if self._setpoint is None:
            self._was_on = self._relay_on if self._relay_on is not None else True
        seen = self._state_seen
        await self._publish(t["command_topic"], t["payload_off"])
        power = await self._wait_for_power(max_power_w)
        if t["state_topic"]:
            deadline = asyncio.get_running_loop().time() + self.settings.confirm_seconds
            while (self._state_seen == seen or self._relay_on) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            if self._relay_on or self._state_seen == seen:
                return SetpointResult(self.device_id, max_power_w, max(power, 0), False,
                                      "the relay did not report off")
        honoured = 0 <= power <= max_power_w
        return SetpointResult(self.device_id, max_power_w, max(power, 0), honoured,
                              "" if honoured else f"still drawing {power} W after switching off")

    async def _restore(self) -> None:
        t = self.topics
        if t["limit_topic"]:
            await self._publish(t["limit_topic"], str(self.capacity_w))
            return
        if self._was_on is False:
            return  # it was off before the curtailment: leave it off
        await self._publish(t["command_topic"], t["payload_on"])
        self._was_on = None
