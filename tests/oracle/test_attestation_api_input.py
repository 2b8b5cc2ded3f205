"""The oracle's attestation routes refuse loose input over real HTTP (issue 12, items 6, 8 and 9):
an epoch beyond uint32 is a 400, not a 500; an address or digest with a trailing newline is not an
address or digest; a proposal takes JSON integers only, within range, and no unknown fields. The
proposals here are signed by an oracle of a fixed set (who may propose is tests/oracle/
test_proposals_auth.py's subject, on the chain's set)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine
from eth_account import Account
from uvicorn_server import serve

from oracle.attestation_api import add_attestation_routes
from oracle.ingest_api import install_problem_handlers
from oracle.proposal_gate import OracleSet, ProposalGate
from oracle.report_store import ReportStore
from protocol.proposals import sign_proposal

ROOT = "0x" + "00" * 32
CHAIN_ID, HUB = 31337, "0x" + "4b" * 20
PROPOSER = Account.create()


def signed(epoch=2, previous_root=ROOT, request_ids=(3, 1, 3)) -> dict[str, str]:
    """Credentials of PROPOSER for this proposal, issued now."""
    return sign_proposal(PROPOSER.key, CHAIN_ID, HUB, epoch, previous_root, list(request_ids), int(time.time()))


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    calls = []
    store = ReportStore(create_engine(f"sqlite:///{tmp_path_factory.mktemp('att') / 'oracle.sqlite'}"))

    def answer_proposal(epoch, previous_root, request_ids):
        calls.append((epoch, previous_root, request_ids))
        return {"oracle": "0x" + "11" * 20, "digest": "0x" + "22" * 32, "signature": "0x" + "33" * 65}

    app = FastAPI()
    install_problem_handlers(app)  # as the oracle's service app has them
    gate = ProposalGate(CHAIN_ID, HUB, OracleSet(lambda: [PROPOSER.address]), time.time)
    add_attestation_routes(app, SimpleNamespace(store=store, answer_proposal=answer_proposal), gate)
    url, server, thread = serve(app)
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client, calls
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("epoch", [0, 2**32, 2**63, 2**64 + 5])
def test_an_epoch_out_of_range_is_a_400(oracle, epoch):
    client, _ = oracle
    response = client.get(f"/v1/reports/{epoch}")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_epoch"


@pytest.mark.parametrize("path", ["/v1/rewards/0x" + "ab" * 20 + "%0A", "/v1/reports/by-digest/0x" + "ab" * 32 + "%0A"])
def test_a_trailing_newline_is_not_part_of_an_address_or_digest(oracle, path):
    client, _ = oracle
    response = client.get(path)
    assert response.status_code == 400, response.text


def test_a_proper_proposal_is_answered(oracle):
    client, calls = oracle
    response = client.post("/v1/proposals", json={"epoch": 2, "previousRoot": ROOT, "requestIds": [3, 1, 3]},
                           headers=signed())
    assert response.status_code == 200, response.text
    assert calls[-1] == (2, ROOT, [1, 3])


@pytest.mark.parametrize("change", [
    {"epoch": "2"}, {"epoch": 2.0}, {"epoch": True}, {"requestIds": ["1"]}, {"requestIds": [1.0]},
    {"requestIds": [int("9" * 4000)]}, {"requestIds": [0]}, {"requestIds": list(range(1, 66))},
    {"previousRoot": ROOT + "\n"}, {"extra": 1},
])
def test_a_loose_proposal_is_refused_without_echoing_it(oracle, change):
    client, calls = oracle
    before = len(calls)
    body = {"epoch": 2, "previousRoot": ROOT, "requestIds": [1], **change}
    response = client.post("/v1/proposals", content=json.dumps(body),
                           headers={"content-type": "application/json", **signed()})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "9999999999" not in response.text  # a huge number is not echoed back
    assert len(calls) == before
