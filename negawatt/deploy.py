"""Deploy and wire the negawatt contracts with Ape, and describe the result in a manifest.

Used by `ape run deploy` (scripts/deploy.py), the contract tests and the gas benchmark, so all
three deploy the same system. Needs Ape; the roles never import this module.

The rule for keys (audit M-3): on a local network one key may hold every power, for convenience.
Anywhere else the deployment refuses, unless `allow_unsafe` is set, to leave admin powers without a
NegawattTimelock (of at least MIN_TIMELOCK_DELAY) in front of them, to give two powers to one key
(admin, guardian, arbiter), to keep the treasury on the deployer, to accept a report on one
signature, to let stake leave within a challenge window, or to deploy the mock stablecoin. The hub
roles that move escrow, stake and rewards are bound to the OracleHub once (`bindHub`) and no admin
can grant them again.
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
# The shortest timelock delay a non-local deployment accepts: two days to read a change and leave.
MIN_TIMELOCK_DELAY = 2 * 24 * 3600
LOCAL_NETWORKS = frozenset({"local"})


class UnsafeDeployment(ValueError):
    """The parameters give a single key more power than a public deployment may (see the module rule)."""


class DeployParams(BaseModel):
    """Protocol parameters set at deployment (amounts in protocol-token base units, times in seconds)."""

    model_config = {"extra": "forbid"}

    admin: str | None = Field(None, description="DEFAULT_ADMIN_ROLE holder (with a timelock: its proposer "
                                                "and executor); the deployer if unset")
    guardian: str | None = Field(None, description="GUARDIAN_ROLE holder (pause); the deployer if unset")
    arbiter: str | None = Field(None, description="ARBITER_ROLE holder (resolves challenges); the guardian if unset")
    treasury: str | None = Field(None, description="receives slashed funds; the deployer if unset")
    timelock_delay: int = Field(0, ge=0, le=30 * 24 * 3600,
                                description="seconds of NegawattTimelock in front of the admin; 0: none (local only)")
    allow_unsafe: bool = Field(False, description="deploy outside a local network even with unsafe key settings")
    token_cap: int = Field(1_000_000_000 * TOKEN, gt=0)
    unbonding_delay: int = Field(7 * 24 * 3600, ge=0, le=365 * 24 * 3600)
    bond_per_kw: int = Field(100 * TOKEN, ge=0)
    min_duration: int = Field(15 * 60, gt=0)
    max_duration: int = Field(24 * 3600, gt=0)
    settlement_timeout: int = Field(7 * 24 * 3600, ge=0)
    holdout_bps: int = Field(0, ge=0, le=5_000,
                             description="share of each request's committed sites held out as the control group, "
                                         "basis points (FlexMarket.MAX_HOLDOUT_BPS)")
    gate_lead_seconds: int = Field(0, ge=0, le=7 * 24 * 3600,
                                   description="seconds before a request's start at which commitments close "
                                               "(FlexMarket.MAX_GATE_LEAD_SECONDS)")
    capability_tester: str | None = Field(None, description="the protocol's test budget account: the requests it "
                                          "opens are capability tests (protocol.capability); none: no tests")
    capability_test_bps: int = Field(2_000, ge=0, le=10_000,
                                     description="share of a zone's enrolled sites each capability test draws, bps")
    capability_probation_w: int = Field(1_500, ge=0, le=2**63,
                                        description="the most a site that never passed a capability test may "
                                                    "offer in one request, W")
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

    @field_validator("unbonding_delay")
    @classmethod
    def _unbonding_outlasts_challenges(cls, value: int, info: Any) -> int:
        if value < 3600:
            raise ValueError(f"unbonding_delay ({value}) is below Staking.MIN_UNBONDING_DELAY (3600)")
        return value

    @field_validator("max_duration")
    @classmethod
    def _max_not_below_min(cls, value: int, info: Any) -> int:
        minimum = info.data.get("min_duration")
        if minimum is not None and value < minimum:
            raise ValueError(f"max_duration ({value}) is below min_duration ({minimum})")
        return value


def unsafe_settings(params: DeployParams, deployer: str) -> list[str]:
    """What in `params` gives one key more power than a public deployment may (empty when none)."""
    admin = (params.admin or deployer).lower()
    guardian = (params.guardian or deployer).lower()
    arbiter = (params.arbiter or params.guardian or deployer).lower()
    treasury = (params.treasury or deployer).lower()
    problems = []
    if params.timelock_delay < MIN_TIMELOCK_DELAY:
        problems.append(f"timelock_delay {params.timelock_delay} s is below {MIN_TIMELOCK_DELAY} s: "
                        "admin changes would take effect before users can react")
    if len({admin, guardian, arbiter}) < 3:
        problems.append("admin, guardian and arbiter must be three different keys")
    if treasury == deployer.lower():
        problems.append("the treasury is the deployer key")
    if params.threshold < 2:
        problems.append(f"threshold {params.threshold}: one oracle key alone could settle every request")
    if params.unbonding_delay <= params.challenge_window:
        problems.append(f"unbonding_delay {params.unbonding_delay} s does not outlast the challenge window "
                        f"({params.challenge_window} s): a signer could leave before a challenge reaches it")
    if params.deploy_mock_stablecoin:
        problems.append("deploy_mock_stablecoin is on: anyone can mint the mock stablecoin")
    return problems


def deploy_all(project: Any, deployer: Any, params: DeployParams | None = None) -> dict[str, Any]:
    """Deploy every contract from `deployer`, bind the OracleHub's roles, and return the manifest.

    Raises UnsafeDeployment outside a local network when the parameters are unsafe (see the module
    rule) and `allow_unsafe` is not set. Returns a dict with the deployed Ape contract instances
    under "instances" and the JSON-able manifest under "manifest".
    """
    from ape import chain

    p = params or DeployParams()
    network_name = chain.provider.network.name
    problems = unsafe_settings(p, deployer.address)
    if problems and network_name not in LOCAL_NETWORKS and not p.allow_unsafe:
        raise UnsafeDeployment(f"refusing to deploy on {network_name!r}: " + "; ".join(problems)
                               + " (set allow_unsafe to deploy anyway)")
    admin = p.admin or deployer.address
    guardian = p.guardian or deployer.address
    arbiter = p.arbiter or guardian
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
            arbiter,
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
    for contract in (staking, market, distributor):
        contract.bindHub(hub.address, **sender)
    hub.setEmissionBudget(p.emission_budget, **sender)
    if p.holdout_bps or p.gate_lead_seconds:  # while the deployer is still the market's admin
        market.setMarketRules(p.holdout_bps, p.gate_lead_seconds, **sender)
    timelock = None
    if p.timelock_delay:
        timelock = record("NegawattTimelock",
                          deployer.deploy(project.NegawattTimelock, p.timelock_delay, [admin], [admin]))
    governor = timelock.address if timelock is not None else admin
    if governor != deployer.address:
        for contract in (token, staking, market, distributor, hub):
            admin_role = contract.DEFAULT_ADMIN_ROLE()
            contract.grantRole(admin_role, governor, **sender)
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
            "admin": governor,
            "timelock": timelock.address if timelock is not None else None,
            "timelockProposer": admin if timelock is not None else None,
            "guardian": guardian,
            "arbiter": arbiter,
            "treasury": treasury,
            "minter": [hub.address],
            "slasher": [hub.address],
            "locker": [hub.address],
            "settler": [hub.address],
            "rootSetter": [hub.address],
        },
        "parameters": p.model_dump(exclude={"admin", "guardian", "arbiter", "treasury", "allow_unsafe"}),
    }
    return {"instances": deployed, "manifest": manifest}


def write_manifest(manifest: dict[str, Any], path: Path) -> Path:
    """Write the manifest as JSON (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
