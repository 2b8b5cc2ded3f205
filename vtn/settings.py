"""The facade's configuration: `NEGAWATT_VTN_*` environment variables (or a .env file); command-line
options override them.

`clients_file` is the JSON file naming the OAuth clients (id, SHA-256 of the secret, role, and for a
Business Logic client the buyer keystore it escrows from) and the site keystores the facade signs
meter batches with (vtn.clients). Every keystore is opened with the password in
`NEGAWATT_VTN_KEYSTORE_PASSWORD` (or the file `keystore_password_file`). `public_url` is where clients
reach the facade: `GET /auth/server` answers `<public_url>/auth/token`. `callback_allow`
(`NEGAWATT_VTN_CALLBACK_ALLOW`, a JSON list) names the non-public networks and host names webhook
callbacks may reach (vtn.callback_policy); a devnet allows loopback.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SPEC_VERSION = "3.1.0"  # what openadr3-client 2.4.2's oadr310 module speaks


class VtnSettings(BaseSettings):
    """Everything `negawatt vtn serve` needs."""

    model_config = SettingsConfigDict(env_prefix="NEGAWATT_VTN_", env_file=".env", extra="ignore",
                                      populate_by_name=True)

    manifest: Path = Field(Path("deployments/ethereum-local.json"), description="deployment manifest file")
    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC endpoint (http or https)")
    database_url: str = Field("sqlite:///negawatt-vtn.sqlite",
                              validation_alias=AliasChoices("NEGAWATT_VTN_DATABASE_URL", "database_url"),
                              description="SQLAlchemy URL or SQLite file path")
    clients_file: Path = Field(Path("vtn-clients.json"), description="OAuth clients and site keystores (JSON)")
    keystore_password: str | None = Field(None, repr=False, description="password of every keystore named in "
                                                                        "clients_file")
    keystore_password_file: Path | None = Field(None, description="file holding that password")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8300, ge=0, le=65535, description="TCP port to listen on")
    public_url: str | None = Field(None, description="where clients reach the facade; default http://host:port")
    api_url: str | None = Field(None, description="negawatt API, for delivered energy and its interval in results")
    oracles: list[str] = Field(default_factory=list,
                               description="oracle base URLs usage reports go to; default: the OracleHub's URLs")
    payment_token: str = Field("MockStablecoin", description="manifest name or address of the token requests "
                                                             "are escrowed in")
    token_ttl_seconds: int = Field(3600, ge=60, le=86_400, description="lifetime of an access token")
    poll_seconds: float = Field(5.0, gt=0, le=3600, description="pause between result refreshes")
    notify_timeout_seconds: float = Field(5.0, gt=0, le=60, description="timeout of one webhook POST")
    callback_allow: list[str] = Field(default_factory=list, max_length=100,
                                      description="IP networks and host names webhook callbacks may reach although "
                                                  "not public (vtn.callback_policy); none by default")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024, description="largest request body")
    max_objects_per_client: int = Field(10_000, ge=1, description="objects one client may create")

    @field_validator("callback_allow")
    @classmethod
    def _allow_list(cls, entries: list[str]) -> list[str]:
        from vtn.callback_policy import parse_allow

        parse_allow(entries)  # ValueError names the entry that is neither a network nor a host name
        return entries

    def base_url(self) -> str:
        """The facade's public base URL (no trailing slash)."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
