"""Deploy and wire the negawatt contracts with Ape, and describe the result in a manifest.

Used by `ape run deploy` (scripts/deploy.py), the contract tests and the gas benchmark, so all
three deploy the same system. Needs Ape; the roles never import this module.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

CONTRACT_NAMES = (
    "NegawattToken",
    "DeviceRegistry",
    "Staking",
    "FlexMarket",
    "RewardDistributor",
    "OracleHub",
)

TOKEN = 10**18


class DeployParams(BaseModel):
    """Protocol parameters set at deployment (amounts in protocol-token base units, times in seconds)."""

    model_config = {"extra": "forbid"}

    admin: str | None = Field(None, description="DEFAULT_ADMIN_ROLE holder; the deployer if unset")
    guardian: str | None = Field(None, description="GUARDIAN_ROLE holder; the deployer if unset")
    treasury: str | None = Field(None, description="receives slashed funds; the deployer if unset")
    token_cap: int = Field(1_000_000_000 * TOKEN, gt=0)
    unbonding_delay: int = Field(7 * 24 * 3600, ge=0, le=365 * 24 * 3600)
    bond_per_kw: int = Field(100 * TOKEN, ge=0)
    min_duration: int = Field(15 * 60, gt=0)
    max_duration: int = Field(24 * 3600, gt=0)
    settlement_timeout: int = Field(7 * 24 * 3600, ge=0)
    threshold: int = Field(1, ge=1, le=32)
    challenge_window: int = Field(3600, gt=0, le=30 * 24 * 3600)
    challenge_bond: int = Field(1_000 * TOKEN, gt=0, lt=2**96)
    oracle_slash_amount: int = Field(5_000 * TOKEN, ge=0)
    challenger_reward_bps: int = Field(5_000, ge=0, le=10_000)
    min_oracle_bond: int = Field(10_000 * TOKEN, ge=0)
    emission_budget: int = Field(400_000_000 * TOKEN, ge=0, lt=2**96,
                                 description="protocol tokens reports may mint in total (within token_cap)")
    deploy_mock_stablecoin: bool = Field(True, description="deploy MockStablecoin (devnets)")

    @field_validator("emission_budget")
    @classmethod
    def _budget_within_cap(cls, value: int, info: Any) -> int:
        cap = info.data.get("token_cap")
        if cap is not None and value > cap:
            raise ValueError(f"emission_budget ({value}) exceeds token_cap ({cap})")
        return value

    @field_validator("max_duration")
    @classmethod
    def _max_not_below_min(cls, value: int, info: Any) -> int:
        minimum = info.data.get("min_duration")
        if minimum is not None and value < minimum:
            raise ValueError(f"max_duration ({value}) is below min_duration ({minimum})")
        return value


def deploy_all(project: Any, deployer: Any, params: DeployParams | None = None) -> dict[str, Any]:
    """Deploy every contract from `deployer`, grant the OracleHub its roles, and return the manifest.

    Returns a dict with the deployed Ape contract instances under "instances" and the JSON-able
    manifest under "manifest".
    """
    from ape import chain

    p = params or DeployParams()
    admin = p.admin or deployer.address
    guardian = p.guardian or deployer.address
    treasury = p.treasury or deployer.address
    sender = {"sender": deployer}
    deployed: dict[str, Any] = {}
    blocks: dict[str, int] = {}

    def record(name: str, contract: Any) -> Any:
        deployed[name] = contract
        blocks[name] = contract.receipt.block_number if getattr(contract, "receipt", None) else chain.blocks.head.number
        return contract

    token = record("NegawattToken", deployer.deploy(project.NegawattToken, deployer.address, p.token_cap))
    record("DeviceRegistry", deployer.deploy(project.DeviceRegistry))
    staking = record(
        "Staking",
        deployer.deploy(
            project.Staking, deployer.address, guardian, token.address, p.unbonding_delay, p.bond_per_kw
        ),
    )
    market = record(
        "FlexMarket",
        deployer.deploy(
            project.FlexMarket, deployer.address, guardian, p.min_duration, p.max_duration, p.settlement_timeout
        ),
    )
    distributor = record("RewardDistributor", deployer.deploy(project.RewardDistributor, deployer.address, guardian))
    hub = record(
        "OracleHub",
        deployer.deploy(
            project.OracleHub,
            deployer.address,
            guardian,
            (market.address, distributor.address, staking.address, token.address),
            (
                treasury,
                p.threshold,
                p.challenge_window,
                p.challenge_bond,
                p.oracle_slash_amount,
                p.challenger_reward_bps,
                p.min_oracle_bond,
            ),
        ),
    )
    if p.deploy_mock_stablecoin:
        record("MockStablecoin", deployer.deploy(project.MockStablecoin))

    token.grantRole(token.MINTER_ROLE(), hub.address, **sender)
    staking.grantRole(staking.SLASHER_ROLE(), hub.address, **sender)
    staking.grantRole(staking.LOCKER_ROLE(), hub.address, **sender)
    market.grantRole(market.SETTLER_ROLE(), hub.address, **sender)
    distributor.grantRole(distributor.ROOT_SETTER_ROLE(), hub.address, **sender)
    hub.setEmissionBudget(p.emission_budget, **sender)
    if admin != deployer.address:
        for contract in (token, staking, market, distributor, hub):
            admin_role = contract.DEFAULT_ADMIN_ROLE()
            contract.grantRole(admin_role, admin, **sender)
            contract.renounceRole(admin_role, deployer.address, **sender)

    manifest = {
        "chainId": chain.chain_id,
        "network": f"{chain.provider.network.ecosystem.name}:{chain.provider.network.name}",
        "deployedAt": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "deployer": deployer.address,
        "contracts": {
            name: {
                "address": contract.address,
                "block": blocks[name],
                "abi": [entry.model_dump(mode="json", by_alias=True) for entry in contract.contract_type.abi],
            }
            for name, contract in deployed.items()
        },
        "roles": {
            "admin": admin,
            "guardian": guardian,
            "treasury": treasury,
            "minter": [hub.address],
            "slasher": [hub.address],
            "locker": [hub.address],
            "settler": [hub.address],
            "rootSetter": [hub.address],
        },
        "parameters": p.model_dump(exclude={"admin", "guardian", "treasury"}),
    }
    return {"instances": deployed, "manifest": manifest}


def write_manifest(manifest: dict[str, Any], path: Path) -> Path:
    """Write the manifest as JSON (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
