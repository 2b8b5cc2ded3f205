"""OCPP security profile 2 on the node's Central System: wss:// (TLS 1.2+, a throwaway CA) and HTTP
Basic authentication per charge point. A real `ocpp` ChargePoint over websockets with the CA and the
right password boots and sends meter values; without credentials, with a wrong password or with
another charge point's id as username it gets 401 before the upgrade, an unknown charge point id
gets 404, plain ws:// to the TLS port and a client that does not trust the server's CA fail, and
bad security settings are start-up errors naming the field and the file."""

from __future__ import annotations

import asyncio

import pytest
from driver_peers import wait_for

from negawatt.localchain import free_port
from node.config import ConfigError, load_config
from node.device_drivers import build_node_device
from node.devices.factory import DeviceConfigError
from node.drivers import build_driver
from node.drivers.ocpp_auth import basic_header, hash_password
from node.drivers.peers.ocpp_charger import ChargerPeer
from node.drivers.settings import OcppSettings
from node.drivers.tls import client_context

PASSWORD = "charge-point-password-0123"  # 26 bytes: OCPP's 16..40
CP = "cp-secure"
FAST = {"poll_seconds": 0.5, "stale_seconds": 3.0, "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.5}


def password_source(kind: str, tmp_path, monkeypatch) -> dict:
    """The settings giving PASSWORD as a file, an environment variable or a PBKDF2 hash."""
    if kind == "file":
        (tmp_path / "cp.pw").write_text(PASSWORD + "\n")
        return {"password_file": tmp_path / "cp.pw"}
    if kind == "env":
        monkeypatch.setenv("NEGAWATT_TEST_CP_PASSWORD", PASSWORD)
        return {"password_env": "NEGAWATT_TEST_CP_PASSWORD"}
    return {"password_hash": hash_password(PASSWORD, iterations=1_000)}


def central(drivers, tls_material, version="1.6", **security) -> tuple[int, object]:
    """The node's Central System with TLS for charge point CP: (port, driver), listening."""
    port = free_port()
    tls = {"tls_cert_file": tls_material.server_cert, "tls_key_file": tls_material.server_key}
    driver = build_driver("ocpp", "ev_charger", f"ev-secure-{version}", 7_400, OcppSettings(
        host="127.0.0.1", port=port, charge_point_id=CP, version=version, **FAST, **{**tls, **security}))
    drivers.append(driver)
    driver.start()
    wait_for(lambda: "waiting for charge point" in driver.state()["error"], "the Central System listens")
    return port, driver


async def handshake(url: str, *, ssl=None, headers: dict | None = None) -> tuple[object, object]:
    """One websocket opening handshake: (HTTP status, response headers), or (the exception's name, {})."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    try:
        async with connect(url, subprotocols=["ocpp1.6"], ssl=ssl, additional_headers=headers or {},
                           open_timeout=5) as ws:
            return ws.response.status_code, ws.response.headers
    except InvalidStatus as error:
        return error.response.status_code, error.response.headers
    except Exception as error:  # TLS or protocol failure before any HTTP response
        return type(error).__name__ + ": " + str(error), {}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_charge_point_with_tls_and_its_password_boots_and_sends_meter_values(
        peer_loop, drivers, charger_peers, tls_material, tmp_path, monkeypatch, version):
    port, driver = central(drivers, tls_material, version, **password_source("file", tmp_path, monkeypatch))
    assert driver.settings.security_profile == 2
    peer = ChargerPeer(f"wss://127.0.0.1:{port}", CP, version=version, meter_seconds=0.5,
                       ssl=client_context(tls_material.ca), password=PASSWORD)
    charger_peers.append(peer)
    peer_loop.run(peer.start())
    wait_for(driver.available, "meter values over wss:// with Basic auth")
    assert peer_loop.call(lambda: peer.boots) == 1  # BootNotification accepted
    assert driver.power_w() == 7_400 and driver.energy_wh() >= 250_000  # from MeterValues
    assert driver.state()["ocpp_version"] == f"ocpp{version}"
    assert driver.apply_setpoint(2_000, "request 1").honoured  # and the Central System's calls reach it


@pytest.mark.parametrize("source", ["file", "env", "hash"])
def test_missing_or_wrong_credentials_get_401_and_an_unknown_id_404(peer_loop, drivers, charger_peers, tls_material,
                                                                     tmp_path, monkeypatch, source):
    port, driver = central(drivers, tls_material, **password_source(source, tmp_path, monkeypatch))
    trusted = client_context(tls_material.ca)
    url = f"wss://127.0.0.1:{port}/{CP}"

    status, headers = peer_loop.run(handshake(url, ssl=trusted))
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
    assert peer_loop.run(handshake(url, ssl=trusted, headers={"Authorization": basic_header(CP, PASSWORD[:-1] + "x")}))[0] == 401
    assert peer_loop.run(handshake(url, ssl=trusted, headers={"Authorization": basic_header("cp-other", PASSWORD)}))[0] == 401
    assert peer_loop.run(handshake(url, ssl=trusted, headers={"Authorization": "Basic not-base64!"}))[0] == 401
    assert peer_loop.run(handshake(url, ssl=trusted, headers={"Authorization": "Bearer " + PASSWORD}))[0] == 401
    unknown = f"wss://127.0.0.1:{port}/cp-stranger"
    assert peer_loop.run(handshake(unknown, ssl=trusted,
                                   headers={"Authorization": basic_header("cp-stranger", PASSWORD)}))[0] == 404
    # Plain ws:// to the TLS port gets no HTTP answer; a client that does not trust the CA stops at TLS.
    plain, _ = peer_loop.run(handshake(f"ws://127.0.0.1:{port}/{CP}", headers={"Authorization": basic_header(CP, PASSWORD)}))
    assert isinstance(plain, str), plain
    untrusted, _ = peer_loop.run(handshake(url, ssl=client_context(tls_material.other_ca),
                                           headers={"Authorization": basic_header(CP, PASSWORD)}))
    assert isinstance(untrusted, str) and "CERTIFICATE_VERIFY_FAILED" in untrusted, untrusted
    assert driver.connects == 0 and not driver.state()["connected"]

    # The simulated charger with a wrong password keeps being refused; with the right one it is served.
    wrong = ChargerPeer(f"wss://127.0.0.1:{port}", CP, meter_seconds=0.5, ssl=trusted, password="x" * 20)
    charger_peers.append(wrong)
    peer_loop.run(wrong.start())
    wait_for(lambda: "401" in peer_loop.call(lambda: wrong.last_error), "the wrong password is refused")
    assert peer_loop.call(lambda: wrong.boots) == 0 and driver.connects == 0
    peer_loop.run(wrong.stop())
    right = ChargerPeer(f"wss://127.0.0.1:{port}", CP, meter_seconds=0.5, ssl=trusted, password=PASSWORD)
    charger_peers.append(right)
    peer_loop.run(right.start())
    wait_for(driver.available, "the right password is accepted")


def test_basic_auth_on_plain_ws_only_when_allowed_on_loopback(peer_loop, drivers, charger_peers, tmp_path,
                                                              monkeypatch):
    """Security profile 1 (the local devnet): Basic auth without TLS, on 127.0.0.1 and only when asked for."""
    port = free_port()
    settings = OcppSettings(host="127.0.0.1", port=port, charge_point_id=CP, version="1.6", **FAST,
                            allow_plaintext_credentials=True, **password_source("env", tmp_path, monkeypatch))
    assert settings.security_profile == 1
    driver = build_driver("ocpp", "ev_charger", "ev-plain-auth", 7_400, settings)
    drivers.append(driver)
    driver.start()
    wait_for(lambda: "waiting for charge point" in driver.state()["error"], "the Central System listens")
    assert peer_loop.run(handshake(f"ws://127.0.0.1:{port}/{CP}"))[0] == 401
    peer = ChargerPeer(f"ws://127.0.0.1:{port}", CP, meter_seconds=0.5, password=PASSWORD)
    charger_peers.append(peer)
    peer_loop.run(peer.start())
    wait_for(driver.available, "the charger with its password is served")


@pytest.mark.parametrize("security, message", [
    ({"tls": True}, "TLS is OCPP security profile 2, TLS with Basic authentication: give this charge point's"),
    ({"password_env": "X"}, "Basic authentication over plain ws:// sends the password in clear"),
    ({"password_env": "X", "allow_plaintext_credentials": True, "host": "0.0.0.0"},
     "allow_plaintext_credentials is only for a loopback host"),
    ({"tls": True, "password_env": "X", "password_hash": "H"}, "give one of password_env, password_file and password_hash"),
    ({"tls": True, "password_hash": "sha256:abc"}, "password_hash must be pbkdf2_sha256$"),
    ({"tls": True, "short_password": True}, "an OCPP password is 16 to 40 bytes long, this one is 8"),
    ({"tls_cert_file": "CERT"}, "tls_cert_file and tls_key_file go together"),
    ({"tls_cert_file": "CERT", "tls_key_file": "WRONG_KEY", "password_env": "X"}, "not a PEM certificate and its matching"),
])
def test_bad_security_settings_are_refused(tls_material, tmp_path, security, message):
    values = dict(security)
    if values.pop("tls", False):
        values.update(tls_cert_file=tls_material.server_cert, tls_key_file=tls_material.server_key)
    if values.pop("short_password", False):
        (tmp_path / "short.pw").write_text("12345678\n")
        values["password_file"] = tmp_path / "short.pw"
    if values.get("password_hash") == "H":
        values["password_hash"] = hash_password(PASSWORD, iterations=1_000)
    replace = {"CERT": tls_material.server_cert, "WRONG_KEY": tls_material.client_key}
    values = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
    with pytest.raises(ValueError, match=message.replace("$", r"\$")):
        OcppSettings(charge_point_id=CP, **values)


HEAD = 'owner_keystore = "keys/owner.json"\n'


def charger(port: int, cp: str, ocpp: str) -> str:
    return (f'\n[[devices]]\nkeystore = "{cp}.json"\nkind = "ev_charger"\ncapacity_w = 7400\ndriver = "ocpp"\n'
            f'[devices.ocpp]\nport = {port}\ncharge_point_id = "{cp}"\n{ocpp}\n')


def test_node_toml_security_errors_name_the_file_and_relative_paths_are_rooted(tls_material, tmp_path):
    (tmp_path / "certs").mkdir()
    for name, source in (("server.pem", tls_material.server_cert), ("server.key", tls_material.server_key)):
        (tmp_path / "certs" / name).write_bytes(source.read_bytes())
    (tmp_path / "cp.pw").write_text(PASSWORD)
    path = tmp_path / "node.toml"
    tls = 'tls_cert_file = "certs/server.pem"\ntls_key_file = "certs/server.key"\npassword_file = "cp.pw"'
    path.write_text(HEAD + charger(9443, "wallbox-1", tls))
    (device,) = load_config(path).devices
    assert device.ocpp.tls_cert_file == tmp_path / "certs" / "server.pem" and device.ocpp.security_profile == 2

    path.write_text(HEAD + charger(9443, "wallbox-1", tls.replace("certs/server.pem", "certs/missing.pem")))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: devices[0].ocpp.tls_cert_file: "
                                       f"{tmp_path / 'certs' / 'missing.pem'}: no such file"), str(error.value)

    path.write_text(HEAD + charger(9443, "wallbox-1", tls) + charger(9443, "wallbox-2", ""))
    with pytest.raises(ConfigError, match="the OCPP chargers on 0.0.0.0:9443 must share tls_cert_file"):
        load_config(path)


def test_an_unset_password_variable_is_a_start_up_error(tls_material, monkeypatch):
    monkeypatch.delenv("NEGAWATT_TEST_UNSET", raising=False)
    settings = OcppSettings(charge_point_id=CP, tls_cert_file=tls_material.server_cert,
                            tls_key_file=tls_material.server_key, password_env="NEGAWATT_TEST_UNSET")
    with pytest.raises(DeviceConfigError, match="the environment variable NEGAWATT_TEST_UNSET is not set"):
        build_node_device("ev_charger", "0xabc", 7_400, {}, "ocpp", settings)
    monkeypatch.setenv("NEGAWATT_TEST_UNSET", "too-short")
    with pytest.raises(DeviceConfigError, match="NEGAWATT_TEST_UNSET: an OCPP password is 16 to 40 bytes"):
        build_node_device("ev_charger", "0xabc", 7_400, {}, "ocpp", settings)


def test_the_hash_tool_makes_a_hash_that_verifies():
    from node.drivers.ocpp_auth import PasswordCheck

    check = PasswordCheck(hashed=hash_password(PASSWORD, iterations=1_000))
    assert asyncio.run(check.verify(PASSWORD.encode())) and not asyncio.run(check.verify(b"x" * 20))
    with pytest.raises(ValueError, match="16 to 40 bytes"):
        hash_password("short")
