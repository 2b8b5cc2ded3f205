"""Sign-In with Ethereum: real EIP-4361 messages signed with eth-account; only a device's on-chain
owner writes its profile; nonces are single-use; sessions and profiles survive a restart."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import SIWE_DOMAIN, mirror_app, serve
from eth_account import Account
from eth_account.messages import encode_defunct

from api.db import make_engine
from api.events import ChainLog
from api.projection import Projection


def siwe_message(address: str, nonce: str, domain: str, chain_id: int = 31337,
                 expiration: datetime | None = None) -> str:
    """An EIP-4361 message as a wallet would be asked to sign it."""
    issued = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    lines = [f"{domain} wants you to sign in with your Ethereum account:", address, "",
             "Sign in to negawatt to label your devices.", "", f"URI: http://{domain}", "Version: 1",
             f"Chain ID: {chain_id}", f"Nonce: {nonce}", f"Issued At: {issued}"]
    if expiration is not None:
        lines.append(f"Expiration Time: {expiration.strftime('%Y-%m-%dT%H:%M:%S.000Z')}")
    return "\n".join(lines)


def sign(account, message: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")


@pytest.fixture
def api(mirror):
    url, server, thread = serve(mirror_app(mirror.database_url))
    client = httpx.Client(base_url=url, timeout=30)
    yield client
    client.close()
    server.should_exit = True
    thread.join(timeout=15)


def login(client: httpx.Client, account, **message_options) -> httpx.Response:
    nonce = client.get("/v1/auth/nonce").json()["nonce"]
    message = siwe_message(account.address, nonce, SIWE_DOMAIN, **message_options)
    return client.post("/v1/auth/login", json={"message": message, "signature": sign(account, message)})


def test_owner_writes_profile_others_cannot(api, mirror):
    session = login(api, mirror.owner)
    assert session.status_code == 200, session.text
    token = session.json()["token"]
    assert session.json()["address"] == mirror.owner.address
    auth = {"Authorization": f"Bearer {token}"}
    device = mirror.owner_devices[0]
    written = api.put(f"/v1/devices/{device}/profile", json={"name": "Garage EV", "locationLabel": "Garage"},
                      headers=auth)
    assert written.status_code == 200, written.text
    assert written.json()["profile"]["name"] == "Garage EV"
    assert api.get(f"/v1/devices/{device}").json()["profile"]["locationLabel"] == "Garage"

    # another owner's device: 403; an unknown device: 404; invalid fields: 400
    forbidden = api.put(f"/v1/devices/{mirror.other_devices[0]}/profile", json={"name": "mine now"}, headers=auth)
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "not_owner"
    assert api.get(f"/v1/devices/{mirror.other_devices[0]}").json()["profile"] is None
    assert api.put("/v1/devices/0x" + "00" * 20 + "/profile", json={"name": "x"}, headers=auth).status_code == 404
    too_long = api.put(f"/v1/devices/{device}/profile", json={"name": "x" * 65}, headers=auth)
    assert too_long.status_code == 400 and "name" in too_long.json()["detail"]
    extra = api.put(f"/v1/devices/{device}/profile", json={"owner": mirror.other.address}, headers=auth)
    assert extra.status_code == 400
    assert api.get(f"/v1/devices/{device}").json()["profile"]["name"] == "Garage EV"  # bad input lost nothing

    # a restart keeps the session and the profile
    url, server, thread = serve(mirror_app(mirror.database_url))
    try:
        with httpx.Client(base_url=url, timeout=30) as again:
            assert again.get(f"/v1/devices/{device}").json()["profile"]["name"] == "Garage EV"
            renamed = again.put(f"/v1/devices/{device}/profile", json={"name": "EV"}, headers=auth)
            assert renamed.status_code == 200 and renamed.json()["profile"]["locationLabel"] is None
    finally:
        server.should_exit = True
        thread.join(timeout=15)

    # a transfer on chain: the previous owner's labels are no longer shown, the new owner writes its own
    transfer = ChainLog(2 * 10**6, "0x" + "ef" * 32, 0, "0x" + "fe" * 32, "DeviceRegistry", "DeviceTransferred",
                        {"device": device, "from": mirror.owner.address, "to": mirror.other.address})
    engine = make_engine(mirror.database_url)
    with engine.begin() as connection:
        Projection(connection).apply([transfer])
    engine.dispose()
    assert api.get(f"/v1/devices/{device}").json()["profile"] is None
    assert api.put(f"/v1/devices/{device}/profile", json={"name": "x"}, headers=auth).status_code == 403
    other_token = login(api, mirror.other).json()["token"]
    taken = api.put(f"/v1/devices/{device}/profile", json={"name": "Bought EV"},
                    headers={"Authorization": f"Bearer {other_token}"})
    assert taken.status_code == 200 and taken.json()["profile"]["name"] == "Bought EV"

    assert api.post("/v1/auth/logout", headers=auth).status_code == 204
    again = api.post("/v1/auth/logout", headers=auth)  # the session is gone: a second logout is refused
    assert again.status_code == 401 and again.json()["code"] == "unauthenticated"
    after = api.put(f"/v1/devices/{device}/profile", json={"name": "x"}, headers=auth)
    assert after.status_code == 401


def test_sign_in_rejects_replays_and_mismatches(api, mirror):
    owner = mirror.owner
    domain = SIWE_DOMAIN
    nonce = api.get("/v1/auth/nonce").json()["nonce"]
    message = siwe_message(owner.address, nonce, domain)
    body = {"message": message, "signature": sign(owner, message)}
    assert api.post("/v1/auth/login", json=body).status_code == 200
    replay = api.post("/v1/auth/login", json=body)
    assert replay.status_code == 401 and replay.json()["code"] == "siwe_bad_nonce"

    nonce = api.get("/v1/auth/nonce").json()["nonce"]
    message = siwe_message(owner.address, nonce, domain)
    forged = api.post("/v1/auth/login", json={"message": message, "signature": sign(Account.create(), message)})
    assert forged.status_code == 401 and forged.json()["code"] == "siwe_bad_signature"

    made_up = siwe_message(owner.address, "abcdef0123456789", domain)
    unknown = api.post("/v1/auth/login", json={"message": made_up, "signature": sign(owner, made_up)})
    assert unknown.status_code == 401 and unknown.json()["code"] == "siwe_bad_nonce"

    elsewhere = siwe_message(owner.address, api.get("/v1/auth/nonce").json()["nonce"], "evil.example")
    wrong_domain = api.post("/v1/auth/login", json={"message": elsewhere, "signature": sign(owner, elsewhere)})
    assert wrong_domain.status_code == 401 and wrong_domain.json()["code"] == "siwe_domain_mismatch"

    assert login(api, owner, chain_id=1).json()["code"] == "siwe_chain_mismatch"
    expired = login(api, owner, expiration=datetime.now(UTC) - timedelta(minutes=1))
    assert expired.status_code == 401 and expired.json()["code"] == "siwe_expired"

    garbage = api.post("/v1/auth/login", json={"message": "hello", "signature": "0x" + "11" * 65})
    assert garbage.status_code == 400 and garbage.json()["code"] == "invalid_siwe_message"


def test_a_message_signed_for_a_phishing_domain_is_refused_even_when_the_host_header_agrees(api, mirror):
    """Issue 12 #3: the allowed domains are configuration, never the request's Host header."""
    owner = mirror.owner
    nonce = api.get("/v1/auth/nonce").json()["nonce"]
    phished = siwe_message(owner.address, nonce, "evil.example")
    refused = api.post("/v1/auth/login", json={"message": phished, "signature": sign(owner, phished)},
                       headers={"Host": "evil.example"})
    assert refused.status_code == 401 and refused.json()["code"] == "siwe_domain_mismatch", refused.text
    assert SIWE_DOMAIN in refused.json()["detail"] and "evil.example" in refused.json()["detail"]
    # the refusal did not spend the nonce: the same wallet signs in for the real domain with it
    genuine = siwe_message(owner.address, nonce, SIWE_DOMAIN)
    assert api.post("/v1/auth/login", json={"message": genuine, "signature": sign(owner, genuine)}).status_code == 200


def test_the_allowed_domain_defaults_to_the_public_url_not_the_host_header():
    from api.settings import ApiSettings

    assert ApiSettings(_env_file=None, host="127.0.0.1", port=8123).siwe_domains == ["127.0.0.1:8123"]
    public = ApiSettings(_env_file=None, public_url="https://api.negawatt.example/")
    assert public.public_url == "https://api.negawatt.example" and public.siwe_domains == ["api.negawatt.example"]
    assert ApiSettings(_env_file=None, siwe_domains=["app.example:443"]).siwe_domains == ["app.example:443"]
    with pytest.raises(ValueError):
        ApiSettings(_env_file=None, siwe_domains=["https://app.example/login"])
    with pytest.raises(ValueError):
        ApiSettings(_env_file=None, public_url="ftp://api.example")


def _valid_message(api, owner) -> str:
    return siwe_message(owner.address, api.get("/v1/auth/nonce").json()["nonce"], SIWE_DOMAIN)


HOSTILE = {  # issue 12 #1: each is refused by the shape check, before the siwe parser sees it
    "a 4,000-character domain": lambda m: m.replace(SIWE_DOMAIN, "a" * 4_000, 1),
    "a 1,700-character domain": lambda m: m.replace(SIWE_DOMAIN, "a" * 1_700, 1),
    "a 1,500-character statement": lambda m: m.replace("Sign in to negawatt to label your devices.", "ab " * 500),
    "2,000 empty lines": lambda m: "\n" * 2_000,
    "CRLF line ends": lambda m: m.replace("\n", "\r\n"),
    "a trailing newline": lambda m: m + "\n",
    "an unknown trailing field": lambda m: m + "\nFoo: bar",
    "fields out of order": lambda m: m.replace("Version: 1\nChain ID: 31337", "Chain ID: 31337\nVersion: 1"),
    "a non-ASCII statement": lambda m: m.replace("Sign in", "Sign \u00efn"),
    "an 80-character nonce": lambda m: re.sub(r"Nonce: [0-9a-f]+", "Nonce: " + "a" * 80, m),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_login_messages_are_refused_before_parsing(api, mirror, monkeypatch, name):
    from siwe import SiweMessage

    parsed = []
    real = SiweMessage.from_message.__func__
    monkeypatch.setattr(SiweMessage, "from_message",
                        classmethod(lambda cls, *a, **k: parsed.append(1) or real(cls, *a, **k)))
    message = HOSTILE[name](_valid_message(api, mirror.owner))
    answer = api.post("/v1/auth/login", json={"message": message, "signature": sign(mirror.owner, message)})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["code"] in ("invalid_siwe_message", "invalid_parameter"), body
    assert body["detail"] and len(body["detail"]) < 400 and "aaaaaaaaaa" not in body["detail"], body
    assert parsed == [], "the siwe parser was handed a message the shape check should have refused"


def test_a_4000_character_message_is_refused_with_its_size_even_when_called_directly(mirror):
    """The route's schema caps the message at 2,048 characters; SiweAuth checks it again for any caller."""
    from api.db import make_engine
    from api.problems import ApiProblem
    from api.siwe_auth import SiweAuth

    auth = SiweAuth(make_engine(mirror.database_url), 31337, [SIWE_DOMAIN])
    for size in (4_000, 1_000_000):
        with pytest.raises(ApiProblem) as refused:
            auth.login("a" * size, "0x" + "11" * 65)
        assert refused.value.status == 400 and f"{size} characters; at most 2048" in refused.value.detail


def test_a_4000_character_message_is_a_400_over_http(api, mirror):
    message = _valid_message(api, mirror.owner).replace("Sign in to negawatt", "x" * 3_900)
    answer = api.post("/v1/auth/login", json={"message": message, "signature": sign(mirror.owner, message)})
    assert answer.status_code == 400 and "2048" in answer.json()["detail"], answer.text


@pytest.mark.parametrize("signature, status, code, mentions", [
    ("0x" + "00" * 65, 401, "siwe_bad_signature", "r or s is zero"),  # issue 12 #2: was a 500
    ("0x" + "00" * 64 + "1c", 401, "siwe_bad_signature", "r or s is zero"),
    ("0x" + "ff" * 65, 401, "siwe_bad_signature", "v byte is 255"),
    ("0x" + "11" * 64 + "1b", 401, "siwe_bad_signature", "does not recover"),  # no curve point has that r
    ("0x" + "ff" * 64 + "1b", 401, "siwe_bad_signature", "group order"),
    ("0x" + "00" * 64, 400, "invalid_parameter", "signature"),  # wrong length
    ("0x" + "zz" * 65, 400, "invalid_parameter", "signature"),  # not hex
    ("", 400, "invalid_parameter", "signature"),
])
def test_an_unrecoverable_or_malformed_signature_is_a_clear_problem(api, mirror, signature, status, code, mentions):
    message = _valid_message(api, mirror.owner)
    answer = api.post("/v1/auth/login", json={"message": message, "signature": signature})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code and mentions in answer.json()["detail"], answer.json()


def test_every_login_refusal_says_what_was_wrong(api, mirror):
    """Issue 12 #11: no login error has an empty detail."""
    owner = mirror.owner
    cases = [
        {"message": "hello", "signature": "0x" + "11" * 65},
        {"message": _valid_message(api, owner).replace(SIWE_DOMAIN, "other.example"), "signature": "0x" + "11" * 65},
        {"message": _valid_message(api, owner).replace("Chain ID: 31337", "Chain ID: 1"), "signature": "0x" + "11" * 65},
        {"message": siwe_message(owner.address, "abcdef0123456789", SIWE_DOMAIN), "signature": "0x" + "11" * 65},
        {"message": "", "signature": "0x"},
        {},
    ]
    message = _valid_message(api, owner)
    cases.append({"message": message, "signature": sign(Account.create(), message)})
    for body in cases:
        answer = api.post("/v1/auth/login", json=body)
        assert 400 <= answer.status_code < 500, answer.text
        problem = answer.json()
        assert problem["detail"].strip() and problem["title"] and problem["code"], (body, problem)
    assert api.post("/v1/auth/logout", headers={"Authorization": "Bearer made-up"}).json()["detail"]
