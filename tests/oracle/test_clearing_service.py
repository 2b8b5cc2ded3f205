"""Three oracles (threshold 2) clear a request on anvil over real HTTP (oracle.clearing_service).

Each site's offer reached ONE oracle before the gate; after it, every oracle pulls its peers'
commitments, clears the union with protocol.clearing, signs and publishes. The allocation that lands
on chain is the one the test computes independently from all three offers, and an oracle that
publishes a different allocation (one more offer than the gate allowed) gets no second signature:
its root is never posted. Nodes read their leaf and proof from any oracle.

By hand (target 3,000 W, no history: margin 10 %, cap 3,300 W; ceiling 0.20 mUSD per kWh):
  offers  site A 2,000 W @ 0.05   site B 2,000 W @ 0.08 (+ 1,000 W @ 0.12)   site C 2,000 W @ 0.15
  merit   A 2,000 (total 2,000) -> B 1,300 of its 2,000 (cap reached): clearing price 0.08
  accepted: A 2,000 W, B 1,300 W; C and B's second tranche nothing.
"""

from __future__ import annotations

import httpx
import pytest
from eth_account import Account
from uvicorn_server import serve

from oracle import db
from oracle.allocation_api import add_allocation_routes
from oracle.chain_view import ChainView
from oracle.clearing_service import Clearer, allocation_to_json
from oracle.ingest import Ingestor, IngestSettings
from oracle.ingest_api import create_ingest_app
from protocol import eip712
from protocol.chain import Transactor
from protocol.clearing import Acceptance, Allocation, verify_acceptance
from protocol.fast_verify import RegistryDomainVerifier

GATE_LEAD = 600
PRICES = {"A": (50_000, 0, 0), "B": (80_000, 1_000, 120_000), "C": (150_000, 0, 0)}


@pytest.fixture
def network(devnet_factory, tmp_path, chain_ops_of):
    net = devnet_factory({"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18,
                          "gate_lead_seconds": GATE_LEAD})
    ops = chain_ops_of(net)
    abis = [entry.abi for entry in ops.manifest.contracts.values()]
    admin = Transactor(ops.web3, net.keys[0], abis=abis)
    hub = ops.manifest.contract(ops.web3, "OracleHub")
    oracles, servers = [], []
    for i, key in enumerate(net.keys[3:6]):
        signer = Transactor(ops.web3, key, abis=abis)
        ops.stake(signer, 10**18)
        admin.send(hub.functions.addOracle(signer.address))
        engine = db.make_engine(str(tmp_path / f"oracle-{i}.sqlite"))
        db.init_db(engine)
        view = ChainView(ops.web3, ops.manifest, engine, confirmations=0)
        ingestor = Ingestor(engine, view, RegistryDomainVerifier(ops.chain_id, ops.registry.address),
                            IngestSettings(_env_file=None))
        clearer = Clearer(web3=ops.web3, manifest=ops.manifest, key=bytes.fromhex(key.removeprefix("0x")),
                          engine=engine, chain_view=view, ingestor=ingestor, sync_delay_seconds=10,
                          clock=ops.chain_time)
        app = create_ingest_app(ingestor, clock=ops.chain_time, poll_seconds=None)
        add_allocation_routes(app, clearer)
        url, server, thread = serve(app)
        servers.append((server, thread))
        signer.send(hub.functions.setOracleUrl(url))
        oracles.append((url, clearer, view))
    admin.send(hub.functions.setThreshold(2))
    yield ops, hub, oracles
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def _sync(oracles):
    for _url, _clearer, view in oracles:
        view.sync()


def test_oracles_agree_the_offer_set_and_post_one_allocation(network):
    ops, hub, oracles = network
    sites = {name: ops.register_site() for name in "ABC"}
    devices = {name: ops.register_at_site(sites[name].address, capacity_w=4_000) for name in "ABC"}
    request_id = ops.open_request(start_in=GATE_LEAD + 300, duration=900, target_w=3_000, price_per_kwh=200_000)
    _sync(oracles)
    for (url, _clearer, _view), name in zip(oracles, "ABC"):  # each offer reaches one oracle only
        price, extra, extra_price = PRICES[name]
        offer = ops.commitment(devices[name], request_id, 2_000, price=price, extra_watts=extra,
                               extra_price=extra_price)
        assert httpx.post(f"{url}/v1/commitments", json=ops.commitment_payload(offer)).status_code == 201
    request = oracles[0][2].request(request_id)
    ops.web3.provider.make_request("evm_setNextBlockTimestamp", [request.gate_time + 5])
    ops.mine()
    late = ops.commitment(ops.register_at_site(sites["C"].address), request_id, 1_000, price=10_000)
    _sync(oracles)
    refused = httpx.post(f"{oracles[2][0]}/v1/commitments", json=ops.commitment_payload(late))
    assert refused.status_code == 422 and refused.json()["code"] == "gate_closed"
    ops.web3.provider.make_request("evm_setNextBlockTimestamp", [request.gate_time + 20])
    ops.mine()
    _sync(oracles)

    expected = Allocation(request_id, 80_000, 3_300, 3_300, 1_000, tuple(sorted(
        (Acceptance(devices["A"].address, sites["A"].address, 2_000),
         Acceptance(devices["B"].address, sites["B"].address, 1_300)), key=lambda a: a.device.lower())), ())

    # Oracle C publishes an allocation of its own making: the late offer included, it wins the merit order.
    _url_c, clearer_c, _ = oracles[2]
    forged = Allocation(request_id, 50_000, 3_300, 3_300, 1_000, tuple(sorted(
        (Acceptance(late.device, sites["C"].address, 1_000), Acceptance(devices["A"].address, sites["A"].address,
                                                                          2_000),
         Acceptance(devices["B"].address, sites["B"].address, 300)), key=lambda a: a.device.lower())), ())
    message = {"requestId": request_id, "root": forged.root(), "acceptedW": forged.accepted_w,
               "clearingPrice": forged.clearing_price, "availabilityPrice": 0}
    signature = eip712.sign(clearer_c.key, "Allocation", message, ops.chain_id, hub.address)
    db.put_value(clearer_c.engine, f"allocation:{request_id}",
                 {"allocation": allocation_to_json(forged, 4), "signature": "0x" + signature.hex()})

    url_a, clearer_a, _ = oracles[0]
    assert clearer_a.tick() == 0  # computed and published; no second signature yet
    stored = clearer_a.stored(request_id)
    assert stored.allocation == expected and stored.allocation.root() == expected.root()
    assert clearer_c.tick() == 0  # A's root is not C's: C never reaches the threshold
    assert oracles[1][1].tick() == 1  # B clears the same union, finds A's signature, posts
    event = hub.events  # noqa: F841  (the market records it)
    r = ops.market.functions.getRequest(request_id).call()
    assert r[4] is True  # allocated
    logs = ops.market.events.AllocationPosted().get_logs(from_block=0)
    assert [(e.args.requestId, bytes(e.args.root), e.args.acceptedW, e.args.clearingPrice) for e in logs] == [
        (request_id, expected.root(), 3_300, 80_000)]

    # a node's view: its leaf and proof, checked against the on-chain root
    answer = httpx.get(f"{url_a}/v1/allocations/{request_id}/devices/{devices['B'].address}").json()
    assert answer["acceptedW"] == 1_300 and answer["clearingPrice"] == 80_000
    assert verify_acceptance(expected.root(), request_id, devices["B"].address, 1_300, 80_000,
                             [bytes.fromhex(p[2:]) for p in answer["proof"]])
    missing = httpx.get(f"{url_a}/v1/allocations/{request_id}/devices/{devices['C'].address}")
    assert missing.status_code == 404 and missing.json()["code"] == "not_accepted"
    assert httpx.get(f"{url_a}/v1/allocations/999").json()["code"] == "unknown_allocation"
    # and settlement takes the posted allocation (own copy, root checked)
    _sync(oracles)
    assert clearer_a.settled_allocation(oracles[0][2].request(request_id)) == expected


def test_an_oracle_that_missed_the_allocation_verifies_a_peers_against_the_root(network):
    ops, hub, oracles = network
    site = ops.register_site()
    device = ops.register_at_site(site.address)
    request_id = ops.open_request(start_in=GATE_LEAD + 300, duration=900, target_w=1_000)
    _sync(oracles)
    offer = ops.commitment(device, request_id, 2_000, price=10_000)
    for url, _clearer, _view in oracles[:2]:
        assert httpx.post(f"{url}/v1/commitments", json=ops.commitment_payload(offer)).status_code == 201
    request = oracles[0][2].request(request_id)
    ops.web3.provider.make_request("evm_setNextBlockTimestamp", [request.gate_time + 20])
    ops.mine()
    _sync(oracles)
    oracles[0][1].tick()
    assert oracles[1][1].tick() == 1
    _sync(oracles)
    posted = oracles[2][2].request(request_id)
    late_oracle = oracles[2][1]
    assert late_oracle.stored(request_id) is None
    allocation = late_oracle.settled_allocation(posted)
    assert allocation is not None and allocation.root() == posted.allocation.root
    assert allocation.acceptance(device.address).watts == 1_100
    assert Account.from_key(late_oracle.key).address == late_oracle.address
