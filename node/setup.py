"""Creating a node's files: encrypted keystores for the owner and each device, and its node.toml.

`negawatt node init` calls `init_node`; so does the devnet, which sets up many nodes in one process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from node.devices.base import KIND_NUMBERS
from protocol.keys import write_keystore

# scrypt cost of the node's keystores: 16 MiB to decrypt (eth-account's default needs 256 MiB).
GATEWAY_SCRYPT_N = 2**14


class NodeSetupError(ValueError):
    """The node cannot be set up as asked; the message says why."""


@dataclass(frozen=True)
class DeviceSpec:
    """One device to create: its kind, rated capacity and simulator parameters."""

    kind: str
    capacity_w: int
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KIND_NUMBERS:
            raise NodeSetupError(f"unknown kind {self.kind!r}; one of {', '.join(KIND_NUMBERS)}")
        if isinstance(self.capacity_w, bool) or not isinstance(self.capacity_w, int) or self.capacity_w <= 0:
            raise NodeSetupError(f"{self.kind}: the capacity must be a positive integer of watts")


@dataclass(frozen=True)
class InitializedNode:
    """What `init_node` wrote: the configuration file, the owner's and each device's address."""

    config_path: Path
    owner: str
    devices: list[tuple[str, DeviceSpec]]


def toml_value(value: Any) -> str:
    """A TOML literal for the simple values node.toml holds (JSON's syntax is TOML's for these)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def init_node(directory: Path, devices: list[DeviceSpec], password: str, *, zone: int = 1,
              rpc_url: str = "http://127.0.0.1:8545", manifest: Path = Path("deployments/ethereum-local.json"),
              interval_seconds: int = 900, password_env: str = "NEGAWATT_NODE_PASSWORD",
              extra: dict[str, Any] | None = None, scrypt_n: int = GATEWAY_SCRYPT_N) -> InitializedNode:
    """Write keystores and node.toml under `directory`; refuse to overwrite an existing node.

    `extra` adds top-level settings (e.g. confirmations, claim_check_seconds) to node.toml."""
    if not devices:
        raise NodeSetupError("a node needs at least one device")
    if not password:
        raise NodeSetupError("the keystore password is empty")
    config_path = directory / "node.toml"
    if config_path.exists():
        raise NodeSetupError(f"{config_path} exists; refusing to overwrite a node's configuration")
    keys = directory / "keys"
    owner = write_keystore(keys / "owner.json", bytes(Account.create().key), password, iterations=scrypt_n)
    lines = [f"rpc_url = {toml_value(rpc_url)}", f"manifest = {toml_value(str(Path(manifest).resolve()))}",
             'data_dir = "node-data"', 'owner_keystore = "keys/owner.json"',
             f"password_env = {toml_value(password_env)}", f"zone = {zone}", f"interval_seconds = {interval_seconds}"]
    lines += [f"{name} = {toml_value(value)}" for name, value in (extra or {}).items() if not isinstance(value, dict)]
    lines.append("")
    for name, value in (extra or {}).items():
        if isinstance(value, dict):
            lines += [f"[{name}]", *(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()), ""]
    created = []
    for index, spec in enumerate(devices):
        address = write_keystore(keys / f"device-{index}.json", bytes(Account.create().key), password,
                                 iterations=scrypt_n)
        params = {"seed": index, **spec.params}
        lines += ["[[devices]]", f'keystore = "keys/device-{index}.json"', f'kind = "{spec.kind}"',
                  f"capacity_w = {spec.capacity_w}", f"params = {toml_value(params)}", ""]
        created.append((address, spec))
    config_path.write_text("\n".join(lines))
    return InitializedNode(config_path, owner, created)
