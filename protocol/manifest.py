"""The deployment manifest: where the negawatt contracts live on one chain, and handles to them.

`ape run deploy` writes it (JSON: chainId, network, addresses, deployment blocks, roles,
parameters and each contract's ABI), so a role needs only this file and an RPC URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from eth_utils import is_address, to_checksum_address

REQUIRED_CONTRACTS = ("NegawattToken", "DeviceRegistry", "Staking", "FlexMarket", "RewardDistributor", "OracleHub")


class ManifestError(ValueError):
    """The manifest file is missing, unreadable or incomplete; the message says which."""


class ContractEntry(BaseModel):
    """One deployed contract."""

    address: str
    block: int = Field(ge=0)
    abi: list[dict[str, Any]]

    @field_validator("address")
    @classmethod
    def _checksummed(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError(f"not an address: {value!r}")
        return to_checksum_address(value)


class Manifest(BaseModel):
    """A negawatt deployment on one chain."""

    chainId: int = Field(gt=0)
    network: str
    deployedAt: str
    deployer: str
    contracts: dict[str, ContractEntry]
    roles: dict[str, Any]
    parameters: dict[str, Any]

    @field_validator("contracts")
    @classmethod
    def _complete(cls, value: dict[str, ContractEntry]) -> dict[str, ContractEntry]:
        missing = [name for name in REQUIRED_CONTRACTS if name not in value]
        if missing:
            raise ValueError(f"missing contracts: {', '.join(missing)}")
        return value

    def address(self, name: str) -> str:
        """Checksummed address of contract `name`."""
        return self._entry(name).address

    @property
    def start_block(self) -> int:
        """The first block any negawatt contract exists in (where indexers start)."""
        return min(entry.block for entry in self.contracts.values())

    def contract(self, web3: Any, name: str) -> Any:
        """A web3.py contract handle for `name` on the chain `web3` is connected to."""
        entry = self._entry(name)
        return web3.eth.contract(address=entry.address, abi=entry.abi)

    def _entry(self, name: str) -> ContractEntry:
        try:
            return self.contracts[name]
        except KeyError:
            raise ManifestError(f"the manifest has no contract {name!r}") from None


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file; raises ManifestError with the reason when it is unusable."""
    file = Path(path)
    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError:
        raise ManifestError(f"no deployment manifest at {file} (run `ape run deploy` first)") from None
    except json.JSONDecodeError as error:
        raise ManifestError(f"{file} is not valid JSON: {error}") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        raise ManifestError(f"{file} is not a negawatt deployment manifest: {error}") from None


def check_chain(manifest: Manifest, web3: Any) -> None:
    """Raise ManifestError if `web3` is connected to a different chain than the manifest's."""
    chain_id = web3.eth.chain_id
    if chain_id != manifest.chainId:
        raise ManifestError(f"the RPC serves chain {chain_id}, the manifest is for chain {manifest.chainId}")
