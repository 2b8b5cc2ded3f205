"""Fixtures for the oracle ingest tests: a shared anvil devnet per module, chain operations
(registering devices with a DevicePermit, opening requests with MockStablecoin), signing helpers,
and the ingest service served over real HTTP by uvicorn on a loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import delete
from sqlmodel import Session, func, select
from uvicorn_server import ServedApps, serve  # tests/uvicorn_server.py (tests/ is on sys.path)

from negawatt.localchain import open_funded_request
from oracle import db, meter_store
from oracle.chain_view import ChainView
from oracle.ingest import Ingestor, IngestSettings
from oracle.ingest_api import create_ingest_app
from protocol import eip712
from protocol.chain import Transactor
from protocol.fast_verify import RegistryDomainVerifier
from protocol.messages import encode_commitment
from protocol.meter import Commitment, MeterBatch

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"
# The same deployment parameters as the `devnet` fixture of tests/conftest.py.
DEVNET_PARAMS = {"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18}
INTERVAL = 900


def _root_conftest(config: pytest.Config) -> Any:
    """tests/conftest.py as pytest loaded it (its anvil and deploy helpers)."""
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == ROOT_CONFTEST:
            return plugin
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture(scope="module")
def shared_devnet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One anvil with negawatt deployed for a whole test module (as `devnet`, but started once).

    The ingest tests only add devices and requests, each test with fresh keys and a fresh
    database, so they can share a chain; chain-view tests use the per-test `devnet`.
    """
    root = _root_conftest(request.config)
    port = root.free_port()
    process = root.start_anvil(port)
    url = f"http://127.0.0.1:{port}"
    out = tmp_path_factory.mktemp("devnet") / "manifest.json"
    try:
        root.deploy(url, out, DEVNET_PARAMS)
    except Exception:
        process.kill()
        raise
    yield root.Devnet(url, out, process, root.ANVIL_KEYS)
    process.terminate()
    process.wait(timeout=10)


class ChainOps:
    """Transactions the tests need, sent with web3.py from anvil's funded keys."""

    def __init__(self, devnet: Any):
        self.devnet = devnet
        self.web3 = devnet.web3()
        self.manifest = devnet.manifest()
        self.registry = self.manifest.contract(self.web3, "DeviceRegistry")
        self.market = self.manifest.contract(self.web3, "FlexMarket")
        self.stablecoin = self.manifest.contract(self.web3, "MockStablecoin")
        abis = [entry.abi for entry in self.manifest.contracts.values()]
        self.owner = Transactor(self.web3, devnet.keys[1], abis=abis)
        self.buyer = Transactor(self.web3, devnet.keys[2], abis=abis)

    @property
    def chain_id(self) -> int:
        return self.manifest.chainId

    def chain_time(self) -> int:
        """Timestamp of the latest block."""
        return int(self.web3.eth.get_block("latest")["timestamp"])

    def head(self) -> int:
        return int(self.web3.eth.block_number)

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.web3.provider.make_request("evm_mine", [])

    def register(self, capacity_w: int = 2_000, zone: int = 4, kind: int = 1) -> LocalAccount:
        """A fresh device key, registered to the owner with the device's DevicePermit."""
        device = Account.create()
        deadline = self.chain_time() + 3600
        nonce = self.registry.functions.nonces(device.address).call()
        permit = {"owner": self.owner.address, "device": device.address, "kind": kind, "capacityW": capacity_w,
                  "zone": zone, "nonce": nonce, "deadline": deadline}
        signature = eip712.sign(device.key, "DevicePermit", permit, self.chain_id, self.registry.address)
        self.owner.send(self.registry.functions.register(device.address, kind, capacity_w, zone, deadline, signature))
        return device

    def register_site(self, zone: int = 4, capacity_w: int = 17_250) -> LocalAccount:
        """A fresh site meter (kind 6) registered to the owner."""
        return self.register(capacity_w=capacity_w, zone=zone, kind=6)

    def register_at_site(self, site: str, capacity_w: int = 2_000, kind: int = 1,
                         owner: Transactor | None = None) -> LocalAccount:
        """A fresh device registered at `site` with its DeviceAtSitePermit (sent by the site's owner)."""
        owner = owner or self.owner
        device = Account.create()
        deadline = self.chain_time() + 3600
        nonce = self.registry.functions.nonces(device.address).call()
        permit = {"owner": owner.address, "device": device.address, "site": site, "kind": kind,
                  "capacityW": capacity_w, "nonce": nonce, "deadline": deadline}
        signature = eip712.sign(device.key, "DeviceAtSitePermit", permit, self.chain_id, self.registry.address)
        owner.send(self.registry.functions.registerAtSite(device.address, site, kind, capacity_w, deadline, signature))
        return device

    def deactivate(self, device: str) -> None:
        self.owner.send(self.registry.functions.deactivate(device))

    def reactivate(self, device: str) -> None:
        self.owner.send(self.registry.functions.reactivate(device))

    def stake(self, who: Transactor, amount: int) -> None:
        """Mint `amount` protocol tokens to `who` and bond them (the deployer grants itself MINTER_ROLE)."""
        token, staking = self.manifest.contract(self.web3, "NegawattToken"), self.manifest.contract(self.web3, "Staking")
        admin = Transactor(self.web3, self.devnet.keys[0], abis=[e.abi for e in self.manifest.contracts.values()])
        admin.send(token.functions.grantRole(token.functions.MINTER_ROLE().call(), admin.address))
        admin.send(token.functions.mint(who.address, amount))
        who.send(token.functions.approve(staking.address, amount))
        who.send(staking.functions.stake(amount))

    def transfer(self, device: str, new_owner: Transactor) -> None:
        """Offer `device` to `new_owner`, who accepts it (two steps since audit M-4)."""
        self.owner.send(self.registry.functions.transfer(device, new_owner.address))
        new_owner.send(self.registry.functions.acceptTransfer(device))

    def unregister(self, device: str) -> None:
        self.owner.send(self.registry.functions.unregister(device))

    def open_request(self, zone: int = 4, start_in: int = 3600, duration: int = 900, target_w: int = 5_000,
                     price_per_kwh: int = 200_000, budget: int = 10**9) -> int:
        """Open a request starting `start_in` s after the latest block (mint, approve, openRequest)."""
        start = self.chain_time() + start_in
        return open_funded_request(self.buyer, self.stablecoin, self.market, zone, start, start + duration, target_w,
                                   price_per_kwh, budget)

    def cancel(self, request_id: int) -> None:
        self.buyer.send(self.market.functions.cancel(request_id))

    # signing, as a node does ----------------------------------------------------------------------

    def batch(self, device: LocalAccount, start: int, readings: list[int], sequence: int,
              interval: int = INTERVAL, signer: LocalAccount | None = None) -> MeterBatch:
        """A MeterBatch signed (by `signer`, default the device) with eth-account."""
        unsigned = MeterBatch(device.address, start, interval, tuple(readings), sequence)
        return unsigned.signed((signer or device).key, self.chain_id, self.registry.address)

    def commitment(self, device: LocalAccount, request_id: int, watts: int,
                   signer: LocalAccount | None = None, price: int = 0, extra_watts: int = 0,
                   extra_price: int = 0, availability: int = 0) -> Commitment:
        """A Commitment (an offer: `watts` at `price` per kWh, `extra_watts` at `extra_price`, asking
        `availability` per kW·h) signed (by `signer`, default the device) with eth-account."""
        return Commitment(request_id, device.address, watts, price, extra_watts, extra_price, availability).signed(
            (signer or device).key, self.chain_id, self.registry.address)

    @staticmethod
    def batch_payload(batch: MeterBatch) -> dict[str, Any]:
        """The JSON body of POST /v1/meter-batches."""
        return {"device": batch.device, "start": batch.start, "intervalSeconds": batch.interval_seconds,
                "readings": list(batch.readings), "sequence": batch.sequence,
                "signature": "0x" + batch.signature.hex()}

    @staticmethod
    def commitment_payload(commitment: Commitment) -> dict[str, Any]:
        """The JSON body of POST /v1/commitments."""
        return encode_commitment(commitment)

    @staticmethod
    def past_start(now: float, intervals_back: int) -> int:
        """An interval start `intervals_back` intervals before the one containing `now`."""
        return (int(now) // INTERVAL - intervals_back) * INTERVAL


def stored_counts(engine: Any) -> tuple[int, int, int]:
    """(meter batches, commitments, gaps) in the database."""
    with Session(engine) as session:
        return tuple(session.exec(select(func.count()).select_from(table)).one()  # type: ignore[return-value]
                     for table in (db.SignedBatchRecord, db.CommitmentRecord, db.SequenceGap))


@pytest.fixture(scope="module")
def chain_ops(shared_devnet) -> ChainOps:
    """Chain operations on the module's shared devnet."""
    return ChainOps(shared_devnet)


@pytest.fixture
def devnet_ops(devnet) -> ChainOps:
    """Chain operations on this test's own `devnet`."""
    return ChainOps(devnet)


@pytest.fixture
def chain_ops_of() -> type[ChainOps]:
    """ChainOps itself, for a fixture that builds its own devnet. A test module must not import it
    with `from conftest import ...`: every test folder has a conftest.py, and that name resolves to
    whichever one pytest loaded last (tests/vtn's, say), not to this one."""
    return ChainOps


class Clock:
    """A settable clock (unix seconds) the service reads 'now' from; follows real time until set."""

    def __init__(self) -> None:
        self.fixed: float | None = None

    def __call__(self) -> float:
        return time.time() if self.fixed is None else self.fixed


@dataclass
class Service:
    """An ingest service running in this process, reached over HTTP."""

    url: str
    client: httpx.Client
    clock: Clock
    engine: Any
    ingestor: Ingestor
    view: ChainView
    server: uvicorn.Server
    thread: threading.Thread

    def counts(self) -> tuple[int, int, int]:
        """(meter batches, commitments, gaps) stored."""
        return stored_counts(self.engine)


@pytest.fixture
def serve_app() -> Callable[[Any], str]:
    """Serve an ASGI app over HTTP on loopback for this test; returns its base URL."""
    served = ServedApps()
    yield served
    served.stop_all()


def start_ingest_service(devnet: Any, database: Path, rules: IngestSettings | None = None,
                         confirmations: int = 0, poll_seconds: float | None = None) -> Service:
    """An ingest service on `devnet` storing into the SQLite file `database`, served over HTTP."""
    web3, manifest = devnet.web3(), devnet.manifest()
    engine = db.make_engine(str(database))
    db.init_db(engine)
    view = ChainView(web3, manifest, engine, confirmations=confirmations)
    verifier = RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry"))
    ingestor = Ingestor(engine, view, verifier, rules or IngestSettings(_env_file=None))
    clock = Clock()
    url, server, thread = serve(create_ingest_app(ingestor, clock=clock, poll_seconds=poll_seconds))
    return Service(url, httpx.Client(base_url=url, timeout=30), clock, engine, ingestor, view, server, thread)


def stop_ingest_service(service: Service) -> None:
    """Stop the server and release the database."""
    service.client.close()
    service.server.should_exit = True
    service.thread.join(timeout=10)
    service.engine.dispose()


@pytest.fixture
def make_ingest_service(tmp_path) -> Callable[..., Service]:
    """Start ingest services on a devnet (a fresh SQLite file per call); stopped at teardown."""
    started: list[Service] = []

    def make(devnet: Any, rules: IngestSettings | None = None, database: Path | None = None,
             confirmations: int = 0, poll_seconds: float | None = None) -> Service:
        path = database or tmp_path / f"ingest-{len(started)}.sqlite"
        started.append(start_ingest_service(devnet, path, rules, confirmations, poll_seconds))
        return started[-1]

    yield make
    for service in started:
        stop_ingest_service(service)


@pytest.fixture(scope="module")
def _module_ingest_service(shared_devnet, tmp_path_factory) -> Service:
    service = start_ingest_service(shared_devnet, tmp_path_factory.mktemp("ingest") / "ingest.sqlite")
    yield service
    stop_ingest_service(service)


@pytest.fixture
def ingest_service(_module_ingest_service) -> Service:
    """An ingest service with the default rules on the module's shared devnet, with an empty store.

    One server per module (starting uvicorn per test costs more than the tests); its stored
    messages are deleted and its clock reset before each test.
    """
    service = _module_ingest_service
    with db.write_transaction(service.engine, "reset") as session:
        for table in (db.SignedBatchRecord, db.MeterDayRecord, db.MeterIdRecord, db.CommitmentRecord, db.SequenceGap):
            session.execute(delete(table))
    meter_store.forget_ids(service.engine)
    service.clock.fixed = None
    return service
