"""Creating a node's files: encrypted keystores for the owner and each device, and its node.toml.

`negawatt node init` calls `init_node`; so does the devnet, which sets up many nodes in one process.
node.toml is written from its model (node.config.NodeConfig) by protocol.config_files.write_toml,
the writer of every configuration file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from pydantic import ValidationError

from node.config import NodeConfig
from protocol.config_files import describe, file_model, toml_value, write_toml  # noqa: F401  (toml_value: re-exported)
from protocol.keys import write_keystore
from protocol.kinds import KIND_NUMBERS

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
    settings: dict[str, Any] = {
        "rpc_url": rpc_url, "manifest": str(Path(manifest).resolve()), "data_dir": "node-data",
        "owner_keystore": "keys/owner.json", "password_env": password_env, "zone": zone,
        "interval_seconds": interval_seconds, **(extra or {}), "devices": []}
    created = []
    for index, spec in enumerate(devices):
        address = write_keystore(keys / f"device-{index}.json", bytes(Account.create().key), password,
                                 iterations=scrypt_n)
        settings["devices"].append({"keystore": f"keys/device-{index}.json", "kind": spec.kind,
                                    "capacity_w": spec.capacity_w, "params": {"seed": index, **spec.params}})
        created.append((address, spec))
    try:
        config = file_model(NodeConfig, settings)
    except ValidationError as error:
        raise NodeSetupError(f"node.toml would not be valid: {describe(error, config_path)}") from None
    write_toml(config_path, config)
    return InitializedNode(config_path, owner, created)
