"""An oracle operator's configuration: a TOML file, overridable by NEGAWATT_ORACLE_* variables.

    # oracle.toml
    rpc_url = "http://127.0.0.1:8545"
    manifest = "deployments/ethereum-local.json"
    database_url = "sqlite:///oracle-1.sqlite"        # or postgresql://... (DATABASE_URL also works)
    keystore = "keys/oracle-1.json"                   # password: $NEGAWATT_ORACLE_PASSWORD or password_file
    host = "127.0.0.1"
    port = 8101
    public_url = "http://127.0.0.1:8101"              # published in the OracleHub for nodes and peers
    ready_max_lag_blocks = 10                         # GET /v1/ready: 503 beyond confirmations + this
    retention_days = 132                              # meter data kept; at least 94 (oracle.meter_retention)

    [economics]                                       # identical on every oracle of the network
    interval_seconds = 900
    method = "caiso-10in10"
    adjustment = "ratio"
    ...

The key itself never appears here: only the path of its encrypted keystore.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oracle.baselines import BaselineError, BaselineSpec
from oracle.epoch import OracleEconomics
from oracle.meter_retention import DEFAULT_RETENTION_DAYS, UPKEEP_EVERY_SECONDS, check_retention_days
from oracle.settlement import DEFAULT_CURVE, SettlementParams
from protocol.config_files import ConfigError, describe, leave_to_environment, read_toml, root_paths


class BaselineConfig(BaseModel):
    """Baseline rules (see oracle.baselines)."""

    model_config = {"extra": "forbid"}

    method: str = "caiso-10in10"
    adjustment: str = "ratio"
    cap_bps: int = Field(2_000, ge=0, le=10_000)
    x: int = 4
    y: int = 5
    min_days: int | None = None
    adjustment_window_seconds: int = 3 * 3_600
    adjustment_gap_seconds: int = 3_600
    before_intervals: int = 2
    quality_days: int = 5
    max_rrmse_bps: int = 2_000
    utc_offset_seconds: int = 0


class EconomicsConfig(BaselineConfig):
    """Settlement and baseline rules every oracle of the network must share."""

    interval_seconds: int = Field(900, ge=60, le=86_400)
    owner_share_bps: int = Field(8_000, ge=0, le=10_000)
    emission_per_kwh: int = Field(10**18, ge=0)
    penalty_per_kwh: int = Field(10**18, ge=0)
    penalty_below_bps: int = Field(5_000, ge=0, le=10_000)
    curve: list[tuple[int, int]] = Field(default_factory=lambda: [list(p) for p in DEFAULT_CURVE])
    fee_account: str | None = Field(None, description="fee recipient; the OracleHub's treasury if unset")
    zone_methods: dict[int, BaselineConfig] = Field(default_factory=dict,
                                                    description="per-zone programs overriding the default")
    estimator: str = Field("did", description="portfolio estimator of per-site requests: did, regression or site")
    site_adjustment: str = Field("none", description="same-day adjustment of site baselines (none by default)")

    def build(self, fee_account: str, protocol_token: str) -> OracleEconomics:
        """The economics object, validated (raises ConfigError with the reason)."""
        try:
            params = SettlementParams(
                fee_account=self.fee_account or fee_account, protocol_token=protocol_token,
                interval_seconds=self.interval_seconds, owner_share_bps=self.owner_share_bps,
                emission_per_kwh=self.emission_per_kwh, penalty_per_kwh=self.penalty_per_kwh,
                penalty_below_bps=self.penalty_below_bps, curve=tuple(tuple(p) for p in self.curve),
            )
            default = _spec(self, self.interval_seconds)
            zones = {zone: _spec(rule, self.interval_seconds) for zone, rule in self.zone_methods.items()}
        except (BaselineError, ValueError) as error:
            raise ConfigError(f"economics: {error}") from None
        try:
            return OracleEconomics(params, default, zones, estimator=self.estimator,
                                   site_adjustment=self.site_adjustment)
        except ValueError as error:
            raise ConfigError(f"economics: {error}") from None


def _spec(rule: BaselineConfig, interval_seconds: int) -> BaselineSpec:
    fields = rule.model_dump(include=set(BaselineConfig.model_fields))
    return BaselineSpec(interval_seconds=interval_seconds, **fields)


class OracleConfig(BaseSettings):
    """Everything `negawatt oracle run` needs."""

    model_config = SettingsConfigDict(env_prefix="NEGAWATT_ORACLE_", extra="forbid", populate_by_name=True)

    rpc_url: str = "http://127.0.0.1:8545"
    manifest: Path = Path("deployments/ethereum-local.json")
    database_url: str = Field("sqlite:///oracle.sqlite",
                              validation_alias=AliasChoices("database_url", "DATABASE_URL",
                                                            "NEGAWATT_ORACLE_DATABASE_URL"))
    keystore: Path
    password_file: Path | None = None
    password_env: str = "NEGAWATT_ORACLE_PASSWORD"
    host: str = "127.0.0.1"
    port: int = Field(8101, ge=1, le=65_535)
    public_url: str | None = Field(None, description="URL published on-chain; http://host:port if unset")
    confirmations: int = Field(0, ge=0, le=128)
    poll_seconds: float = Field(2.0, gt=0, le=3_600)
    data_grace_seconds: int = Field(60, ge=0)
    stagger_seconds: int = Field(20, ge=1)
    clearing_delay_seconds: int = Field(20, ge=0, le=3_600, description="seconds after a request's gate closure "
                                        "before this oracle clears it (time for peers' commitments to arrive)")
    ready_max_lag_blocks: int = Field(10, ge=0, le=100_000, description="/v1/ready fails when the chain view is "
                                      "more than confirmations + this many blocks behind the head")
    max_readings: int = Field(96, ge=1, le=10_000)
    settlement_block_meters: int = Field(10_000, ge=1, le=1_000_000, description="meters whose readings a "
                                         "per-device request's settlement loads at a time (bounds its memory)")
    clock_skew_seconds: int = Field(60, ge=0, le=3_600)
    reading_tolerance_bps: int = Field(12_000, ge=10_000)
    economics: EconomicsConfig = Field(default_factory=EconomicsConfig)
    retention_days: int = Field(DEFAULT_RETENTION_DAYS, description="days of meter data kept (oracle.meter_retention); "
                                "refused below the history a settlement reads")
    upkeep_every_seconds: int = Field(UPKEEP_EVERY_SECONDS, ge=60, le=7 * 86_400,
                                      description="how often the store's upkeep (retention, partitions) runs")

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return check_retention_days(value)

    @field_validator("public_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _default_public_url(self) -> "OracleConfig":
        if self.public_url is None:
            self.public_url = f"http://{self.host}:{self.port}"
        return self


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> OracleConfig:
    """Read the TOML file (if any), then environment variables, then `overrides`; raise ConfigError."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_toml(path)
        root_paths(path, data, ("manifest", "keystore", "password_file"))
    leave_to_environment(data, "NEGAWATT_ORACLE_")
    data.update(overrides or {})
    try:
        return OracleConfig(**data)
    except ValidationError as error:
        raise describe(error, path or "configuration") from None
