"""The API's configuration: `NEGAWATT_API_*` environment variables (or a .env file), command-line
options override them; the database URL is also read from plain `DATABASE_URL`."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Everything `negawatt api serve` needs."""

    model_config = SettingsConfigDict(env_prefix="NEGAWATT_API_", env_file=".env", extra="ignore",
                                      populate_by_name=True)

    manifest: Path = Field(Path("deployments/ethereum-local.json"), description="deployment manifest file")
    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC endpoint (http or https)")
    database_url: str = Field(
        "sqlite:///negawatt-api.sqlite",
        validation_alias=AliasChoices("NEGAWATT_API_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="SQLAlchemy URL or SQLite file path; postgresql:// uses psycopg 3",
    )
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on")
    confirmations: int = Field(2, ge=0, le=1024, description="blocks behind the head the indexer stays")
    oracles: list[str] = Field(default_factory=list,
                               description="oracle base URLs; default: the URLs registered in the OracleHub")
    poll_seconds: float = Field(2.0, gt=0, le=3600, description="pause between indexer polls")
    log_range: int = Field(2_000, ge=1, le=100_000, description="most blocks per eth_getLogs call")
    undo_depth: int = Field(1_024, ge=1, description="blocks of history kept to roll back a reorg")
    ready_lag_blocks: int = Field(5, ge=0, description="most indexer lag (blocks) for /v1/ready to answer 200")
    ready_stale_seconds: float = Field(30.0, gt=0, description="/v1/ready answers 503 when the indexer has not "
                                                                  "reached the RPC for this long")
    rate_limit_per_second: float = Field(50.0, gt=0, description="requests per second per client (token bucket)")
    rate_limit_burst: int = Field(100, ge=1, description="bucket size: requests a client may send at once")
    siwe_domains: list[str] = Field(default_factory=list,
                                    description="domains SIWE messages may name; default: this API's Host")
    session_seconds: int = Field(86_400, ge=60, description="lifetime of a SIWE session")
    nonce_seconds: int = Field(600, ge=10, description="lifetime of a SIWE nonce")
    oracle_timeout: float = Field(10.0, gt=0, description="seconds to wait for an oracle's report document")
    cors_origins: list[str] = Field(default_factory=lambda: ["*"], description="allowed CORS origins")

    @field_validator("oracles")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"oracle URL must be http(s): {url!r}")
        return [url.rstrip("/") for url in value]
