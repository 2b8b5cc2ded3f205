"""A network profile: what a role needs to know to join a network, in one JSON file (`network.json`).

A devnet writes one into its run folder (`negawatt devnet up`), and any other network's operator can
publish one, so that `negawatt node init --devnet RUN_DIR` (or a profile file) writes settings that
work there: the right RPC, manifest, API and oracle addresses, and the confirmations its chain needs
(a devnet that mines on an interval and never reorganises needs 0; a public chain needs more).

The rule: the file is read bounded (at most `MAX_PROFILE_BYTES`) and validated strictly; an unknown
field, a relative manifest path that does not exist, or a URL that is not http(s) is refused with a
message naming the field. Paths inside the file are resolved against the file's folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from protocol.config_files import field_problems, read_bounded

PROFILE_FILE = "network.json"
MAX_PROFILE_BYTES = 64 * 1024


class ProfileError(ValueError):
    """The profile could not be read or is invalid; the message says which file and field."""


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) > 2_048:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


class NetworkProfile(BaseModel):
    """How to reach one network, and how its chain behaves."""

    model_config = {"extra": "forbid", "frozen": True}

    name: str = Field("devnet", min_length=1, max_length=64)
    chain_id: int = Field(..., ge=1)
    rpc_url: str
    manifest: Path = Field(..., description="the deployment manifest (absolute, or relative to the profile)")
    api_url: str | None = None
    oracle_urls: list[str] = Field(default_factory=list, max_length=64)
    confirmations: int = Field(0, ge=0, le=1_000, description="blocks a role waits before trusting an event")
    interval_seconds: int = Field(900, ge=60, le=86_400, description="the metering interval of the network")
    block_time_seconds: float | None = Field(None, gt=0, le=3_600,
                                             description="the chain mines on this interval (None: on demand)")
    time_scale: float = Field(1.0, ge=1.0, le=10_000.0,
                              description="chain seconds per wall second (a devnet's keeper may run fast)")

    _rpc = field_validator("rpc_url")(lambda cls, v: _http_url(v))

    @field_validator("api_url")
    @classmethod
    def _api(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("oracle_urls")
    @classmethod
    def _oracles(cls, value: list[str]) -> list[str]:
        return [_http_url(v) for v in value]


def write_profile(folder: Path, profile: NetworkProfile) -> Path:
    """Write `profile` as `folder/network.json` (atomically: a reader never sees half a file)."""
    path = folder / PROFILE_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(profile.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def read_profile(location: Path) -> NetworkProfile:
    """The profile at `location` (a run folder holding network.json, or the file itself), with its
    manifest path made absolute and checked to exist."""
    path = location / PROFILE_FILE if location.is_dir() else location
    raw = read_bounded(path, MAX_PROFILE_BYTES, "network profile", ProfileError)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProfileError(f"{path}: not JSON ({error})") from None
    try:
        profile = NetworkProfile.model_validate(data)
    except ValidationError as error:
        raise ProfileError(f"{path}: {field_problems(error, 'profile')}") from None
    manifest = profile.manifest if profile.manifest.is_absolute() else (path.parent / profile.manifest)
    if not manifest.is_file():
        raise ProfileError(f"{path}: manifest: {manifest} does not exist")
    return profile.model_copy(update={"manifest": manifest.resolve()})
