"""The facade's HTTP contract, spoken directly: OAuth2 client credentials and its refusals, scopes,
OpenADR problems for every error, bounded inputs (body, strings, lists, limit), pagination and the
AND of target filters, privacy of targeted programmes, and webhook notifications."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from fastapi import FastAPI, Request

PROGRAM = {"programName": "p", "attributes": [{"type": "NEGAWATT_ZONE", "values": [1]},
                                               {"type": "NEGAWATT_PRICE_CEILING", "values": ["0.25"]}]}


def _config(net, which: str = "vtn_json") -> dict:
    return json.loads(getattr(net, which).read_text())


def _token(net, role: str = "bl", scope: str | None = None, which: str = "vtn_json") -> str:
    cfg = _config(net, which)
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    answer = httpx.post(cfg["token_url"], data=form, auth=(cfg[f"{role}_client_id"], cfg[f"{role}_client_secret"]))
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def _client(net, token: str) -> httpx.Client:
    return httpx.Client(base_url=net.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def test_discovery_and_the_token_endpoint(vtn_net):
    cfg = _config(vtn_net)
    assert httpx.get(f"{vtn_net.base}/auth/server").json() == {"tokenURL": cfg["token_url"]}
    good = httpx.post(cfg["token_url"], data={"grant_type": "client_credentials", "client_id": cfg["ven_client_id"],
                                              "client_secret": cfg["ven_client_secret"]})
    body = good.json()
    assert good.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert set(body["scope"].split()) == {"read_targets", "read_ven_objects", "write_reports",
                                          "write_subscriptions", "write_vens"}
    wrong = httpx.post(cfg["token_url"], data={"grant_type": "client_credentials"},
                       auth=(cfg["ven_client_id"], "not-the-secret"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = httpx.post(cfg["token_url"], data={"grant_type": "password"}, auth=(cfg["bl_client_id"],
                                                                              cfg["bl_client_secret"]))
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    scope = httpx.post(cfg["token_url"], data={"grant_type": "client_credentials", "scope": "write_programs"},
                       auth=(cfg["ven_client_id"], cfg["ven_client_secret"]))
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"


def test_no_token_wrong_scope_and_bad_input_are_problems(vtn_net):
    _problem(httpx.get(f"{vtn_net.base}/programs"), 401)
    _problem(httpx.get(f"{vtn_net.base}/programs", headers={"Authorization": "Bearer nope"}), 401)
    with _client(vtn_net, _token(vtn_net, "ven")) as ven:
        _problem(ven.post("/programs", json=PROGRAM), 403)
    with _client(vtn_net, _token(vtn_net, "ven", scope="read_targets")) as narrow:
        _problem(narrow.get("/vens"), 403)
    with _client(vtn_net, _token(vtn_net)) as bl:
        _problem(bl.post("/programs", json={**PROGRAM, "programName": "x" * 129}), 400)
        _problem(bl.post("/programs", json={**PROGRAM, "targets": [f"t{n}" for n in range(101)]}), 400)
        _problem(bl.post("/programs", json={"programName": "no-zone"}), 400)
        _problem(bl.post("/programs", content=b"{" * 70_000, headers={"content-type": "application/json"}), 413)
        _problem(bl.get("/programs", params={"limit": 51}), 400)
        _problem(bl.get("/programs", params={"skip": -1}), 400)
        _problem(bl.get("/events/unknown"), 404)
        report = {"eventID": "e", "clientName": "c", "resources": [
            {"resourceName": "r", "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [1]}]}]}]}
        _problem(bl.put("/reports/whatever", json=report), 403)  # a BL client has no write_reports


def test_pagination_and_target_filters(vtn_net):
    with _client(vtn_net, _token(vtn_net)) as bl:
        made = [bl.post("/programs", json={**PROGRAM, "programName": f"paged-{n}", "targets": targets}).json()["id"]
                for n, targets in enumerate((["north", "evening"], ["north"], ["north", "evening"]))]
        both = bl.get("/programs", params={"targets": ["north", "evening"]}).json()
        assert [p["id"] for p in both] == [made[0], made[2]]
        north = [p["id"] for p in bl.get("/programs", params={"targets": "north"}).json()]
        assert north == made
        page = bl.get("/programs", params={"targets": "north", "skip": 1, "limit": 1}).json()
        assert [p["id"] for p in page] == [made[1]]


def test_a_targeted_programme_is_seen_only_by_the_ven_it_targets(vtn_net):
    with _client(vtn_net, _token(vtn_net)) as bl, _client(vtn_net, _token(vtn_net, "ven")) as ven, \
            _client(vtn_net, _token(vtn_net, "ven", which="other_vtn_json")) as other:
        program = bl.post("/programs", json={**PROGRAM, "programName": "group-a-only", "targets": ["group-a"]}).json()
        assert program["id"] not in [p["id"] for p in ven.get("/programs").json()]
        _problem(ven.get(f"/programs/{program['id']}"), 404)
        cfg = _config(vtn_net)
        made = bl.post("/vens", json={"venName": "assigned-by-bl", "clientID": cfg["ven_client_id"],
                                      "targets": ["group-a"], "objectType": "BL_VEN_REQUEST"})
        assert made.status_code == 201 and made.json()["clientID"] == cfg["ven_client_id"]
        assert ven.get(f"/programs/{program['id']}").status_code == 200
        _problem(other.get(f"/programs/{program['id']}"), 404)
        _problem(other.delete(f"/vens/{made.json()['id']}"), 404)
        mine = ven.post("/vens", json={"venName": "ven-made", "targets": ["group-b"], "objectType": "VEN_VEN_REQUEST"})
        assert mine.status_code == 201 and mine.json()["targets"] == []  # a VEN cannot assign itself targets


def test_webhooks_notify_what_the_subscriber_may_read(vtn_net):
    received: list[tuple[str, dict]] = []
    arrived = threading.Event()
    capture = FastAPI()

    @capture.post("/hook/{who}")
    async def hook(who: str, request: Request) -> dict:
        received.append((who, {"auth": request.headers.get("authorization"), **(await request.json())}))
        arrived.set()
        return {}

    hook_url = vtn_net.served(capture)
    with _client(vtn_net, _token(vtn_net)) as bl, _client(vtn_net, _token(vtn_net, "ven")) as ven, \
            _client(vtn_net, _token(vtn_net, "ven", which="other_vtn_json")) as other:
        for client, who in ((ven, "one"), (other, "two")):
            answer = client.post("/subscriptions", json={
                "clientName": who, "objectOperations": [{"objects": ["PROGRAM", "VEN"], "operations": ["POST"],
                                                         "callbackUrl": f"{hook_url}/hook/{who}",
                                                         "bearerToken": f"secret-{who}"}]})
            assert answer.status_code == 201, answer.text
        program = bl.post("/programs", json={**PROGRAM, "programName": "notified"}).json()
        ven_made = ven.post("/vens", json={"venName": "private-ven"}).json()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(received) < 3:
            time.sleep(0.05)
        time.sleep(0.3)
    seen = sorted((who, n["objectType"], n["operation"], n["object"]["id"], n["auth"]) for who, n in received)
    assert seen == sorted([("one", "PROGRAM", "POST", program["id"], "Bearer secret-one"),
                           ("two", "PROGRAM", "POST", program["id"], "Bearer secret-two"),
                           ("one", "VEN", "POST", ven_made["id"], "Bearer secret-one")])


@pytest.mark.parametrize("path", ["/programs", "/events", "/reports", "/vens", "/resources", "/subscriptions"])
def test_every_collection_pages_within_fifty(vtn_net, path):
    with _client(vtn_net, _token(vtn_net)) as bl:
        answer = bl.get(path, params={"skip": 0, "limit": 50})
        assert answer.status_code == 200 and isinstance(answer.json(), list) and len(answer.json()) <= 50
