"""The API indexes a request's clearing result (FlexMarket AllocationPosted, posted k-of-n through the
OracleHub): acceptedW, clearingPrice and allocationRoot are null until the oracles post, then match
the event; a reorg that drops the posting block clears them again."""

from __future__ import annotations

from conftest import http, indexed_to_head

from protocol import eip712

ROOT = bytes.fromhex("ab" * 32)


def post_allocation(chain, request_id: int, accepted_w: int, clearing_price: int, root: bytes = ROOT) -> None:
    """Both fixture oracles sign the Allocation; a third party sends it (anyone may carry signatures)."""
    message = {"requestId": request_id, "root": root, "acceptedW": accepted_w, "clearingPrice": clearing_price}
    signatures = [eip712.sign(key, "Allocation", message, chain.chain_id, chain.hub.address)
                  for key in chain.oracle_keys]
    chain.other.send(chain.hub.functions.postAllocation(request_id, root, accepted_w, clearing_price, signatures))


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
