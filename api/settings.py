"""The API's configuration: `NEGAWATT_API_*` environment variables (or a .env file), command-line
options override them; the database URL is also read from plain `DATABASE_URL`.

`public_url` is where clients reach this API (default: the address it serves on); the SIWE domains a
login message may name default to that URL's authority (`host[:port]`), never to a request's Host
header. The HTTP limits (body cap, request-head timeout, keep-alive, connections) are
protocol.http_limits'."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.http_limits import HttpLimits

_DOMAIN = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]{1,255}")


def _http_url(value: str | None, name: str) -> str | None:
    """`value` if it is None or an http(s) URL with a host; else ValueError naming `name`."""
    if value is not None and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        raise ValueError(f"{name} must be an http(s) URL with a host: {value[:80]!r}")
    return value


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
    public_rpc_url: str | None = Field(None, description="the JSON-RPC URL browsers use (GET /v1/network); "
                                                         "default: rpc_url when it is on this machine, else none")
    web_dir: Path | None = Field(None, description="the built web app served at / (default: the repository's "
                                                   "web/dist)")
    public_url: str | None = Field(None, description="the URL clients reach this API at (http or https); "
                                                     "default: http://<host>:<port>")
    siwe_domains: list[str] = Field(default_factory=list,
                                    description="EIP-4361 domains (host[:port]) SIWE messages may name; "
                                                "default: the authority of public_url")
    session_seconds: int = Field(86_400, ge=60, description="lifetime of a SIWE session")
    nonce_seconds: int = Field(600, ge=10, description="lifetime of a SIWE nonce")
    oracle_timeout: float = Field(10.0, gt=0, description="seconds to wait for an oracle's report document")
    cors_origins: list[str] = Field(default_factory=lambda: ["*"], description="allowed CORS origins")
    max_body_bytes: int = Field(16 * 1024, ge=1_024, le=16 * 1024 * 1024,
                                description="largest request body; larger ones get 413 before being read")
    header_timeout: float = Field(10.0, gt=0, le=600, description="seconds a client has to send a request's "
                                                                   "line and headers before it is disconnected")
    keep_alive_timeout: int = Field(5, ge=1, le=600, description="seconds an idle keep-alive connection stays open")
    max_connections: int = Field(1_000, ge=1, description="open connections before new requests get 503")
    stream_keepalive_seconds: float = Field(15.0, ge=0.05, le=300, description="seconds without an event before "
                                                                             "the SSE stream sends a heartbeat")

    @field_validator("oracles")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"oracle URL must be http(s): {url!r}")
        return [url.rstrip("/") for url in value]

    @field_validator("public_rpc_url")
    @classmethod
    def _public_rpc_url(cls, value: str | None) -> str | None:
        return _http_url(value, "public_rpc_url")

    def browser_rpc_url(self) -> str | None:
        """The RPC URL a browser is told to use: the public one, or rpc_url when it is a loopback address."""
        if self.public_rpc_url:
            return self.public_rpc_url
        host = urlsplit(self.rpc_url).hostname or ""
        return self.rpc_url if host in ("127.0.0.1", "localhost", "::1") else None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        value = _http_url(value, "public_url")
        return value.rstrip("/") if value else value

    @field_validator("siwe_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        for domain in value:
            if not _DOMAIN.fullmatch(domain):
                raise ValueError(f"a SIWE domain is a URI authority, host[:port], without scheme or path: "
                                 f"{domain[:80]!r}")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> ApiSettings:
        if self.public_url is None:
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.public_url = f"http://{host}:{self.port}"
        if not self.siwe_domains:
            self.siwe_domains = [urlsplit(self.public_url).netloc]
        return self

    def http_limits(self) -> HttpLimits:
        """The limits the server applies to clients (protocol.http_limits)."""
        return HttpLimits(max_body_bytes=self.max_body_bytes, header_timeout=self.header_timeout,
                          keep_alive_timeout=self.keep_alive_timeout, max_connections=self.max_connections)
