"""schemathesis against the oracle's HTTP app (issue 12, HTTP items 7 and 12).

The real oracle app (ingest routes, attestation and publication routes, the proposal gate reading
the OracleHub's oracle set) runs over uvicorn on the module's devnet with one request and one
device registered; schemathesis 4 fetches /openapi.json and runs every check with a bounded number
of examples and a fixed seed. The run fails on any 5xx, any status not declared, any response
not matching its schema. Besides, a fixed set of bad inputs is sent and each answered status must
be declared for its route (the document is true without the fuzzer's luck).

Two checks are configured, not disabled: positive_data_acceptance's accepted statuses on five
operations, and negative_data_rejection's on the bulk upload (POST /v1/meter-batches/bulk), whose
broken lines are refused one by one inside its 200 answer, each with the problem the single post
gives (tests/oracle/test_bulk_ingest_api.py checks those answers; tests/oracle/schemathesis_ndjson.py
serialises its NDJSON body). The fuzzer holds no device key, so on the two ingest posts a body valid by the schema
still carries a signature that is not a registered device's: the oracle answers 400
bad_signature, 403 unknown_device or 422 (a rule), the correct answer to such data. On the two
device queries, OpenAPI cannot express an EIP-55 checksum, so a generated mixed-case address
that fails it is rightly a 400. (For /v1/proposals the fuzzer cannot sign either; its proposals
get 401/403, which the check already accepts.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
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
from protocol.clock import ChainClock
from protocol.fast_verify import RegistryDomainVerifier

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = '''
# A body beyond a route's cap is refused unread with 413, a correct rejection of invalid data that
# schemathesis' default list lacks (its defaults otherwise kept).
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

# The ingest posts: the fuzzer holds no device key (see the module docstring).
[[operations]]
include-name = "POST /v1/meter-batches"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "403", "409", "422"]

# The bulk upload: each line is judged as the single post judges its body, so a line the fuzzer breaks
# is refused inside a 200 answer (its own 4xx problem on its line), and an empty line or an empty body
# refuses the whole upload (400). The hooks module puts the generated body on the wire.
[[operations]]
include-name = "POST /v1/meter-batches/bulk"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "413"]
checks.negative_data_rejection.expected-statuses = ["200", "400", "413"]

[[operations]]
include-name = "POST /v1/commitments"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "403", "409", "422"]

# A device query: OpenAPI cannot express EIP-55, so a generated mixed-case address that matches the
# documented pattern but not its checksum is (rightly) a 400.
[[operations]]
include-name = "GET /v1/meter-batches"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]

[[operations]]
include-name = "GET /v1/gaps"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]
'''


@pytest.fixture(scope="module")
def oracle_url(chain_ops, tmp_path_factory):
    ops = chain_ops
    web3, manifest = ops.web3, ops.manifest
    ops.register()
    ops.open_request()
    engine = db.make_engine(str(tmp_path_factory.mktemp("fuzz") / "oracle.sqlite"))
    db.init_db(engine)
    view = ChainView(web3, manifest, engine)
    view.sync()  # so GET /v1/ready answers 200 (a 503 is a server error to schemathesis; test_oracle_ops tests it)
    ingestor = Ingestor(engine, view, RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry")),
                        IngestSettings(_env_file=None))
    clock = ChainClock(web3)
    hub = manifest.contract(web3, "OracleHub")
    economics = OracleEconomics(SettlementParams(fee_account=hub.functions.treasury().call(),
                                                 protocol_token=manifest.address("NegawattToken"),
                                                 interval_seconds=900), BaselineSpec(HIGH_X_OF_Y))
    attestor = Attestor(web3=web3, manifest=manifest, key=ops.devnet.keys[4], engine=engine, chain_view=view,
                        ingestor=ingestor, economics=economics, clock=clock)
    app = create_ingest_app(ingestor, clock=clock)
    # The fuzzer is one client sending hundreds of requests: a client bucket wide enough that its
    # proposals reach the checks behind it (401/403/400); 429 stays declared and tested elsewhere.
    gate = ProposalGate(manifest.chainId, hub.address, OracleSet.of_hub(hub), clock,
                        ProposalGateSettings(_env_file=None, client_rate=1_000, client_burst=10_000))
    add_attestation_routes(app, attestor, gate)
    url, server, thread = serve(app)
    yield url
    server.should_exit = True
    thread.join(timeout=10)
    attestor.http.close()
    engine.dispose()


BAD_INPUTS = [
    ("GET", "/v1/reports/0", {}), ("GET", "/v1/reports/18446744073709551621", {}), ("GET", "/v1/reports/abc", {}),
    ("GET", "/v1/reports/7", {}), ("GET", "/v1/reports/by-digest/0x12", {}),
    ("GET", "/v1/reports/by-digest/0x" + "ab" * 32, {}), ("GET", "/v1/rewards/0x12%0A", {}),
    ("GET", "/v1/meter-batches?device=nope", {}), ("GET", "/v1/meter-batches?device=0x" + "11" * 20 + "&limit=0", {}),
    ("GET", "/v1/commitments?request_id=-1", {}), ("GET", "/v1/gaps?open=maybe", {}),
    ("POST", "/v1/proposals", {"json": {"epoch": 1}}),
    ("POST", "/v1/proposals", {"json": {"epoch": 1}, "headers": {"X-Negawatt-Oracle": "0x" + "11" * 20,
                                                                  "X-Negawatt-Issued-At": "1",
                                                                  "X-Negawatt-Signature": "0x" + "22" * 65}}),
    ("POST", "/v1/meter-batches", {"content": b"{"}), ("POST", "/v1/meter-batches", {"content": b"x" * 70_000}),
    ("POST", "/v1/meter-batches/bulk", {"content": b""}), ("POST", "/v1/meter-batches/bulk", {"content": b"{}\n\n{}"}),
    ("POST", "/v1/commitments", {"json": {"requestId": 1, "device": "0x" + "11" * 20, "watts": 5,
                                          "signature": "0x" + "22" * 65}}),
]


def test_every_status_sent_for_bad_input_is_declared(oracle_url):
    document = httpx.get(f"{oracle_url}/openapi.json").json()
    templates = {path: path.split("/") for path in document["paths"]}

    def operation(method: str, path: str) -> dict:
        parts = path.split("?")[0].split("/")
        literal = [p for p, t in templates.items() if t == parts]
        matched = literal or [p for p, t in templates.items() if len(t) == len(parts)
                              and all(a == b or b.startswith("{") for a, b in zip(parts, t))]
        return document["paths"][matched[0]][method.lower()]

    seen = set()
    with httpx.Client(base_url=oracle_url, timeout=30) as client:
        for method, path, kwargs in BAD_INPUTS:
            response = client.request(method, path, **kwargs)
            declared = operation(method, path)["responses"]
            assert str(response.status_code) in declared, (method, path, response.status_code, sorted(declared))
            assert 400 <= response.status_code < 500, (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "application/problem+json" in declared[str(response.status_code)]["content"]
            seen.add(response.status_code)
    assert {400, 401, 404, 413} <= seen  # the inputs reach the statuses they are meant to


def test_no_operation_declares_a_422_it_never_sends(oracle_url):
    document = httpx.get(f"{oracle_url}/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)


def test_schemathesis_finds_nothing(oracle_url, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    # One worker: CPython 3.11 can raise a spurious "AST constructor recursion depth mismatch"
    # SystemError when threads build ASTs at once (python/cpython#106905), which schemathesis's
    # worker threads did once in a fresh-clone run.
    result = subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{oracle_url}/openapi.json", "--checks", "all",
         "--max-examples", "50", "--seed", "12", "--phases", "examples,coverage,fuzzing", "--workers", "1",
         "--no-color", "--generation-database", "none", "--report-dir", str(tmp_path / "report"),
         "--request-timeout", "20"],
        capture_output=True, text=True, timeout=240,
        # the NDJSON serializer of the bulk upload's body (tests/oracle/schemathesis_ndjson.py)
        env={**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_ndjson",
             "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))})
    if result.returncode != 0:
        pytest.fail(result.stdout[-8000:] + result.stderr[-2000:], pytrace=False)
