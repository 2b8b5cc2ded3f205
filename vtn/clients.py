"""Who may talk to the facade: the OAuth clients, their roles and scopes, and the keys it holds.

The clients file (JSON, `NEGAWATT_VTN_CLIENTS_FILE`) lists each client once:

    {"clients": [{"client_id": "dso", "secret_sha256": "<hex>", "role": "BL", "buyer_keystore": "buyer.json"},
                 {"client_id": "cpo", "secret_sha256": "<hex>", "role": "VEN"}],
     "sites": [{"keystore": "sites/site-0.json"}]}

The facade stores only the SHA-256 of each secret and compares in constant time. A Business Logic
client is bound to one buyer key: the account its events escrow from. `sites` are site-meter keys
registered on the DeviceRegistry whose custody the facade holds: a VEN's resource is bound to one of
them and the facade signs that site's meter batches (vtn.sites). Relative paths are relative to the
clients file; every keystore opens with the one facade keystore password.

Scopes are the OpenADR 3.1.0 ones. A BL client gets read_all, write_programs, write_events,
write_subscriptions, write_vens; a VEN client read_targets, read_ven_objects, write_reports,
write_subscriptions, write_vens. A token request naming scopes gets those of them its role allows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.keys import load_key

MAX_CLIENTS = 1_000
MAX_SITES = 10_000
MAX_FILE_BYTES = 1024 * 1024


class Role(str, Enum):
    """A client's OpenADR role."""

    BL = "BL"
    VEN = "VEN"


ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.BL: frozenset({"read_all", "write_programs", "write_events", "write_subscriptions", "write_vens"}),
    Role.VEN: frozenset({"read_targets", "read_ven_objects", "write_reports", "write_subscriptions", "write_vens"}),
}
FACADE_CLIENT_ID = "negawatt-vtn"  # the client id of the objects the facade writes itself (result reports)


class ClientEntry(BaseModel):
    """One OAuth client as the file names it."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._~-]+$")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Role
    buyer_keystore: Path | None = None


class SiteEntry(BaseModel):
    """One site-meter key the facade holds."""

    model_config = ConfigDict(extra="forbid")

    keystore: Path


class ClientsFile(BaseModel):
    """The whole clients file."""

    model_config = ConfigDict(extra="forbid")

    clients: list[ClientEntry] = Field(max_length=MAX_CLIENTS)
    sites: list[SiteEntry] = Field(default_factory=list, max_length=MAX_SITES)


@dataclass(frozen=True)
class Client:
    """An OAuth client the facade knows, with the buyer key bound to it (BL only)."""

    client_id: str
    secret_sha256: str
    role: Role
    buyer_key: bytes | None = None

    @property
    def buyer(self) -> str | None:
        """The buyer account this client escrows from."""
        return Account.from_key(self.buyer_key).address if self.buyer_key else None

    def check_secret(self, secret: str) -> bool:
        """Whether `secret` is this client's (constant-time comparison of the digests)."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return hmac.compare_digest(digest, self.secret_sha256)


@dataclass(frozen=True)
class Registry:
    """Every client by id and every site key by address."""

    clients: dict[str, Client]
    site_keys: dict[str, bytes]


class ClientsError(ValueError):
    """The clients file cannot be used; the message names the file and why."""


def secret_digest(secret: str) -> str:
    """What the clients file stores for `secret`."""
    return hashlib.sha256(secret.encode()).hexdigest()


def load_registry(path: Path, password: str) -> Registry:
    """Read the clients file and open every keystore it names."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ClientsError(f"{path}: {error.strerror or error}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ClientsError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        parsed = ClientsFile.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as error:
        raise ClientsError(f"{path}: {str(error).splitlines()[0]}") from None
    base = path.parent
    clients: dict[str, Client] = {}
    for entry in parsed.clients:
        if entry.client_id in clients or entry.client_id == FACADE_CLIENT_ID:
            raise ClientsError(f"{path}: client id {entry.client_id!r} is taken")
        key = None
        if entry.role is Role.BL:
            if entry.buyer_keystore is None:
                raise ClientsError(f"{path}: BL client {entry.client_id!r} names no buyer_keystore")
            key = _open(base / entry.buyer_keystore, password)
        clients[entry.client_id] = Client(entry.client_id, entry.secret_sha256, entry.role, key)
    sites: dict[str, bytes] = {}
    for site in parsed.sites:
        key = _open(base / site.keystore, password)
        sites[Account.from_key(key).address] = key
    return Registry(clients, sites)


def _open(path: Path, password: str) -> bytes:
    try:
        return load_key(path, password)
    except Exception as error:  # a missing file or a wrong password: say which file
        raise ClientsError(f"keystore {path} cannot be opened: {error}") from None
