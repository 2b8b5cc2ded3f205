"""Shared fixtures for the contract tests: one deployed system per session, reverted between
tests by Ape's isolation, plus signing helpers that use eth-account as nodes and oracles do."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from eth_account import Account

from negawatt.deploy import TOKEN, DeployParams, deploy_all
from protocol import eip712

ORACLE_COUNT = 5


@pytest.fixture(scope="session")
def admin(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def guardian(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def treasury(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def owner(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def other(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def buyer(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def oracle_accounts(accounts):
    return [accounts[6 + i] for i in range(ORACLE_COUNT)]


@pytest.fixture(scope="session")
def params(guardian, treasury):
    return DeployParams(
        guardian=guardian.address,
        treasury=treasury.address,
        min_duration=15 * 60,
        max_duration=4 * 3600,
        settlement_timeout=24 * 3600,
        threshold=3,
        challenge_window=3600,
        challenge_bond=1_000 * TOKEN,
        oracle_slash_amount=5_000 * TOKEN,
        challenger_reward_bps=5_000,
        min_oracle_bond=10_000 * TOKEN,
        unbonding_delay=7 * 24 * 3600,
        bond_per_kw=100 * TOKEN,
    )


@pytest.fixture(scope="session")
def deployment(project, admin, params):
    return deploy_all(project, admin, params)


@pytest.fixture(scope="session")
def token(deployment):
    return deployment["instances"]["NegawattToken"]


@pytest.fixture(scope="session")
def registry(deployment):
    return deployment["instances"]["DeviceRegistry"]


@pytest.fixture(scope="session")
def staking(deployment):
    return deployment["instances"]["Staking"]


@pytest.fixture(scope="session")
def market(deployment):
    return deployment["instances"]["FlexMarket"]


@pytest.fixture(scope="session")
def distributor(deployment):
    return deployment["instances"]["RewardDistributor"]


@pytest.fixture(scope="session")
def hub(deployment):
    return deployment["instances"]["OracleHub"]


@pytest.fixture(scope="session")
def usd(deployment):
    return deployment["instances"]["MockStablecoin"]


@pytest.fixture(scope="session")
def minter(token, admin):
    """Let the admin mint protocol tokens for test balances."""
    token.grantRole(token.MINTER_ROLE(), admin.address, sender=admin)
    return admin


@pytest.fixture(scope="session")
def oracle_set(hub, staking, token, minter, admin, oracle_accounts, params):
    """Five bonded oracles in the hub with threshold 3 (the session's starting state)."""
    for oracle in oracle_accounts:
        token.mint(oracle.address, params.min_oracle_bond * 2, sender=minter)
        token.approve(staking.address, 2**256 - 1, sender=oracle)
        staking.stake(params.min_oracle_bond, sender=oracle)
        hub.addOracle(oracle.address, sender=admin)
    hub.setThreshold(3, sender=admin)
    return oracle_accounts


@dataclass
class Device:
    """A device key held by a test (as a node would hold it)."""

    key: bytes
    address: str


@pytest.fixture
def new_device():
    def make() -> Device:
        acct = Account.create()
        return Device(key=bytes(acct.key), address=acct.address)

    return make


@pytest.fixture(scope="session")
def chain_id(chain):
    return chain.chain_id


@pytest.fixture
def permit(registry, chain_id):
    """Sign a DevicePermit with the device key (eth-account), as `negawatt node register` will."""

    def sign(device: Device, owner_address: str, deadline: int, nonce: int | None = None, key: bytes | None = None,
             kind: int = 0, capacity_w: int = 7_000, zone: int = 1):
        message = {
            "owner": owner_address,
            "device": device.address,
            "kind": kind,
            "capacityW": capacity_w,
            "zone": zone,
            "nonce": registry.nonces(device.address) if nonce is None else nonce,
            "deadline": deadline,
        }
        return eip712.sign(key or device.key, "DevicePermit", message, chain_id, registry.address)

    return sign


@pytest.fixture
def now(chain):
    """The timestamp of the chain's latest block."""

    def read() -> int:
        return chain.pending_timestamp

    return read


@pytest.fixture
def register(registry, permit, now):
    """Register `device` for `owner` with a fresh permit."""

    def do(device: Device, owner_account, kind: int = 0, capacity_w: int = 7_000, zone: int = 1):
        deadline = now() + 3600
        signature = permit(device, owner_account.address, deadline, kind=kind, capacity_w=capacity_w, zone=zone)
        return registry.register(device.address, kind, capacity_w, zone, deadline, signature, sender=owner_account)

    return do


def wall_clock() -> int:
    return int(time.time())


# ---------------------------------------------------------------- settlement helpers

from protocol.merkle import RewardLeaf, RewardsTree  # noqa: E402
from protocol.report import Penalty, RequestPayout, SettlementReport  # noqa: E402

USD = 10**6


@pytest.fixture
def open_request(market, usd, buyer, chain):
    """Open a request from the buyer (escrowing `budget` mUSD) starting `lead` seconds from now."""

    def do(budget: int = 1_000 * USD, lead: int = 600, duration: int = 3600, zone: int = 1,
           target_w: int = 50_000, price: int = 200_000) -> int:
        usd.mint(buyer.address, budget, sender=buyer)
        usd.approve(market.address, budget, sender=buyer)
        start = chain.pending_timestamp + lead
        market.openRequest(zone, start, start + duration, target_w, price, usd.address, budget, sender=buyer)
        return market.requestCount()

    return do


@pytest.fixture
def end_request(market, chain):
    """Move time past a request's end."""

    def do(request_id: int) -> None:
        end = market.getRequest(request_id).end
        if chain.pending_timestamp <= end:
            chain.mine(timestamp=end + 1)

    return do


@pytest.fixture
def make_report(hub, distributor):
    """A report for the next epoch over `leaves`, building on the hub's current root."""

    def do(leaves: list[RewardLeaf], payouts=(), penalties=(), emission: int = 0, epoch: int | None = None,
           previous_root: bytes | None = None):
        tree = RewardsTree(leaves)
        report = SettlementReport(
            epoch=hub.currentEpoch() + 1 if epoch is None else epoch,
            previous_root=bytes(hub.currentRoot()) if previous_root is None else previous_root,
            rewards_root=tree.root,
            payouts=tuple(RequestPayout(*p) if isinstance(p, tuple) else p for p in payouts),
            penalties=tuple(Penalty(*p) if isinstance(p, tuple) else p for p in penalties),
            emission=emission,
        )
        return report, tree

    return do


@pytest.fixture
def sign_report(hub, chain_id):
    """Signatures of `report` by the given Ape test accounts (their keys, through eth-account)."""

    def do(report: SettlementReport, signers) -> list[bytes]:
        return [report.sign(account.private_key, chain_id, hub.address) for account in signers]

    return do


@pytest.fixture
def submit(hub, sign_report, other):
    def do(report: SettlementReport, signers, sender=None):
        signatures = sign_report(report, signers)
        return hub.submitReport(
            report.as_tuple(), report.payout_tuples(), report.penalty_tuples(), signatures, sender=sender or other
        )

    return do


@pytest.fixture
def finalize(hub, chain, other):
    def do(report: SettlementReport, wait: bool = True):
        if wait:
            deadline = hub.pendingReport().challengeDeadline
            if chain.pending_timestamp < deadline:
                chain.mine(timestamp=deadline)
        return hub.finalize(report.as_tuple(), report.payout_tuples(), report.penalty_tuples(), sender=other)

    return do
