"""Oracle report documents are stored only when they match the chain: digest, recomputed Merkle root
and payouts hash; the proofs stored are this API's own and verify with OpenZeppelin's rule."""

from __future__ import annotations

import copy
import json

import pytest

from api.documents import DocumentRejected, verify_document
from protocol.merkle import RewardLeaf, RewardsTree, leaf_hash, process_proof
from protocol.report import RequestPayout, SettlementReport

A, B, TOKEN = "0x" + "1a" * 20, "0x" + "2b" * 20, "0x" + "3c" * 20


def document() -> tuple[dict, str, str, str]:
    ledger = {(A, TOKEN): 900, (B, TOKEN): 100}
    tree = RewardsTree([RewardLeaf(a, t, v) for (a, t), v in ledger.items()])
    report = SettlementReport(epoch=3, previous_root=b"\x00" * 32, rewards_root=tree.root,
                              payouts=(RequestPayout(4, 1_000),))
    digest = "0x" + "ee" * 32
    device = {"device": A, "owner": A, "committedWh": 5, "deliveredWh": 5, "ratioBps": 10_000, "factorBps": 10_000,
              "payableWh": 5, "payout": "1000", "ownerPayout": "1000", "fee": "0", "emission": "0", "penalty": "0",
              "eligible": True, "reasons": [], "flags": []}
    body = {"digest": digest, "epoch": 3, "previousRoot": "0x" + "00" * 32, "rewardsRoot": "0x" + tree.root.hex(),
            "requestsHash": "0x" + report.requests_hash.hex(), "penaltiesHash": "0x" + report.penalties_hash.hex(),
            "emission": "0", "payouts": [{"requestId": 4, "payout": "1000"}], "penalties": [],
            "ledger": [{"account": a, "token": t, "amount": str(v)} for (a, t), v in ledger.items()],
            "requests": [{"requestId": 4, "paymentToken": TOKEN, "escrow": "1000", "payout": "1000", "refund": "0",
                          "scaledToEscrow": False, "deliveredWh": 5, "devices": [device]}]}
    return body, digest, "0x" + tree.root.hex(), "0x" + report.requests_hash.hex()


def test_a_matching_document_is_accepted_with_proofs():
    body, digest, root, requests_hash = document()
    verified = verify_document(body, digest, root, requests_hash)
    assert verified.epoch == 3 and len(verified.leaves) == 2
    for leaf in verified.leaves:
        proof = [bytes.fromhex(p[2:]) for p in json.loads(leaf["proof"])]
        assert "0x" + process_proof(leaf_hash(leaf["account"], leaf["token"], int(leaf["amount"])), proof).hex() == root
    assert verified.requests[0]["delivered_wh"] == 5


@pytest.mark.parametrize("tamper, reason", [
    (lambda b: b.update(digest="0x" + "ff" * 32), "digest"),
    (lambda b: b["ledger"][0].update(amount="901"), "root"),
    (lambda b: b["ledger"].pop(), "root"),
    (lambda b: b["payouts"][0].update(payout="999"), "requestsHash"),
    (lambda b: b["ledger"][0].update(account="not an address"), "malformed"),
    (lambda b: b.pop("epoch"), "malformed"),
])
def test_a_document_that_differs_from_the_chain_is_rejected(tamper, reason):
    body, digest, root, requests_hash = document()
    forged = copy.deepcopy(body)
    tamper(forged)
    with pytest.raises(DocumentRejected, match=reason):
        verify_document(forged, digest, root, requests_hash)


def test_a_document_computed_by_the_oracle_engine_verifies():
    """The API reads the oracle's own report body (oracle.settlement + oracle.report_store) unchanged."""
    from oracle.report_store import report_document
    from oracle.settlement import DeviceInput, RequestInput, SettlementParams, settle_epoch

    owner, usd, nega = "0x" + "01" * 20, "0x" + "bb" * 20, "0x" + "aa" * 20
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token=nega, interval_seconds=900)
    request = RequestInput(5, usd, 200_000, 10**9, 2, (DeviceInput("0x" + "11" * 20, owner, 4_000, (900, 1_000)),))
    settlement = settle_epoch(1, bytes(32), {}, [request], params, emission_budget=10**30)
    body = report_document(b"\x42" * 32, settlement, {}).as_json()  # as it travels over HTTP
    report = settlement.report
    verified = verify_document(body, "0x" + "42" * 32, "0x" + report.rewards_root.hex(),
                               "0x" + report.requests_hash.hex())
    (result,) = verified.requests
    devices = json.loads(result["devices"])
    assert result["request_id"] == 5 and result["delivered_wh"] == settlement.requests[0].delivered_wh
    assert devices[0]["device"] == "0x" + "11" * 20 and devices[0]["payout"] == str(settlement.requests[0].devices[0].payout)
    assert {(leaf["account"].lower(), leaf["token"].lower()) for leaf in verified.leaves} == {
        (e["account"].lower(), e["token"].lower()) for e in body["ledger"]}
