"""Fixtures for the API tests: chain operations on anvil that produce every kind of negawatt event
(devices, requests, stake, a k-of-n signed report, challenge, finalization, claims), an oracle
publication server (the oracle's own report store and publication routes over real HTTP), and the
API itself served by uvicorn on loopback."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from uvicorn_server import ServedApps, serve  # tests/uvicorn_server.py (tests/ is on sys.path)
from waiting import wait_for  # noqa: F401  (the API tests import it from here)

from negawatt.localchain import open_funded_request
from protocol import eip712
from protocol.chain import Transactor
from protocol.merkle import RewardLeaf, RewardsTree
from protocol.report import RequestPayout, SettlementReport

PARAMS = {"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18}


@pytest.fixture
def serve_app():
    """Serve ASGI apps on loopback for this test; each is stopped (lifespan shutdown) at teardown."""
    served = ServedApps()
    yield served
    served.stop_all()


@dataclass
class SubmittedReport:
    """A report this test submitted, with the document an oracle would publish for it."""

    report: SettlementReport
    digest: str
    body: dict[str, Any]
    tree: RewardsTree


class Chain:
    """Transactions that produce the negawatt events, sent with web3.py from anvil's funded keys."""

    def __init__(self, devnet: Any):
        self.devnet = devnet
        self.web3 = devnet.web3()
        self.manifest = devnet.manifest()
        abis = [entry.abi for entry in self.manifest.contracts.values()]
        c = lambda name: self.manifest.contract(self.web3, name)
        self.registry, self.market, self.hub = c("DeviceRegistry"), c("FlexMarket"), c("OracleHub")
        self.staking, self.token, self.distributor = c("Staking"), c("NegawattToken"), c("RewardDistributor")
        self.stablecoin = c("MockStablecoin")
        self.admin = Transactor(self.web3, devnet.keys[0], abis=abis)
        self.owner = Transactor(self.web3, devnet.keys[1], abis=abis)
        self.buyer = Transactor(self.web3, devnet.keys[2], abis=abis)
        self.oracle_keys = devnet.keys[3:5]
        self.oracles = [Transactor(self.web3, key, abis=abis) for key in self.oracle_keys]
        self.other = Transactor(self.web3, devnet.keys[6], abis=abis)
        self.abis = abis

    @property
    def chain_id(self) -> int:
        return self.manifest.chainId

    def head(self) -> int:
        return int(self.web3.eth.block_number)

    def now(self) -> int:
        return int(self.web3.eth.get_block("latest")["timestamp"])

    def rpc(self, method: str, params: list) -> Any:
        response = self.web3.provider.make_request(method, params)
        if "error" in response:
            raise RuntimeError(response["error"])
        return response["result"]

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.rpc("evm_mine", [])

    def warp(self, seconds: int) -> None:
        self.rpc("evm_increaseTime", [seconds])
        self.rpc("evm_mine", [])

    # devices and stake ----------------------------------------------------------------------------

    def register(self, capacity_w: int = 2_000, zone: int = 4, kind: int = 1,
                 owner: Transactor | None = None) -> LocalAccount:
        owner = owner or self.owner
        device = Account.create()
        deadline = self.now() + 3600
        nonce = self.registry.functions.nonces(device.address).call()
        permit = {"owner": owner.address, "device": device.address, "kind": kind, "capacityW": capacity_w,
                  "zone": zone, "nonce": nonce, "deadline": deadline}
        signature = eip712.sign(device.key, "DevicePermit", permit, self.chain_id, self.registry.address)
        owner.send(self.registry.functions.register(device.address, kind, capacity_w, zone, deadline, signature))
        return device

    def stake(self, who: Transactor, amount: int) -> None:
        self.mint_protocol(who.address, amount)
        who.send(self.token.functions.approve(self.staking.address, amount))
        who.send(self.staking.functions.stake(amount))

    def mint_protocol(self, to: str, amount: int) -> None:
        role = self.token.functions.MINTER_ROLE().call()
        if not self.token.functions.hasRole(role, self.admin.address).call():
            self.admin.send(self.token.functions.grantRole(role, self.admin.address))
        self.admin.send(self.token.functions.mint(to, amount))

    # requests ---------------------------------------------------------------------------------------

    def open_request(self, zone: int = 4, start_in: int = 120, duration: int = 120, target_w: int = 5_000,
                     price_per_kwh: int = 200_000, budget: int = 10**9) -> int:
        start = self.now() + start_in
        return open_funded_request(self.buyer, self.stablecoin, self.market, zone, start, start + duration, target_w,
                                   price_per_kwh, budget)

    # oracles and reports ----------------------------------------------------------------------------

    def add_oracles(self, urls: list[str]) -> None:
        """Bond the two oracle keys, add them to the hub, publish their URLs, threshold 2."""
        for oracle, url in zip(self.oracles, urls):
            self.stake(oracle, 10**18)
            self.admin.send(self.hub.functions.addOracle(oracle.address))
            oracle.send(self.hub.functions.setOracleUrl(url))
        self.admin.send(self.hub.functions.setThreshold(len(self.oracles)))

    def make_report(self, ledger: dict[tuple[str, str], int], payouts: list[tuple[int, int]],
                    devices: dict[int, list[dict]] | None = None, emission: int = 0) -> SubmittedReport:
        """A report over a cumulative `ledger` for the hub's next epoch, with the oracle's document."""
        leaves = [RewardLeaf(account, token, amount) for (account, token), amount in ledger.items()]
        tree = RewardsTree(leaves)
        report = SettlementReport(epoch=self.hub.functions.currentEpoch().call() + 1,
                                  previous_root=bytes(self.hub.functions.currentRoot().call()),
                                  rewards_root=tree.root, payouts=tuple(RequestPayout(*p) for p in payouts),
                                  penalties=(), emission=emission)
        digest = "0x" + report.digest(self.chain_id, self.hub.address).hex()
        body = {
            "digest": digest, "epoch": report.epoch, "previousRoot": "0x" + report.previous_root.hex(),
            "rewardsRoot": "0x" + report.rewards_root.hex(), "requestsHash": "0x" + report.requests_hash.hex(),
            "penaltiesHash": "0x" + report.penalties_hash.hex(), "emission": str(emission),
            "payouts": [{"requestId": r, "payout": str(p)} for r, p in payouts], "penalties": [],
            "ledger": [{"account": a, "token": t, "amount": str(v)} for (a, t), v in ledger.items()],
            "requests": [{"requestId": r, "paymentToken": self.stablecoin.address, "escrow": str(10**9),
                          "payout": str(p), "refund": str(10**9 - p), "scaledToEscrow": False,
                          "deliveredWh": sum(d["deliveredWh"] for d in (devices or {}).get(r, [])),
                          "devices": (devices or {}).get(r, []), "baselines": []} for r, p in payouts],
            "emissionScaled": False,
        }
        return SubmittedReport(report, digest, body, tree)

    def submit(self, submitted: SubmittedReport) -> None:
        report = submitted.report
        signatures = [report.sign(key, self.chain_id, self.hub.address) for key in self.oracle_keys]
        self.oracles[0].send(self.hub.functions.submitReport(report.as_tuple(), report.payout_tuples(),
                                                             report.penalty_tuples(), signatures))

    def finalize(self, submitted: SubmittedReport) -> None:
        deadline = self.hub.functions.pendingReport().call()[2]
        if self.now() < deadline:
            self.warp(deadline - self.now() + 1)
        report = submitted.report
        self.other.send(self.hub.functions.finalize(report.as_tuple(), report.payout_tuples(),
                                                    report.penalty_tuples()))

    def claim(self, who: Transactor, account: str, token: str, amount: int, proof: list[str]) -> None:
        who.send(self.distributor.functions.claim(account, token, amount, [bytes.fromhex(p[2:]) for p in proof]))


def device_result(device: str, owner: str, delivered_wh: int, payout: int) -> dict[str, Any]:
    """A per-device result as the oracle's report document carries it."""
    return {"device": device, "owner": owner, "committedWh": delivered_wh, "deliveredWh": delivered_wh,
            "ratioBps": 10_000, "factorBps": 10_000, "payableWh": delivered_wh, "payout": str(payout),
            "ownerPayout": str(payout), "fee": "0", "emission": "0", "penalty": "0", "eligible": True,
            "reasons": [], "flags": []}


class OraclePublisher:
    """The oracle's publication routes (oracle.attestation_api) over its report store, served on loopback."""

    def __init__(self, database: str, serve_app: Any):
        from fastapi import FastAPI
        from sqlalchemy import create_engine

        from oracle.attestation_api import add_attestation_routes
        from oracle.proposal_gate import OracleSet, ProposalGate
        from oracle.report_store import ReportStore

        self.store = ReportStore(create_engine(f"sqlite:///{database}"))
        app = FastAPI()
        # only the publication routes are called: the proposal gate (of an empty oracle set) is never asked
        gate = ProposalGate(31337, "0x" + "00" * 20, OracleSet(lambda: ()), time.time)
        add_attestation_routes(app, SimpleNamespace(store=self.store), gate=gate)
        self.url = serve_app(app)

    def publish(self, body: dict[str, Any], status: str = "final") -> None:
        from protocol.report_document import ReportDocument

        self.store.save(ReportDocument.parse(body), status)


@pytest.fixture
def chain(devnet_factory) -> Chain:
    """A fresh anvil + deployment with chain operations."""
    return Chain(devnet_factory(PARAMS))


def http(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30)


@pytest.fixture
def start_api(serve_app, tmp_path):
    """Start the API (migrations, indexer thread, uvicorn on loopback) for a chain; returns (url, app)."""

    def start(chain: Chain, database: str | None = None, **overrides: Any) -> tuple[str, Any]:
        from api.service import build_app
        from api.settings import ApiSettings

        options = {"manifest": chain.devnet.manifest_path, "rpc_url": chain.devnet.rpc_url,
                   "database_url": database or str(tmp_path / "api.sqlite"), "confirmations": 0,
                   "poll_seconds": 0.1, "rate_limit_per_second": 10_000, "rate_limit_burst": 10_000, **overrides}
        app = build_app(ApiSettings(_env_file=None, **options))
        return serve_app(app), app

    return start


def indexed_to_head(client: httpx.Client, chain: Chain, timeout: float = 30.0) -> dict:
    """Wait until the API reports the chain head as indexed; returns the ready body."""
    def done():
        body = client.get("/v1/ready").json()
        return body if body.get("indexed_block") == chain.head() and body.get("head_block") == chain.head() else None
    return wait_for(done, timeout, "the indexer to reach the head")


# ---------------------------------------------------------------------- a served synthetic mirror

OWNER_KEY = "0x" + "11" * 32
OTHER_KEY = "0x" + "22" * 32


@dataclass
class Mirror:
    """A mirror filled with synthetic events (bench.api.populate) plus devices of two keyed owners."""

    url: str
    database_url: str
    ids: dict[str, Any]
    owner: LocalAccount
    other: LocalAccount
    owner_devices: list[str]
    other_devices: list[str]


def add_keyed_devices(database_url: str, owner: str, count: int, tag: str, block: int = 10**6) -> list[str]:
    """Register `count` devices to `owner` through the projection."""
    from api.db import make_engine
    from api.events import ChainLog
    from api.projection import Projection

    devices = [Account.from_key(keccak_key(f"{tag}:{i}")).address for i in range(count)]
    logs = [ChainLog(block, "0x" + "ab" * 32, i, "0x" + "cd" * 32, "DeviceRegistry", "DeviceRegistered",
                     {"device": d, "owner": owner, "kind": 0, "capacityW": 7_400, "zone": 99}) for i, d in enumerate(devices)]
    engine = make_engine(database_url)
    with engine.begin() as connection:
        Projection(connection).apply(logs)
    engine.dispose()
    return devices


def keccak_key(seed: str) -> bytes:
    from eth_utils import keccak

    return keccak(seed.encode())


SIWE_DOMAIN = "app.negawatt.test"  # the configured SIWE domain of the mirror apps (not their loopback Host)


def mirror_app(database_url: str, rate: float = 10_000, burst: int = 10_000, domains: list[str] | None = None,
               max_body_bytes: int = 16 * 1024, web_dir=None):
    """The API app on an existing mirror, without an indexer; SIWE messages must name `domains`."""
    from api.app import create_app, make_context
    from api.db import make_engine

    context = make_context(make_engine(database_url), 31337, None, siwe_domains=domains or [SIWE_DOMAIN],
                           registry="0x" + "5f" * 20)
    return create_app(context, rate_limit_per_second=rate, rate_limit_burst=burst, max_body_bytes=max_body_bytes,
                      web_dir=web_dir)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A synthetic mirror (600 devices, 40 settled requests) served on loopback for the module."""
    from bench.api import populate

    folder = tmp_path_factory.mktemp("mirror")
    database_url = f"sqlite:///{folder / 'api.sqlite'}"
    ids = populate(database_url, devices=600, requests=40)
    owner, other = Account.from_key(OWNER_KEY), Account.from_key(OTHER_KEY)
    owner_devices = add_keyed_devices(database_url, owner.address, 3, "owner")
    other_devices = add_keyed_devices(database_url, other.address, 1, "other", block=10**6 + 1)
    url, server, thread = serve(mirror_app(database_url))
    yield Mirror(url, database_url, ids, owner, other, owner_devices, other_devices)
    server.should_exit = True
    thread.join(timeout=15)
