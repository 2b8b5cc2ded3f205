"""The buyer's configuration: `NEGAWATT_BUYER_*` environment variables (or a .env file); command-line
options override them. The keystore password is never a setting: it comes from
`NEGAWATT_BUYER_PASSWORD` or, when that is unset, a hidden prompt (`buyer_password`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PASSWORD_ENV = "NEGAWATT_BUYER_PASSWORD"


class BuyerSettings(BaseSettings):
    """Where the buyer's tools find the chain, the deployment, the API and the buyer's key."""

    model_config = SettingsConfigDict(env_prefix="NEGAWATT_BUYER_", env_file=".env", extra="ignore")

    rpc_url: str = Field("http://127.0.0.1:8545", max_length=2_000, description="JSON-RPC endpoint (http or https)")
    manifest: Path = Field(Path("deployments/ethereum-local.json"), description="deployment manifest file")
    api_url: str = Field("http://127.0.0.1:8000", max_length=2_000, description="the negawatt API's base URL")
    keystore: Path = Field(Path("buyer-keystore.json"), description="the buyer's encrypted keystore (JSON)")
    api_timeout: float = Field(10.0, gt=0, le=300, description="seconds to wait for one API answer")


def buyer_password(prompt: Callable[[], str] | None = None) -> str:
    """The keystore password: `NEGAWATT_BUYER_PASSWORD` when set, else what `prompt` returns (the CLI
    passes a hidden prompt); raises protocol.keys.KeyError_ when neither gives one."""
    from protocol.keys import KeyError_, read_password

    try:
        return read_password(PASSWORD_ENV)
    except KeyError_:
        if prompt is None:
            raise
    password = prompt()
    if not password:
        raise KeyError_("no keystore password given")
    return password
