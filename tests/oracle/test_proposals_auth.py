"""Who may make an oracle compute and sign (issue 12, HTTP item 5), over real HTTP on anvil.

The oracle under test is a real Attestor with its chain view on the module's devnet, served by
uvicorn with the proposal gate reading the OracleHub's oracle set. Two bonded oracles (A and B)
are in the set; an outsider is not. Each test performs an attack and shows it fails: an unsigned
proposal (401), one signed by a key outside the set (403), one whose signature is not the claimed
oracle's (401), a recorded proposal replayed after its freshness window (401), a flood beyond the
client's and the oracle's buckets (429 with Retry-After) while another member still gets through.
A correctly signed proposal from a member is computed and answered, including one sent by the
proposing Attestor's own sender (`Attestor._post` signs).
"""

from __future__ import annotations

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from uvicorn_server import serve

from oracle import db
from oracle.attestation import Attestor
from oracle.attestation_api import add_attestation_routes
from oracle.baselines import HIGH_X_OF_Y, BaselineSpec
from oracle.chain_view import ChainView
from oracle.epoch import OracleEconomics
from oracle.ingest import Ingestor, IngestSettings
from oracle.ingest_api import create_ingest_app
from oracle.proposal_gate import OracleSet, ProposalGate, ProposalGateSettings
from oracle.settlement import SettlementParams
from protocol.chain import Transactor
from protocol.clock import ChainClock
from protocol.fast_verify import RegistryDomainVerifier
from protocol.proposals import HEADER_ISSUED_AT, HEADER_ORACLE, HEADER_SIGNATURE, sign_proposal, typed_proposal

ROOT = "0x" + "00" * 32
MAX_AGE = 120
LIMITS = dict(max_age_seconds=MAX_AGE, max_ahead_seconds=30, client_rate=0.01, client_burst=6, peer_rate=0.01,
              peer_burst=3, total_rate=0.01, total_burst=50)


class Oracle:
    """The oracle under test and the chain it runs on."""

    def __init__(self, ops, app, attestor, url, members, outsider, request_id):
        self.ops, self.app, self.attestor, self.url = ops, app, attestor, url
        self.a, self.b = members
        self.outsider = outsider
        self.request_id = request_id

    def now(self) -> int:
        return int(self.attestor.clock())

    def body(self, request_ids=None) -> dict:
        return {"epoch": 1, "previousRoot": ROOT, "requestIds": request_ids or [self.request_id]}

    def headers(self, key, body: dict, issued_at: int | None = None) -> dict[str, str]:
        manifest = self.ops.manifest
        return sign_proposal(key.key, manifest.chainId, manifest.address("OracleHub"), body["epoch"],
                             body["previousRoot"], body["requestIds"], self.now() if issued_at is None else issued_at)

    def post(self, body: dict, headers: dict | None = None, local_address: str = "127.0.0.1") -> httpx.Response:
        with httpx.Client(transport=httpx.HTTPTransport(local_address=local_address), timeout=30) as client:
            return client.post(f"{self.url}/v1/proposals", json=body, headers=headers or {})


@pytest.fixture(scope="module")
def oracle(chain_ops, tmp_path_factory):
    ops = chain_ops
    web3, manifest = ops.web3, ops.manifest
    abis = [entry.abi for entry in manifest.contracts.values()]
    admin = Transactor(web3, ops.devnet.keys[0], abis=abis)
    token, staking = manifest.contract(web3, "NegawattToken"), manifest.contract(web3, "Staking")
    hub = manifest.contract(web3, "OracleHub")
    admin.send(token.functions.grantRole(token.functions.MINTER_ROLE().call(), admin.address))
    members = []
    for key in (ops.devnet.keys[3], ops.devnet.keys[5]):
        member = Transactor(web3, key, abis=abis)
        admin.send(token.functions.mint(member.address, 10**18))
        member.send(token.functions.approve(staking.address, 10**18))
        member.send(staking.functions.stake(10**18))
        admin.send(hub.functions.addOracle(member.address))
        members.append(Account.from_key(key))
    request_id = ops.open_request(start_in=60, duration=60)
    web3.provider.make_request("evm_increaseTime", [300])  # the request has ended
    web3.provider.make_request("evm_mine", [])

    engine = db.make_engine(str(tmp_path_factory.mktemp("auth") / "oracle.sqlite"))
    db.init_db(engine)
    view = ChainView(web3, manifest, engine)
    ingestor = Ingestor(engine, view, RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry")),
                        IngestSettings(_env_file=None))
    clock = ChainClock(web3, refresh_seconds=0)
    params = SettlementParams(fee_account=hub.functions.treasury().call(), protocol_token=token.address,
                              interval_seconds=900)
    economics = OracleEconomics(params, BaselineSpec(HIGH_X_OF_Y))
    attestor = Attestor(web3=web3, manifest=manifest, key=ops.devnet.keys[4], engine=engine, chain_view=view,
                        ingestor=ingestor, economics=economics, clock=clock)
    app = create_ingest_app(ingestor, clock=clock)
    add_attestation_routes(app, attestor)
    url, server, thread = serve(app)
    yield Oracle(ops, app, attestor, url, members, Account.create(), request_id)
    server.should_exit = True
    thread.join(timeout=10)
    attestor.http.close()
    engine.dispose()


@pytest.fixture
def gate(oracle) -> ProposalGate:
    """A fresh gate (empty buckets) with small limits, reading the OracleHub's set, for each test."""
    manifest, attestor = oracle.ops.manifest, oracle.attestor
    fresh = ProposalGate(manifest.chainId, attestor.hub.address, OracleSet.of_hub(attestor.hub), attestor.clock,
                         ProposalGateSettings(_env_file=None, **LIMITS))
    oracle.app.state.proposal_gate = fresh
    return fresh


def test_a_member_s_signed_proposal_is_computed_and_answered(oracle, gate):
    body = oracle.body()
    response = oracle.post(body, oracle.headers(oracle.a, body))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["oracle"] == oracle.attestor.address
    assert oracle.attestor.store.get(answer["digest"]) is not None  # computed and stored


def test_the_proposing_attestor_signs_what_it_sends(oracle, gate):
    manifest = oracle.ops.manifest
    proposer = Attestor(web3=oracle.ops.web3, manifest=manifest, key=oracle.a.key, engine=oracle.attestor.engine,
                        chain_view=oracle.attestor.chain_view, ingestor=None,  # type: ignore[arg-type]
                        economics=oracle.attestor.economics, clock=oracle.attestor.clock)
    try:
        answer = proposer._post(f"{oracle.url}/v1/proposals", oracle.body())
    finally:
        proposer.http.close()
    assert answer is not None and answer["oracle"] == oracle.attestor.address


def test_an_unsigned_proposal_is_401(oracle, gate):
    response = oracle.post(oracle.body())
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "unauthenticated"
    assert "www-authenticate" in response.headers


def test_a_key_outside_the_oracle_set_is_403(oracle, gate):
    body = oracle.body()
    response = oracle.post(body, oracle.headers(oracle.outsider, body))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "not_an_oracle"


def test_an_outsider_claiming_a_member_s_address_is_401(oracle, gate):
    body = oracle.body()
    forged = {**oracle.headers(oracle.outsider, body), HEADER_ORACLE: oracle.a.address}
    response = oracle.post(body, forged)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "bad_signature"


def test_a_signature_over_other_requests_is_401(oracle, gate):
    headers = oracle.headers(oracle.a, oracle.body([oracle.request_id + 1000]))
    response = oracle.post(oracle.body(), headers)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "bad_signature"


def test_a_recorded_proposal_replayed_after_its_window_is_refused(oracle, gate):
    body = oracle.body()
    recorded = oracle.headers(oracle.a, body)
    assert oracle.post(body, recorded).status_code == 200
    web3 = oracle.ops.web3
    web3.provider.make_request("evm_increaseTime", [MAX_AGE + 10])  # time passes on the chain
    web3.provider.make_request("evm_mine", [])
    response = oracle.post(body, recorded)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "stale_proposal"
    # and a proposal dated ahead of the window is no way around it
    ahead = oracle.headers(oracle.a, body, issued_at=oracle.now() + 600)
    assert oracle.post(body, ahead).json()["code"] == "stale_proposal"
    assert oracle.post(body, oracle.headers(oracle.a, body)).status_code == 200  # a fresh one passes
    assert ahead[HEADER_ISSUED_AT] != recorded[HEADER_ISSUED_AT]


def test_a_member_s_flood_is_429_while_another_member_gets_through(oracle, gate):
    body = oracle.body()
    statuses = [oracle.post(body, oracle.headers(oracle.a, body)).status_code for _ in range(LIMITS["peer_burst"] + 2)]
    assert statuses[:LIMITS["peer_burst"]] == [200] * LIMITS["peer_burst"]
    limited = oracle.post(body, oracle.headers(oracle.a, body), local_address="127.0.0.2")
    assert limited.status_code == 429 and statuses[-1] == 429
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert int(limited.headers["retry-after"]) >= 1
    response = oracle.post(body, oracle.headers(oracle.b, body), local_address="127.0.0.2")
    assert response.status_code == 200, response.text  # B's own bucket


def test_a_garbage_flood_from_one_address_is_429_while_a_member_elsewhere_gets_through(oracle, gate):
    garbage = [oracle.post({"epoch": "x"}, {"content-type": "application/json"}, local_address="127.0.0.3")
               for _ in range(LIMITS["client_burst"] + 3)]
    assert {r.status_code for r in garbage[:LIMITS["client_burst"]]} == {401}
    assert [r.status_code for r in garbage[LIMITS["client_burst"]:]] == [429] * 3
    assert all(int(r.headers["retry-after"]) >= 1 for r in garbage[LIMITS["client_burst"]:])
    body = oracle.body()
    response = oracle.post(body, oracle.headers(oracle.b, body), local_address="127.0.0.4")
    assert response.status_code == 200, response.text


def test_the_proposal_signature_is_standard_eip712():
    """What a wallet's eth_signTypedData_v4 would sign: eth-account recovers the proposer from the
    headers sign_proposal makes, over the same typed document."""
    key, hub = Account.create(), "0x" + "4b" * 20
    headers = sign_proposal(key.key, 31337, hub, 7, "0x" + "ab" * 32, [5, 1, 9], 1_700_000_000)
    document = typed_proposal(31337, hub, key.address, 7, "0x" + "ab" * 32, [5, 1, 9], 1_700_000_000)
    signature = bytes.fromhex(headers[HEADER_SIGNATURE][2:])
    assert Account.recover_message(encode_typed_data(full_message=document), signature=signature) == key.address
    other = typed_proposal(31337, hub, key.address, 7, "0x" + "ab" * 32, [1, 5, 9], 1_700_000_000)
    assert Account.recover_message(encode_typed_data(full_message=other), signature=signature) != key.address
