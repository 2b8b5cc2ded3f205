"""The node as the home's local OCPP Central System (the `ocpp` library over websockets), 1.6J and 2.0.1.

An EV charger is configured (in the charger's own settings) to connect to
`ws://<gateway>:<port>/<charge_point_id>` with the subprotocol `ocpp1.6` or `ocpp2.0.1`. One
websocket server per (host, port) serves every configured charger; a connection whose path names
no configured charger, or that offers neither subprotocol, is refused.

Meter values come in through MeterValues (and, in 2.0.1, TransactionEvent); the driver asks for a
fresh one with TriggerMessage(MeterValues) whenever its last reading is older than `poll_seconds`.
Curtailment is a SetChargingProfile of purpose ChargePointMaxProfile (1.6, connector 0) or
ChargingStationMaxProfile (2.0.1, EVSE 0), one period with the limit in W (or in A: W / (V x
phases)); it is honoured once the charger accepted it and its power came down to the limit.
Restore clears that profile (ClearChargingProfile by its id). The charger is available while it is
connected and its last meter value is at most `stale_seconds` old.

Security (OCPP security profile 2): with `tls_cert_file`/`tls_key_file` the server speaks only
wss:// (TLS 1.2+), and every charge point authenticates with HTTP Basic auth on the upgrade request
(node.drivers.ocpp_auth). Everything is decided before the websocket upgrade: a path naming no
configured charge point gets 404 (as OCPP-J asks), missing or wrong credentials get 401 with a
`WWW-Authenticate: Basic` challenge, and the chargers sharing one port must agree on its TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http
import logging
import time
from pathlib import Path
from typing import Any

from node.devices.interface import SetpointResult
from node.drivers.live import DriverError, LiveDevice
from node.drivers.ocpp_auth import PasswordCheck, check_length, parse_basic
from node.drivers.ocpp_meter import parse_meter_values
from node.drivers.secrets import read_secret
from node.drivers.ocpp_time import utc_now
from node.drivers.settings import OcppSettings

log = logging.getLogger("negawatt.node.drivers.ocpp")
SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1")
REALM = 'Basic realm="negawatt OCPP", charset="UTF-8"'


def charge_point_id_of(path: str) -> str:
    """The charge point id in a request path: its last segment (the query string left out)."""
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class CentralServer:
    """One websocket listener shared by the chargers configured on the same host and port."""

    _servers: dict[tuple[str, int], CentralServer] = {}

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.chargers: dict[str, OcppCharger] = {}
        self.tls: tuple[Path, Path] | None = None
        self._server = None
        self._lock = asyncio.Lock()
        self._hashing = asyncio.Semaphore(1)  # at most one PBKDF2 check at a time (one core)

    def register(self, charger: OcppCharger) -> None:
        """Serve `charger` here; DriverError if its TLS differs from the chargers already on this port."""
        tls = charger.settings.server_tls()
        others = [c for c in self.chargers.values() if c is not charger]
        if (others or self._server is not None) and tls != self.tls:
            raise DriverError(f"the chargers on {self.host}:{self.port} must share one TLS certificate and key "
                              f"(or all use plain ws://)")
        self.tls = tls
        self.chargers[charger.settings.charge_point_id] = charger

    @classmethod
    def for_address(cls, host: str, port: int) -> CentralServer:
        """The server of host:port (created on first use, on the drivers' loop)."""
        key = (host, port)
        if key not in cls._servers:
            cls._servers[key] = cls(host, port)
        return cls._servers[key]

    async def ensure_listening(self) -> None:
        """Start listening unless already listening (raises OSError if the port is taken)."""
        async with self._lock:
            if self._server is None:
                from websockets.asyncio.server import serve

                from node.drivers.tls import server_context

                context = server_context(*self.tls) if self.tls else None
                self._server = await serve(self._handle, self.host, self.port, subprotocols=list(SUBPROTOCOLS),
                                           ping_interval=20, ping_timeout=20, ssl=context,
                                           process_request=self._check_request)
                log.info("OCPP central system listening on %s://%s:%d/<charge point id>",
                         "wss" if context else "ws", self.host, self.port)

    async def close(self) -> None:
        """Stop listening and drop every charger's connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        CentralServer._servers.pop((self.host, self.port), None)

    async def _check_request(self, connection, request):
        """Before the upgrade: 404 for an unknown charge point, 401 for missing or wrong credentials."""
        charge_point_id = charge_point_id_of(request.path)
        charger = self.chargers.get(charge_point_id)
        if charger is None:
            log.warning("OCPP: refused unknown charge point %r from %s", charge_point_id, _peer(connection))
            return connection.respond(http.HTTPStatus.NOT_FOUND, "unknown charge point\n")
        check = charger.password_check
        if check is None:
            return None
        headers = request.headers.get_all("Authorization")
        credentials = parse_basic(headers[0]) if len(headers) == 1 else None
        if credentials is None:
            return self._unauthorized(connection, charge_point_id, "no Basic credentials")
        username, password = credentials
        async with self._hashing:
            password_ok = await check.verify(password)
        username_ok = hmac.compare_digest(username.encode(), charge_point_id.encode())
        if not (password_ok and username_ok):
            return self._unauthorized(connection, charge_point_id,
                                      "wrong password" if username_ok else "username is not the charge point id")
        return None

    @staticmethod
    def _unauthorized(connection, charge_point_id: str, why: str):
        log.warning("OCPP: refused charge point %r from %s: %s", charge_point_id, _peer(connection), why)
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "charge point authentication failed\n")
        response.headers["WWW-Authenticate"] = REALM
        return response

    async def _handle(self, connection) -> None:
        charge_point_id = charge_point_id_of(connection.request.path)
        charger = self.chargers.get(charge_point_id)
        version = connection.subprotocol
        if charger is None:
            log.warning("OCPP: refused unknown charge point %r", charge_point_id)
            await connection.close(1008, "unknown charge point")
            return
        if version not in SUBPROTOCOLS:
            await connection.close(1002, "no OCPP subprotocol (ocpp1.6 or ocpp2.0.1) agreed")
            return
        wanted = charger.settings.version
        if wanted and version != f"ocpp{wanted}":
            await connection.close(1002, f"this charge point is configured for OCPP {wanted}")
            return
        await charger.attach(connection, version)


class OcppCharger(LiveDevice):
    """An EV charger managed through the node's local Central System."""

    driver_name = "ocpp"

    def __init__(self, device_id: str, kind: str, capacity_w: int, settings: OcppSettings):
        super().__init__(device_id, kind, capacity_w, settings)
        self.settings: OcppSettings = settings
        self.version: str | None = None
        self._session = None  # the ocpp ChargePoint object of the current connection
        self._session_done: asyncio.Future | None = None
        self._attached: asyncio.Event | None = None
        self._power = None
        self._energy = None
        self._last_trigger = 0.0
        self.status: str | None = None
        self.profile_active = False
        self.password_check = password_check(settings)

    # -- connection ------------------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._attached is None:
            self._attached = asyncio.Event()
        server = CentralServer.for_address(self.settings.host, self.settings.port)
        server.register(self)
        await server.ensure_listening()
        if self._session is None:
            self._error = f"waiting for charge point {self.settings.charge_point_id!r} to connect"
            self._attached.clear()
            await self._attached.wait()
        await self._trigger_meter_values()

    async def attach(self, connection, version: str) -> None:
        """A charge point connected: serve its OCPP session until it disconnects."""
        if self._session_done is not None and not self._session_done.done():
            self._session_done.set_result("replaced by a new connection")
            with contextlib.suppress(Exception):
                await self._session._connection.close()
        session = make_session(self, connection, version)
        self._session, self.version = session, version
        done = asyncio.get_running_loop().create_future()
        self._session_done = done
        if self._attached is None:
            self._attached = asyncio.Event()
        self._attached.set()
        log.info("OCPP: charge point %s connected (%s)", self.settings.charge_point_id, version)
        try:
            await session.start()
        except Exception as error:  # connection closed
            log.info("OCPP: charge point %s disconnected (%s)", self.settings.charge_point_id, type(error).__name__)
        finally:
            if self._session is session:
                self._session = None
            if not done.done():
                done.set_result("disconnected")

    async def _serve(self) -> None:
        while True:
            done = self._session_done
            if done is None or done.done() or self._session is None:
                raise ConnectionError(f"charge point {self.settings.charge_point_id} disconnected")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), self.settings.poll_seconds)
            if self._session is not None and not done.done():
                reading = self._reading
                if reading is None or time.monotonic() - reading.at > self.settings.poll_seconds:
                    await self._trigger_meter_values()

    async def _disconnect(self) -> None:
        return None  # the charger owns the connection; it reconnects to us

    async def _close(self) -> None:
        server = CentralServer.for_address(self.settings.host, self.settings.port)
        server.chargers.pop(self.settings.charge_point_id, None)
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session._connection.close()
        if not server.chargers:
            await server.close()

    # -- messages from the charger ---------------------------------------------------------------

    def on_meter_values(self, meter_values: list[dict[str, Any]]) -> None:
        """MeterValues or TransactionEvent carried meter values."""
        power, energy = parse_meter_values(meter_values)
        if power is not None:
            self._power = power
        if energy is not None:
            self._energy = energy
        if (power is not None or energy is not None) and self._power is not None and self._energy is not None:
            self._store(round(self._power), int(self._energy.to_integral_value(rounding="ROUND_FLOOR")),
                        ocpp_version=self.version, connector_status=self.status, profile_active=self.profile_active)

    # -- commands --------------------------------------------------------------------------------

    async def _call(self, payload):
        session = self._session
        if session is None:
            raise ConnectionError("charge point not connected")
        try:
            result = await asyncio.wait_for(session.call(payload, suppress=False), self.settings.timeout_seconds)
        except TimeoutError:
            raise TimeoutError(f"no answer to {type(payload).__name__}") from None
        except Exception as error:
            if "ConnectionClosed" in type(error).__name__:
                raise ConnectionError(str(error)) from None
            raise DriverError(f"{type(payload).__name__}: {error}") from None
        return result

    async def _trigger_meter_values(self) -> None:
        self._last_trigger = time.monotonic()
        if self.version == "ocpp1.6":
            from ocpp.v16 import call
            await self._call(call.TriggerMessage(requested_message="MeterValues", connector_id=1))
        else:
            from ocpp.v201 import call
            await self._call(call.TriggerMessage(requested_message="MeterValues", evse={"id": 1}))

    async def _refresh(self) -> None:
        if time.monotonic() - self._last_trigger >= 1.0:
            await self._trigger_meter_values()
        await asyncio.sleep(0.1)

    def _limit(self, max_power_w: int) -> float:
        if self.settings.rate_unit == "W":
            return float(max_power_w)
        amps = max_power_w / (self.settings.voltage_v * self.settings.phases)
        return float(int(amps * 10) / 10)  # round down to 0.1 A: never above the watts asked for

    async def _apply(self, max_power_w: int) -> SetpointResult:
        s = self.settings
        schedule_period = [{"start_period": 0, "limit": self._limit(max_power_w)}]
        if self.version == "ocpp1.6":
            from ocpp.v16 import call
            request = call.SetChargingProfile(connector_id=0, cs_charging_profiles={
                "charging_profile_id": s.profile_id, "stack_level": s.stack_level,
                "charging_profile_purpose": "ChargePointMaxProfile", "charging_profile_kind": "Absolute",
                "charging_schedule": {"start_schedule": utc_now(), "charging_rate_unit": s.rate_unit,
                                      "charging_schedule_period": schedule_period}})
        else:
            from ocpp.v201 import call
            request = call.SetChargingProfile(evse_id=0, charging_profile={
                "id": s.profile_id, "stack_level": s.stack_level,
                "charging_profile_purpose": "ChargingStationMaxProfile", "charging_profile_kind": "Absolute",
                "charging_schedule": [{"id": 1, "start_schedule": utc_now(), "charging_rate_unit": s.rate_unit,
                                       "charging_schedule_period": schedule_period}]})
        result = await self._call(request)
        if str(result.status) != "Accepted":
            power = self._reading.power_w if self._reading else 0
            return SetpointResult(self.device_id, max_power_w, power, False,
                                  f"the charger answered {result.status} to the charging profile")
        self.profile_active = True
        power = await self._wait_for_power(max_power_w)
        honoured = 0 <= power <= max_power_w
        return SetpointResult(self.device_id, max_power_w, max(power, 0), honoured,
                              "" if honoured else f"still charging at {power} W after {s.confirm_seconds:g} s")

    async def _restore(self) -> None:
        if self.version == "ocpp1.6":
            from ocpp.v16 import call
            result = await self._call(call.ClearChargingProfile(id=self.settings.profile_id))
        else:
            from ocpp.v201 import call
            result = await self._call(call.ClearChargingProfile(charging_profile_id=self.settings.profile_id))
        if str(result.status) not in ("Accepted", "Unknown"):  # Unknown: no such profile (already gone)
            raise DriverError(f"the charger answered {result.status} to clearing the profile")
        self.profile_active = False
        await self._trigger_meter_values()


def password_check(settings: OcppSettings) -> PasswordCheck | None:
    """The charge point's Basic auth password check (None: no authentication, security profile 0);
    ValueError naming the variable or file if the password is unset or not 16..40 bytes."""
    if settings.password_hash:
        return PasswordCheck(hashed=settings.password_hash)
    where = settings.password_env and f"the environment variable {settings.password_env}"
    secret = read_secret(settings.password_env, settings.password_file, f"charge point {settings.charge_point_id}")
    if secret is None:
        return None
    return PasswordCheck(secret=check_length(secret, where or str(settings.password_file)))


def _peer(connection) -> str:
    address = getattr(connection, "remote_address", None)
    return f"{address[0]}:{address[1]}" if address else "?"


def make_session(charger: OcppCharger, connection, version: str):
    """The `ocpp` ChargePoint object (Central System side) for one connection."""
    if version == "ocpp1.6":
        from node.drivers.ocpp_sessions import CentralSession16

        return CentralSession16(charger, connection)
    from node.drivers.ocpp_sessions import CentralSession201

    return CentralSession201(charger, connection)
