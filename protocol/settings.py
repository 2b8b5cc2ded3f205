"""Settings every role shares, read from the environment (prefix NEGAWATT_) or a .env file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChainSettings(BaseSettings):
    """How a role reaches the chain: the RPC URL and the deployment manifest."""

    model_config = SettingsConfigDict(env_prefix="NEGAWATT_", env_file=".env", extra="ignore")

    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC endpoint (http, https, ws or wss)")
    manifest: Path = Field(Path("deployments/ethereum-local.json"), description="deployment manifest file")
    confirmations: int = Field(2, ge=0, le=128, description="blocks to wait before acting on an event")
