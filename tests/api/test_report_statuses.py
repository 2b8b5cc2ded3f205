"""Report statuses from real OracleHub events on anvil: pending, challenged, discarded (challenge
upheld: the request is open again), and a second report that becomes final; the report list filters
by status and the request follows each step."""

from __future__ import annotations

from conftest import OraclePublisher, http, indexed_to_head


def test_challenge_discard_and_a_final_report(chain, start_api, serve_app, tmp_path):
    publisher = OraclePublisher(str(tmp_path / "oracle.sqlite"), serve_app)
    chain.add_oracles([publisher.url, publisher.url])
    usd = chain.stablecoin.address
    request_id = chain.open_request(zone=1, start_in=60, duration=120)
    chain.warp(300)
    url, _app = start_api(chain)
    client = http(url)

    bad = chain.make_report({(chain.owner.address, usd): 50_000}, [(request_id, 50_000)])
    publisher.publish(bad.body, status="submitted")
    chain.submit(bad)
    indexed_to_head(client, chain)
    pending = client.get("/v1/reports", params={"status": "pending"}).json()["items"]
    assert [r["digest"] for r in pending] == [bad.digest]
    assert client.get(f"/v1/requests/{request_id}").json()["status"] == "settling"

    bond = chain.hub.functions.challengeBond().call()
    chain.mint_protocol(chain.other.address, bond)
    chain.other.send(chain.token.functions.approve(chain.hub.address, bond))
    chain.other.send(chain.hub.functions.challenge(bytes.fromhex(bad.digest[2:]), "payout exceeds delivery"))
    indexed_to_head(client, chain)
    challenged = client.get(f"/v1/reports/{bad.digest}").json()
    assert challenged["status"] == "challenged" and challenged["challenger"] == chain.other.address
    assert challenged["challengeReason"] == "payout exceeds delivery"
    assert client.get("/v1/reports", params={"status": "pending"}).json()["items"] == []

    chain.admin.send(chain.hub.functions.resolveChallenge(bad.report.as_tuple(), bad.report.payout_tuples(), True))
    indexed_to_head(client, chain)
    assert client.get(f"/v1/reports/{bad.digest}").json()["status"] == "discarded"
    reopened = client.get(f"/v1/requests/{request_id}").json()
    assert (reopened["status"], reopened["reportDigest"], reopened["payout"]) == ("open", None, None)

    good = chain.make_report({(chain.owner.address, usd): 4_000}, [(request_id, 4_000)])
    publisher.publish(good.body)
    chain.submit(good)
    chain.finalize(good)
    indexed_to_head(client, chain)
    final = client.get("/v1/reports", params={"status": "final"}).json()["items"]
    assert [(r["digest"], r["epoch"], r["verified"]) for r in final] == [(good.digest, 1, True)]
    everything = client.get("/v1/reports").json()["items"]
    assert {r["digest"]: r["status"] for r in everything} == {bad.digest: "discarded", good.digest: "final"}
    settled = client.get(f"/v1/requests/{request_id}").json()
    assert (settled["status"], settled["payout"], settled["reportDigest"]) == ("settled", "4000", good.digest)
    rewards = client.get(f"/v1/rewards/{chain.owner.address}").json()
    assert [(t["token"], t["cumulative"]) for t in rewards["tokens"]] == [(usd, "4000")]
    # the discarded report's document is never used for rewards (it was not even final)
    assert rewards["root"] == good.body["rewardsRoot"]
