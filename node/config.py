"""A device owner's node configuration: a TOML file, overridable by NEGAWATT_NODE_* variables.

    # node.toml (written by `negawatt node init`)
    rpc_url = "http://127.0.0.1:8545"
    manifest = "deployments/ethereum-local.json"
    data_dir = "node-data"                    # outbox, dispatch state
    owner_keystore = "keys/owner.json"        # password: $NEGAWATT_NODE_PASSWORD or password_file
    zone = 1
    interval_seconds = 900

    [policy]
    min_price_per_kwh = 0
    max_share_bps = 8000

    [[devices]]
    keystore = "keys/ev-1.json"
    kind = "ev_charger"
    capacity_w = 7400
    params = { max_power_w = 7400, seed = 3 }

    [[devices]]                               # a real device: driver = "modbus", "ocpp" or "mqtt"
                                              # (a site meter: "sunspec", "shelly" or "p1")
    keystore = "keys/battery.json"
    kind = "battery"
    capacity_w = 5000
    driver = "modbus"
    modbus = { host = "192.168.1.40", port = 502, device_id = 1 }   # see node/drivers/settings.py

    [openadr]                                 # optional: also a VEN of a utility's OpenADR 3 VTN
    url = "https://vtn.utility.example"       # see node/ven_settings.py and node/ven.py
    client_id = "node-17"
    client_secret_file = "keys/vtn-secret.txt"
    program = "residential-flex"

Keys never appear here in clear: only the paths of encrypted keystores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from node.ven_settings import OpenAdrConfig
from node.drivers.settings import (DRIVER_KINDS, FILE_FIELDS, DsmrP1Settings, ModbusSettings, MqttSettings,
                                   OcppSettings, ShellyMeterSettings, SunSpecMeterSettings)
from protocol.config_files import ConfigError, describe, leave_to_environment, read_toml, root_paths, rooted  # noqa: F401  (ConfigError: re-exported for callers)
from protocol.kinds import KIND_NUMBERS


class DeviceConfig(BaseModel):
    """One device behind the gateway."""

    model_config = {"extra": "forbid"}

    keystore: Path
    kind: str
    capacity_w: int = Field(gt=0, le=2**32 - 1)
    params: dict[str, Any] = Field(default_factory=dict)
    driver: Literal["simulated", "modbus", "ocpp", "mqtt", "sunspec", "shelly", "p1"] = "simulated"
    modbus: ModbusSettings | None = None
    ocpp: OcppSettings | None = None
    mqtt: MqttSettings | None = None
    sunspec: SunSpecMeterSettings | None = None  # site meters (kind site_meter)
    shelly: ShellyMeterSettings | None = None
    p1: DsmrP1Settings | None = None

    @field_validator("kind")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in KIND_NUMBERS:
            raise ValueError(f"unknown kind {value!r}; one of {', '.join(KIND_NUMBERS)}")
        return value

    @model_validator(mode="after")
    def _driver_settings(self) -> DeviceConfig:
        for name in DRIVER_KINDS:
            if getattr(self, name) is not None and self.driver != name:
                raise ValueError(f"a [{name}] table needs driver = \"{name}\" (driver is {self.driver!r})")
        if self.driver == "simulated":
            return self
        if getattr(self, self.driver) is None:
            raise ValueError(f"driver = \"{self.driver}\" needs its settings table: {self.driver} = {{ ... }}")
        if self.params:
            raise ValueError("params are for simulated devices; a real device's settings go in its driver table")
        if self.kind not in DRIVER_KINDS[self.driver]:
            raise ValueError(f"the {self.driver} driver cannot stand for a {self.kind}; "
                             f"it drives {', '.join(DRIVER_KINDS[self.driver])}")
        return self

    def driver_settings(self) -> (ModbusSettings | OcppSettings | MqttSettings | SunSpecMeterSettings
                                  | ShellyMeterSettings | DsmrP1Settings | None):
        """The settings of the device's real driver (None for a simulated device)."""
        return None if self.driver == "simulated" else getattr(self, self.driver)


class PolicyConfig(BaseModel):
    """When the node may curtail (see node.dispatch.Policy)."""

    model_config = {"extra": "forbid"}

    min_price_per_kwh: int = Field(0, ge=0)
    max_share_bps: int = Field(8_000, ge=0, le=10_000)
    min_commit_w: int = Field(100, ge=1)
    min_lead_seconds: int = Field(5, ge=0)
    extra_share_bps: int = Field(0, ge=0, le=10_000, description="share of each offer in the less certain tranche")
    extra_premium_bps: int = Field(5_000, ge=0, le=100_000, description="that tranche's price above the minimum")
    min_availability_price_per_kwh: int = Field(0, ge=0, lt=2**128,
                                                description="least availability pay per kW per hour accepted, for "
                                                            "a request that pays availability")


class NodeConfig(BaseSettings):
    """Everything the node commands need."""

    model_config = SettingsConfigDict(env_prefix="NEGAWATT_NODE_", extra="forbid")

    rpc_url: str = "http://127.0.0.1:8545"
    manifest: Path = Path("deployments/ethereum-local.json")
    data_dir: Path = Path("node-data")
    owner_keystore: Path
    password_file: Path | None = None
    password_env: str = "NEGAWATT_NODE_PASSWORD"
    zone: int = Field(1, ge=0, le=2**32 - 1)
    interval_seconds: int = Field(900, ge=60, le=86_400)
    confirmations: int = Field(2, ge=0, le=128)
    stake_per_kw: bool = Field(True, description="`node register` bonds the required stake for the devices")
    claim_gas_multiple: int = Field(5, ge=1)
    oracle_refresh_seconds: int = Field(30, ge=1, le=3_600,
                                        description="how often `node run` re-reads the oracle set from the OracleHub")
    claim_check_seconds: int = Field(600, ge=1, le=86_400,
                                     description="how often `node run` checks whether a claim is worth its gas")
    value_wei_per_unit: dict[str, int] = Field(default_factory=dict,
                                               description="token address -> wei one base unit is worth")
    metrics_port: int | None = Field(None, ge=1, le=65_535)
    api_url: str | None = Field(None, max_length=2_000, pattern=r"^https?://",
                                description="the negawatt API the node publishes its site's day-ahead forecast "
                                            "to (none: no forecast)")
    forecast_check_seconds: int = Field(300, ge=1, le=86_400,
                                        description="how often `node run` checks its published forecast is current")
    eligibility_check_seconds: int = Field(300, ge=1, le=86_400,
                                           description="how often `node run` checks whether each device can earn "
                                                       "(node.eligibility; a warning is logged once)")
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    openadr: OpenAdrConfig | None = Field(None, description="an external OpenADR 3 VTN the node serves as a VEN")
    devices: list[DeviceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_site_meter(self) -> NodeConfig:
        """A node meters one premises: at most one site meter."""
        meters = sum(device.kind == "site_meter" for device in self.devices)
        if meters > 1:
            raise ValueError(f"a node has at most one site meter (its premises' connection), not {meters}")
        return self

    @model_validator(mode="after")
    def _ocpp_servers(self) -> NodeConfig:
        """The chargers on one OCPP port share one server: one TLS certificate (or none), distinct ids."""
        servers: dict[tuple[str, int], list[OcppSettings]] = {}
        for device in self.devices:
            if device.ocpp is not None:
                servers.setdefault((device.ocpp.host, device.ocpp.port), []).append(device.ocpp)
        for (host, port), chargers in servers.items():
            if len({c.server_tls() for c in chargers}) > 1:
                raise ValueError(f"the OCPP chargers on {host}:{port} must share tls_cert_file and tls_key_file")
            ids = [c.charge_point_id for c in chargers]
            if len(set(ids)) < len(ids):
                raise ValueError(f"two OCPP chargers on {host}:{port} have the same charge_point_id")
        return self


def load_config(path: Path) -> NodeConfig:
    """Read and validate `path` (relative paths are relative to its folder); raise ConfigError."""
    data = read_toml(path, " (create one with `negawatt node init`)")
    root_paths(path, data, ("manifest", "data_dir", "owner_keystore", "password_file"))
    for device in data.get("devices", []) if isinstance(data.get("devices"), list) else []:
        if isinstance(device, dict) and "keystore" in device:
            device["keystore"] = rooted(path, device["keystore"])
        for table in (device.get(name) for name in ("ocpp", "mqtt", "shelly")) if isinstance(device, dict) else ():
            if isinstance(table, dict):  # certificates, keys and password files: relative to node.toml
                root_paths(path, table, FILE_FIELDS)
    if isinstance(data.get("openadr"), dict):
        root_paths(path, data["openadr"], ("client_secret_file",))
    leave_to_environment(data, "NEGAWATT_NODE_")
    try:
        config = NodeConfig(**data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_problems(error)}") from None
    if config.openadr is not None:
        try:  # a missing or malformed secret file is a start-up error, not a failure at the first poll
            config.openadr.secret()
        except ValueError as error:
            raise ConfigError(f"{path}: {error}") from None
    return config


def _problems(error: ValidationError) -> str:
    """Every invalid field, list positions as `devices[2].modbus.port: must be 1..65535`."""
    problems = []
    for item in error.errors():
        where = ""
        for part in item["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
