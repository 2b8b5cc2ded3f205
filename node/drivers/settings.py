"""Validated settings of the real device drivers, as `[devices.modbus]`, `[devices.ocpp]`,
`[devices.mqtt]` tables of node.toml, and the site meters' `[devices.sunspec]`, `[devices.shelly]`
and `[devices.p1]`. Pure pydantic: reading a configuration never imports a
driver library (a node with only simulated devices stays small).

Security settings are checked when the configuration is read, so a mistake is a start-up error
naming the field and the file: every configured certificate, key and password file must exist and
load; passwords come from an environment variable, a file or (OCPP) a hash, never in clear here.
A password never crosses the network in clear: OCPP Basic authentication needs TLS (security
profile 2) unless `allow_plaintext_credentials` on a loopback host (the local devnet); an MQTT
password needs TLS unless the broker is on this machine or `allow_plaintext_credentials` says that
a LAN broker without TLS is accepted (the Shelly meter shares these broker settings). Modbus TCP
and a P1 adapter have no security of their own: they stay on the home LAN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from node.drivers.register_map import RegisterMap, default_register_map
from node.drivers.secrets import read_secret
from node.drivers.tls import client_context, is_loopback, readable_file, server_context


def _port(value: int) -> int:
    if not 1 <= value <= 65_535:
        raise ValueError("must be 1..65535")
    return value


def _host(value: str) -> str:
    if not value.strip() or any(c.isspace() for c in value):
        raise ValueError("must be a host name or IP address")
    return value


Port = Annotated[int, AfterValidator(_port)]
Host = Annotated[str, AfterValidator(_host)]
FilePath = Annotated[Path, AfterValidator(readable_file)]
# The path-valued security settings, taken relative to node.toml's folder (node.config).
FILE_FIELDS = ("tls_cert_file", "tls_key_file", "tls_ca_file", "password_file")


class DriverSettings(BaseModel):
    """What every real driver shares: polling, staleness, timeouts, reconnect back-off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_seconds: float = Field(2.0, gt=0, le=3_600, description="how often the device is read")
    stale_seconds: float = Field(15.0, gt=0, le=86_400,
                                 description="a reading older than this makes the device unavailable")
    timeout_seconds: float = Field(3.0, gt=0, le=60, description="one request or command")
    confirm_seconds: float = Field(5.0, ge=0, le=120,
                                   description="how long a setpoint waits for the device to confirm it")
    backoff_initial_seconds: float = Field(0.5, gt=0, le=600)
    backoff_max_seconds: float = Field(30.0, gt=0, le=3_600)
    max_read_delay_seconds: float = Field(30.0, gt=0, le=3_600,
                                          description="metering skips an interval whose end it read later")

    @model_validator(mode="after")
    def _consistent(self):
        if self.stale_seconds < self.poll_seconds:
            raise ValueError("stale_seconds must be >= poll_seconds")
        if self.backoff_initial_seconds > self.backoff_max_seconds:
            raise ValueError("backoff_initial_seconds must be <= backoff_max_seconds")
        return self


class ModbusSettings(DriverSettings):
    """A battery inverter over Modbus TCP. Modbus TCP has neither encryption nor authentication:
    the inverter stays on the home LAN, reachable by the gateway only (never port-forwarded)."""

    host: Host
    port: Port = 502
    device_id: int = Field(1, ge=0, le=247, description="Modbus unit id")
    register_map: RegisterMap = Field(default_factory=default_register_map)
    restore_charge_limit_w: int | None = Field(
        None, ge=0, description="charge limit written by restore when the pre-curtailment value is unknown")


class OcppSettings(DriverSettings):
    """A charger that connects to the node, the local OCPP Central System (1.6J or 2.0.1)."""

    host: Host = "0.0.0.0"
    port: Port = 9000
    charge_point_id: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9._:\-]+$")
    version: Literal["1.6", "2.0.1"] | None = Field(None, description="None: whichever the charger speaks")
    rate_unit: Literal["W", "A"] = "W"
    voltage_v: int = Field(230, ge=100, le=480, description="for A limits: W = A x V x phases")
    phases: Literal[1, 3] = 3
    profile_id: int = Field(4711, ge=1, le=2**31 - 1)
    stack_level: int = Field(8, ge=0, le=100)
    stale_seconds: float = Field(60.0, gt=0, le=86_400)
    tls_cert_file: FilePath | None = Field(None, description="PEM server certificate (chain): wss:// on this port")
    tls_key_file: FilePath | None = Field(None, description="the unencrypted PEM key of tls_cert_file")
    password_env: str | None = Field(None, description="environment variable holding this charge point's password")
    password_file: FilePath | None = Field(None, description="file holding this charge point's password")
    password_hash: str | None = Field(None, description="pbkdf2_sha256$... (python -m node.drivers.ocpp_auth)")
    allow_plaintext_credentials: bool = Field(
        False, description="Basic auth over plain ws:// (security profile 1): only on a loopback host (devnet)")

    @model_validator(mode="after")
    def _security(self):
        from node.drivers.ocpp_auth import check_length, parse_hash

        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_cert_file is not None:
            server_context(self.tls_cert_file, self.tls_key_file)
        sources = [n for n in ("password_env", "password_file", "password_hash") if getattr(self, n)]
        if len(sources) > 1:
            raise ValueError(f"give one of password_env, password_file and password_hash, not {' and '.join(sources)}")
        if self.password_file is not None:
            check_length(read_secret(None, self.password_file, "password_file"), str(self.password_file))
        if self.password_hash is not None:
            try:
                parse_hash(self.password_hash)
            except ValueError as error:
                raise ValueError(f"password_hash {error}") from None
        if self.tls_cert_file is not None and not sources:
            raise ValueError("TLS is OCPP security profile 2, TLS with Basic authentication: give this charge "
                             "point's password_env, password_file or password_hash")
        if self.allow_plaintext_credentials and not is_loopback(self.host):
            raise ValueError(f"allow_plaintext_credentials is only for a loopback host (the local devnet), not "
                             f"{self.host}: set tls_cert_file and tls_key_file instead")
        if sources and self.tls_cert_file is None and not self.allow_plaintext_credentials:
            raise ValueError("Basic authentication over plain ws:// sends the password in clear: set tls_cert_file "
                             "and tls_key_file (security profile 2)")
        return self

    @property
    def security_profile(self) -> int:
        """OCPP security profile of this charge point: 0 none, 1 Basic auth, 2 TLS with Basic auth."""
        if self.tls_cert_file is not None:
            return 2
        return 1 if self.password_env or self.password_file or self.password_hash else 0

    def server_tls(self) -> tuple[Path, Path] | None:
        """The Central System's (certificate, key), None for plain ws://; the same for every charger on a port."""
        return None if self.tls_cert_file is None else (self.tls_cert_file, self.tls_key_file)


class MqttBrokerSettings(DriverSettings):
    """How a driver reaches its MQTT broker: address, login and TLS (shared by the relay and the
    Shelly meter drivers)."""

    host: Host = "127.0.0.1"
    port: Port = 1883
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the broker password")
    password_file: FilePath | None = Field(None, description="file holding the broker password")
    tls: bool | None = Field(None, description="TLS 1.2+ to the broker (usually port 8883); None: on if tls_ca_file is set")
    tls_ca_file: FilePath | None = Field(None, description="PEM CA that signed the broker's certificate (None: system CAs)")
    tls_cert_file: FilePath | None = Field(None, description="PEM client certificate, for a broker that asks for one")
    tls_key_file: FilePath | None = Field(None, description="the unencrypted PEM key of tls_cert_file")
    allow_plaintext_credentials: bool = Field(
        False, description="send the password to a non-loopback broker without TLS (a LAN broker that has none)")
    stale_seconds: float = Field(60.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _security(self):
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls is False and (self.tls_ca_file or self.tls_cert_file):
            raise ValueError("tls = false, but TLS files are given")
        if self.uses_tls:
            self.ssl_context()  # every file loads
        if self.password_env and self.password_file:
            raise ValueError("give one of password_env and password_file")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("a broker password needs its username")
        if self.password_file is not None:
            read_secret(None, self.password_file, "password_file")
        if ((self.password_env or self.password_file) and not self.uses_tls and not is_loopback(self.host)
                and not self.allow_plaintext_credentials):
            raise ValueError(f"the broker password would cross the network to {self.host} in clear: set tls "
                             "(and tls_ca_file), or allow_plaintext_credentials = true for a LAN broker without TLS")
        return self

    @property
    def uses_tls(self) -> bool:
        """Whether the connection to the broker is TLS."""
        return bool(self.tls) or (self.tls is None and (self.tls_ca_file is not None or self.tls_cert_file is not None))

    def ssl_context(self):
        """The ssl.SSLContext for the broker (None without TLS); ValueError naming a file that does not load."""
        if not self.uses_tls:
            return None
        return client_context(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)

    def password(self) -> str | None:
        """The broker password from password_env or password_file (None if none is configured);
        ValueError naming the variable or file if it is unset or unreadable."""
        secret = read_secret(self.password_env, self.password_file, "the MQTT broker password")
        return None if secret is None else secret.decode()


class MqttSettings(MqttBrokerSettings):
    """A smart relay or plug over MQTT: Shelly Gen2, Tasmota or explicit (Home Assistant-style) topics."""

    style: Literal["shelly_gen2", "tasmota", "generic"]
    topic: str | None = Field(None, description="Shelly: the topic prefix; Tasmota: the device topic")
    power_topic: str | None = None
    power_path: str | None = Field(None, description="dotted JSON path; None: the payload is the number")
    energy_topic: str | None = None
    energy_path: str | None = None
    energy_unit: Literal["Wh", "kWh"] = "Wh"
    state_topic: str | None = None
    state_path: str | None = None
    state_on: str = "ON"
    command_topic: str | None = None
    payload_on: str = "ON"
    payload_off: str = "OFF"
    limit_topic: str | None = Field(None, description="generic: publish the limit in W here instead of switching")

    @model_validator(mode="after")
    def _topics(self):
        for name in ("topic", "power_topic", "energy_topic", "state_topic", "command_topic", "limit_topic"):
            value = getattr(self, name)
            if value is not None and (not value or "#" in value or "+" in value):
                raise ValueError(f"{name}: must be a non-empty topic without wildcards")
        if self.style in ("shelly_gen2", "tasmota") and not self.topic:
            raise ValueError(f"style {self.style} needs topic (the device's topic prefix)")
        if self.style == "generic":
            missing = [n for n in ("power_topic", "energy_topic") if not getattr(self, n)]
            if not (self.command_topic or self.limit_topic):
                missing.append("command_topic or limit_topic")
            if missing:
                raise ValueError(f"style generic needs {', '.join(missing)}")
        return self

    def resolved(self) -> dict[str, str | None]:
        """The topics, JSON paths and payloads after applying the style's defaults."""
        t = self.topic
        if self.style == "shelly_gen2":
            defaults = {"power_topic": f"{t}/status/switch:0", "power_path": "apower",
                        "energy_topic": f"{t}/status/switch:0", "energy_path": "aenergy.total", "energy_unit": "Wh",
                        "state_topic": f"{t}/status/switch:0", "state_path": "output", "state_on": "true",
                        "command_topic": f"{t}/command/switch:0", "payload_on": "on", "payload_off": "off"}
        elif self.style == "tasmota":
            defaults = {"power_topic": f"tele/{t}/SENSOR", "power_path": "ENERGY.Power",
                        "energy_topic": f"tele/{t}/SENSOR", "energy_path": "ENERGY.Total", "energy_unit": "kWh",
                        "state_topic": f"stat/{t}/POWER", "state_path": None, "state_on": "ON",
                        "command_topic": f"cmnd/{t}/POWER", "payload_on": "ON", "payload_off": "OFF"}
        else:
            defaults = {}
        explicit = self.model_dump(exclude_unset=True)
        keys = ("power_topic", "power_path", "energy_topic", "energy_path", "energy_unit", "state_topic", "state_path",
                "state_on", "command_topic", "payload_on", "payload_off", "limit_topic")
        return {k: explicit[k] if k in explicit else defaults.get(k, getattr(self, k)) for k in keys}


class SunSpecMeterSettings(DriverSettings):
    """A site meter speaking SunSpec (meter models 201-204, integer + scale factor) over Modbus TCP.
    Like every Modbus TCP device it stays on the home LAN (no encryption, no authentication)."""

    host: Host
    port: Port = 502
    device_id: int = Field(1, ge=0, le=247, description="Modbus unit id")
    base_address: int | None = Field(None, ge=0, le=65_000,
                                     description="where the 'SunS' marker is; None: try 40000, 50000 and 0")
    model: Literal[201, 202, 203, 204] | None = Field(None, description="None: the first meter model in the map")
    power_sign: Literal[1, -1] = Field(1, description="1: the meter reports grid import as positive W")


class ShellyMeterSettings(MqttBrokerSettings):
    """A Shelly Pro 3EM (`em`, triphase profile: em:0 / emdata:0) or Pro EM / EM Gen3 (`em1`:
    em1:<channel> / em1data:<channel>) energy meter on an MQTT broker, by its Gen2 RPC notifications."""

    topic: str = Field(min_length=1, max_length=200,
                       description="the device's MQTT topic prefix (e.g. shellypro3em-<mac>)")
    profile: Literal["em", "em1"] = "em"
    channel: int = Field(0, ge=0, le=15, description="em1: the measuring channel (em1:<channel>)")

    @model_validator(mode="after")
    def _topic(self):
        if "#" in self.topic or "+" in self.topic or any(c.isspace() for c in self.topic):
            raise ValueError("topic: must be a topic prefix without wildcards or spaces")
        return self


class DsmrP1Settings(DriverSettings):
    """A DSMR smart meter's P1 port, read through a P1-to-network adapter (ser2net or a P1 dongle)
    that forwards the telegrams on a TCP port. P1 is read-only and unauthenticated: the adapter
    stays on the home LAN."""

    host: Host
    port: Port
    dsmr_version: Literal["4", "5"] = Field("5", description="the telegram format (DSMR 4.x or 5.x)")
    poll_seconds: float = Field(1.0, gt=0, le=3_600, description="the meter pushes a telegram this often (not polled)")
    stale_seconds: float = Field(30.0, gt=0, le=86_400, description="DSMR 5 sends a telegram every second, 4 every 10 s")


DRIVER_SETTINGS: dict[str, type[DriverSettings]] = {"modbus": ModbusSettings, "ocpp": OcppSettings,
                                                    "mqtt": MqttSettings, "sunspec": SunSpecMeterSettings,
                                                    "shelly": ShellyMeterSettings, "p1": DsmrP1Settings}
# The device kinds each driver can stand for (a relay can switch any load; a meter only meters the site).
DRIVER_KINDS: dict[str, tuple[str, ...]] = {
    "modbus": ("battery",),
    "ocpp": ("ev_charger",),
    "mqtt": ("ev_charger", "heat_pump", "hvac", "battery", "water_heater", "household"),
    "sunspec": ("site_meter",),
    "shelly": ("site_meter",),
    "p1": ("site_meter",),
}
