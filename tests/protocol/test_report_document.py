"""The typed report document: parsing bounds, the cached tree, and verification against a root."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.merkle import RewardLeaf, RewardsTree, process_proof
from protocol.report import ZERO_ROOT, RequestPayout, SettlementReport
from protocol.report_document import ReportDocument, ReportMismatch

TOKEN = "0x" + "bb" * 20


def _document(amounts: list[int]) -> dict:
    ledger = [{"account": "0x" + f"{i + 1:02x}" * 20, "token": TOKEN, "amount": str(a)} for i, a in enumerate(amounts)]
    leaves = [RewardLeaf(e["account"], e["token"], int(e["amount"])) for e in ledger]
    root = RewardsTree(leaves).root if leaves else ZERO_ROOT
    report = SettlementReport(2, ZERO_ROOT, root, payouts=(RequestPayout(4, 99),))
    return {"digest": "0x" + "42" * 32, "epoch": 2, "previousRoot": "0x" + "00" * 32, "rewardsRoot": "0x" + root.hex(),
            "requestsHash": "0x" + report.requests_hash.hex(), "penaltiesHash": "0x" + report.penalties_hash.hex(),
            "emission": "0", "payouts": [{"requestId": 4, "payout": "99"}], "penalties": [], "ledger": ledger,
            "requests": [], "emissionScaled": False}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**256 - 1), max_size=12))
def test_round_trip_and_root(amounts):
    body = _document(amounts)
    document = ReportDocument.parse(json.dumps(body))
    assert document.as_json() == json.loads(json.dumps(body, sort_keys=True))
    document.verify(body["rewardsRoot"], digest=body["digest"], requests_hash=body["requestsHash"])
    for proof in document.proofs():
        leaf = RewardLeaf(proof.account, proof.token, proof.amount)
        assert process_proof(leaf.hash(), [bytes.fromhex(p[2:]) for p in proof.proof]) == document.computed_root()


def test_the_tree_is_built_once():
    document = ReportDocument.parse(_document([1, 2, 3]))
    assert document.tree() is document.tree()


def test_verify_refuses_a_changed_ledger_digest_or_payouts():
    body = _document([10, 20])
    root, requests_hash = body["rewardsRoot"], body["requestsHash"]
    inflated = copy.deepcopy(body)
    inflated["ledger"][0]["amount"] = "11"
    with pytest.raises(ReportMismatch, match="recomputed root"):
        ReportDocument.parse(inflated).verify(root)
    with pytest.raises(ReportMismatch, match="digest"):
        ReportDocument.parse(body).verify(root, digest="0x" + "43" * 32)
    paid_more = copy.deepcopy(body)
    paid_more["payouts"][0]["payout"] = "100"
    with pytest.raises(ReportMismatch, match="requestsHash"):
        ReportDocument.parse(paid_more).verify(root, requests_hash=requests_hash)


@pytest.mark.parametrize("change, where", [
    (lambda b: b["ledger"][0].update(amount="1" * 79), "amount"),
    (lambda b: b["ledger"][0].update(amount="-1"), "amount"),
    (lambda b: b["ledger"][0].update(amount=True), "amount"),
    (lambda b: b["ledger"][0].update(account="0x12\n"), "account"),
    (lambda b: b.update(digest="0x42"), "digest"),
    (lambda b: b.update(extra=1), "extra"),
    (lambda b: b.update(version=2), "version"),
])
def test_malformed_documents_are_refused_with_the_field(change, where):
    body = _document([5])
    change(body)
    with pytest.raises((ValidationError, ValueError), match=where):
        ReportDocument.parse(body)


def test_a_published_answer_gives_the_document():
    body = _document([7])
    document = ReportDocument.parse(body)
    leaves = [p.model_dump(mode="json") for p in document.proofs()]
    assert ReportDocument.from_published({"status": "final", "report": body, "leaves": leaves}) == document
    assert ReportDocument.from_published({**body, "leaves": leaves}) == document
