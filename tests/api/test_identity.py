"""Sign-In with Ethereum: real EIP-4361 messages signed with eth-account; only a device's on-chain
owner writes its profile; nonces are single-use; sessions and profiles survive a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import mirror_app, serve
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
    domain = client.base_url.netloc.decode()
    message = siwe_message(account.address, nonce, domain, **message_options)
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
    after = api.put(f"/v1/devices/{device}/profile", json={"name": "x"}, headers=auth)
    assert after.status_code == 401


def test_sign_in_rejects_replays_and_mismatches(api, mirror):
    owner = mirror.owner
    domain = api.base_url.netloc.decode()
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
