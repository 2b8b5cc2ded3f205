"""The API indexes a request's clearing result (FlexMarket AllocationPosted, posted k-of-n through the
OracleHub): acceptedW, clearingPrice and allocationRoot are null until the oracles post, then match
the event; a reorg that drops the posting block clears them again. The allocation document (who was
accepted for how much) is fetched from the oracles over real HTTP and served only once its leaves
hash to the posted root and an active oracle signed it."""

from __future__ import annotations

from typing import Any

from conftest import http, indexed_to_head, wait_for
from eth_account import Account
from fastapi import FastAPI

from protocol import eip712
from protocol.allocation_document import AllocationDocument
from protocol.clearing import Acceptance, Allocation

ROOT = bytes.fromhex("ab" * 32)


def post_allocation(chain, request_id: int, accepted_w: int, clearing_price: int, root: bytes = ROOT,
                    availability_price: int = 0) -> None:
    """Both fixture oracles sign the Allocation; a third party sends it (anyone may carry signatures)."""
    message = {"requestId": request_id, "root": root, "acceptedW": accepted_w, "clearingPrice": clearing_price,
               "availabilityPrice": availability_price}
    signatures = [eip712.sign(key, "Allocation", message, chain.chain_id, chain.hub.address)
                  for key in chain.oracle_keys]
    chain.other.send(chain.hub.functions.postAllocation(request_id, root, accepted_w, clearing_price,
                                                        availability_price, signatures))


def test_allocation_fields_appear_after_posting(chain, start_api):
    chain.add_oracles(["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"])
    url, _app = start_api(chain)
    client = http(url)
    request_id = chain.open_request(zone=4, start_in=600, duration=3600, target_w=5_000, price_per_kwh=200_000)
    indexed_to_head(client, chain)
    before = client.get(f"/v1/requests/{request_id}").json()
    assert (before["acceptedW"], before["clearingPrice"], before["allocationRoot"]) == (None, None, None)

    post_allocation(chain, request_id, accepted_w=4_250, clearing_price=150_000)
    indexed_to_head(client, chain)
    after = client.get(f"/v1/requests/{request_id}").json()
    assert after["acceptedW"] == 4_250
    assert after["clearingPrice"] == "150000"
    assert after["allocationRoot"] == "0x" + ROOT.hex()
    assert after["status"] == "open"
    # the listing serves the same fields as the detail route
    listed = {item["id"]: item for item in client.get("/v1/requests", params={"zone": 4}).json()["items"]}
    assert listed[request_id]["acceptedW"] == 4_250 and listed[request_id]["clearingPrice"] == "150000"
    # the chain agrees: the request is allocated and its escrow is what the allocation can earn
    on_chain = chain.market.functions.getRequest(request_id).call()
    assert on_chain[4] is True  # allocated
    duration = after["end"] - after["start"]
    assert on_chain[9] == 4_250 * duration * 150_000 // 3_600_000  # escrow lowered to the allocation's cost


def test_a_reorg_that_drops_the_allocation_clears_it(chain, start_api, tmp_path):
    chain.add_oracles(["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"])
    url, _app = start_api(chain, database=str(tmp_path / "reorg.sqlite"))
    client = http(url)
    request_id = chain.open_request(zone=4, start_in=600, duration=3600)
    indexed_to_head(client, chain)

    snapshot = chain.rpc("evm_snapshot", [])
    fork_head = chain.head()
    post_allocation(chain, request_id, accepted_w=3_000, clearing_price=100_000)
    chain.mine(2)
    indexed_to_head(client, chain)
    assert client.get(f"/v1/requests/{request_id}").json()["acceptedW"] == 3_000
    abandoned_head = chain.head()

    assert chain.rpc("evm_revert", [snapshot]) is True
    assert chain.head() == fork_head
    chain.mine(abandoned_head - chain.head() + 2)  # the canonical branch is longer and has no allocation
    indexed_to_head(client, chain)
    body = client.get(f"/v1/requests/{request_id}").json()
    assert (body["acceptedW"], body["clearingPrice"], body["allocationRoot"]) == (None, None, None)


def _allocation(request_id: int) -> Allocation:
    devices = sorted((Account.create().address for _ in range(2)), key=str.lower)
    sites = [Account.create().address for _ in range(2)]
    accepted = (Acceptance(devices[0], sites[0], 3_000), Acceptance(devices[1], sites[1], 1_250))
    return Allocation(request_id, clearing_price=150_000, accepted_w=4_250, cap_w=5_500, margin_bps=1_000,
                      accepted=accepted, control_sites=(Account.create().address,))


def _oracle_peer(answers: dict[int, dict[str, Any]], hits: list[int] | None = None) -> FastAPI:
    """An oracle's allocation route serving fixed answers (what oracle.allocation_api publishes)."""
    app = FastAPI()

    @app.get("/v1/allocations/{request_id}")
    def allocation(request_id: int):
        if hits is not None:
            hits.append(request_id)
        return answers.get(request_id, {})

    return app


def _signed(allocation: Allocation, key: bytes, chain, document: dict | None = None) -> dict[str, Any]:
    message = {"requestId": allocation.request_id, "root": allocation.root(), "acceptedW": allocation.accepted_w,
               "clearingPrice": allocation.clearing_price, "availabilityPrice": allocation.availability_price}
    signature = eip712.sign(key, "Allocation", message, chain.chain_id, chain.hub.address)
    return {"allocation": document or AllocationDocument.of(allocation, 5).as_json(),
            "signature": "0x" + signature.hex(), "signer": Account.from_key(key).address}


def test_the_allocation_document_is_served_once_it_matches_the_chain(chain, start_api, serve_app):
    forged_answers: dict[int, dict[str, Any]] = {}
    honest_answers: dict[int, dict[str, Any]] = {}
    forged_hits: list[int] = []
    urls = [serve_app(_oracle_peer(forged_answers, forged_hits)), serve_app(_oracle_peer(honest_answers))]
    chain.add_oracles(urls)
    url, _app = start_api(chain)
    client = http(url)
    request_id = chain.open_request(zone=4, start_in=600, duration=3600)
    indexed_to_head(client, chain)
    not_posted = client.get(f"/v1/requests/{request_id}/allocation")
    assert not_posted.status_code == 404 and not_posted.json()["code"] == "unknown_allocation"

    allocation = _allocation(request_id)
    # the first oracle serves a document whose leaves were changed (device 0 accepted for more): its
    # recomputed root is not the posted one, so the API must pass it over and take the second oracle's
    forged = AllocationDocument.of(allocation, 5).as_json()
    forged["accepted"][0]["watts"] += 500
    forged["acceptedW"] += 500
    forged_answers[request_id] = _signed(allocation, chain.oracle_keys[0], chain, document=forged)
    post_allocation(chain, request_id, allocation.accepted_w, allocation.clearing_price, root=allocation.root())
    indexed_to_head(client, chain)
    wait_for(lambda: forged_hits.count(request_id) >= 2, 30, "the API to ask the forging oracle twice")
    # no honest oracle serves it yet, and the forged document must not have been stored
    pending = client.get(f"/v1/requests/{request_id}/allocation")
    assert pending.status_code == 503 and pending.json()["code"] == "allocation_not_fetched"

    honest_answers[request_id] = _signed(allocation, chain.oracle_keys[1], chain)
    served = wait_for(lambda: (r := client.get(f"/v1/requests/{request_id}/allocation")).status_code == 200 and r,
                      60, "the API to store the allocation document")
    body = served.json()
    assert body["root"] == "0x" + allocation.root().hex()
    assert [(a["device"], a["watts"]) for a in body["accepted"]] == [(a.device, a.watts) for a in allocation.accepted]
    assert body["acceptedW"] == 4_250 and body["clearingPrice"] == "150000" and body["capW"] == 5_500
    assert body["signer"] == Account.from_key(chain.oracle_keys[1]).address
    assert body["source"].startswith(urls[1])


def test_a_document_signed_by_a_non_oracle_is_not_served(chain, start_api, serve_app):
    answers: dict[int, dict[str, Any]] = {}
    hits: list[int] = []
    chain.add_oracles([serve_app(_oracle_peer(answers, hits)), "http://127.0.0.1:1/b"])
    url, _app = start_api(chain)
    client = http(url)
    request_id = chain.open_request(zone=4, start_in=600, duration=3600)
    allocation = _allocation(request_id)
    answers[request_id] = _signed(allocation, Account.create().key, chain)  # right leaves, wrong signer
    post_allocation(chain, request_id, allocation.accepted_w, allocation.clearing_price, root=allocation.root())
    indexed_to_head(client, chain)
    wait_for(lambda: hits.count(request_id) >= 2, 30, "the API to ask the oracle twice")
    assert client.get(f"/v1/requests/{request_id}").json()["acceptedW"] == 4_250
    pending = client.get(f"/v1/requests/{request_id}/allocation")
    assert pending.status_code == 503 and pending.json()["code"] == "allocation_not_fetched"
