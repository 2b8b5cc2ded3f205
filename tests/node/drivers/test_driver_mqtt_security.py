"""The MQTT driver against a real Mosquitto broker with a TLS 1.2+ listener and a password file (no
anonymous access): it reads and switches a plug over TLS with the right password; a wrong password,
a broker certificate from an untrusted CA, plain TCP to the TLS port and a missing client
certificate (where the broker asks for one) all fail, with the reason in the device's state."""

from __future__ import annotations

import pytest
from driver_peers import wait_for
from tls_material import BROKER_USERS, start_secure_broker

from node.drivers import build_driver
from node.drivers.peers.mosquitto import write_password_file_pbkdf2
from node.drivers.peers.mqtt_plug import PlugPeer
from node.drivers.settings import MqttSettings
from node.drivers.tls import client_context

FAST = {"poll_seconds": 0.5, "stale_seconds": 2.0, "confirm_seconds": 5.0, "timeout_seconds": 2.0,
        "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.5}


def secret_file(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


def plug(peer_loop, port, tls_material, topic):
    """The simulated plug, logged in to the secured broker with its own account."""
    peer = PlugPeer("127.0.0.1", port, topic, load_w=1_500, publish_seconds=0.3,
                    tls_context=client_context(tls_material.ca), username="plug", password=BROKER_USERS["plug"])
    peer_loop.run(peer.start())
    wait_for(lambda: peer_loop.call(lambda: peer.connected), "the plug reaches the TLS broker")
    return peer


def driver_for(drivers, port, topic, **security):
    driver = build_driver("mqtt", "water_heater", f"plug-{topic}", 1_500, MqttSettings(
        style="shelly_gen2", host="127.0.0.1", port=port, topic=topic, **FAST, **security))
    drivers.append(driver)
    driver.start()
    return driver


def refused(driver, what: str) -> str:
    """Wait until the driver failed to connect at least twice; its reason (it never connected)."""
    wait_for(lambda: driver.failures >= 2, what)
    assert driver.connects == 0 and not driver.available() and not driver.state()["connected"]
    return driver.state()["error"]


def test_tls_with_the_right_password_reads_and_switches_the_plug(peer_loop, drivers, secure_broker, tls_material,
                                                                 tmp_path):
    peer = plug(peer_loop, secure_broker, tls_material, "tls-1")
    driver = driver_for(drivers, secure_broker, "tls-1", username="node", tls_ca_file=tls_material.ca,
                        password_file=secret_file(tmp_path, "broker.pw", BROKER_USERS["node"]))
    wait_for(driver.available, "the driver reads the plug over TLS")
    assert driver.power_w() == 1_500 and driver.energy_wh() >= 5_000
    assert driver.apply_setpoint(0, "request 1").honoured
    assert peer_loop.call(peer.snapshot)["on"] is False
    driver.restore()
    wait_for(lambda: peer_loop.call(peer.snapshot)["on"], "switched back on over TLS")
    peer_loop.run(peer.stop())


def test_a_wrong_password_is_refused_by_the_broker(drivers, secure_broker, tls_material, tmp_path, monkeypatch):
    monkeypatch.setenv("NEGAWATT_TEST_BROKER_PASSWORD", "not-the-node-password")
    driver = driver_for(drivers, secure_broker, "wrong-1", username="node", tls_ca_file=tls_material.ca,
                        password_env="NEGAWATT_TEST_BROKER_PASSWORD")
    reason = refused(driver, "the broker refuses the login")
    assert "refused the login of 'node'" in reason, reason


def test_no_credentials_are_refused_by_the_broker(drivers, secure_broker, tls_material):
    driver = driver_for(drivers, secure_broker, "anon-1", tls_ca_file=tls_material.ca)
    reason = refused(driver, "the broker refuses an anonymous client")
    assert "refused the login of None" in reason, reason


def test_a_broker_certificate_from_an_untrusted_ca_fails_the_handshake(drivers, secure_broker, tls_material, tmp_path):
    driver = driver_for(drivers, secure_broker, "mitm-1", username="node", tls_ca_file=tls_material.other_ca,
                        password_file=secret_file(tmp_path, "broker.pw", BROKER_USERS["node"]))
    reason = refused(driver, "the TLS handshake fails")
    assert "certificate verify failed" in reason, reason


def test_plain_tcp_to_the_tls_port_fails(drivers, secure_broker, tmp_path):
    driver = driver_for(drivers, secure_broker, "plain-1", username="node",  # loopback: a password without TLS is allowed
                        password_file=secret_file(tmp_path, "broker.pw", BROKER_USERS["node"]))
    assert not driver.settings.uses_tls
    reason = refused(driver, "the plain client gets no MQTT session")
    assert reason and reason not in ("connecting", "not started"), reason


def test_a_broker_that_asks_for_a_client_certificate(peer_loop, drivers, tmp_path, tls_material):
    folder = tmp_path / "mtls"
    folder.mkdir()
    port, process = start_secure_broker(folder, tls_material, require_certificate=True,
                                        password_file=write_password_file_pbkdf2(folder / "passwd", BROKER_USERS))
    try:
        password = secret_file(tmp_path, "broker.pw", BROKER_USERS["node"])
        without = driver_for(drivers, port, "mtls-1", username="node", tls_ca_file=tls_material.ca,
                             password_file=password)
        reason = refused(without, "no client certificate, no connection")
        assert reason, reason
        # The password file was written without mosquitto_passwd (PBKDF2-SHA512): the broker takes it.
        with_cert = driver_for(drivers, port, "mtls-1", username="node", tls_ca_file=tls_material.ca,
                               tls_cert_file=tls_material.client_cert, tls_key_file=tls_material.client_key,
                               password_file=password)
        wait_for(lambda: with_cert.state()["connected"], "connected with the client certificate")
        assert with_cert.connects == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("security, message", [
    ({"host": "192.168.1.7", "username": "u", "password_env": "X"}, "would cross the network to 192.168.1.7 in clear"),
    ({"tls_ca_file": "/nonexistent/ca.pem"}, "/nonexistent/ca.pem: no such file"),
    ({"password_env": "X"}, "a broker password needs its username"),
    ({"tls": False, "tls_ca_file": "CA"}, "tls = false, but TLS files are given"),
    ({"tls_cert_file": "CERT"}, "tls_cert_file and tls_key_file go together"),
])
def test_bad_security_settings_are_refused(tls_material, security, message):
    security = {k: str(tls_material.ca) if v == "CA" else str(tls_material.client_cert) if v == "CERT" else v
                for k, v in security.items()}
    with pytest.raises(ValueError, match=message):
        MqttSettings(style="tasmota", topic="t", **security)
    # The same LAN broker without TLS is accepted when said explicitly.
    assert MqttSettings(style="tasmota", topic="t", host="192.168.1.7", username="u", password_env="X",
                        allow_plaintext_credentials=True).uses_tls is False


def test_a_missing_password_variable_is_a_start_up_error(monkeypatch):
    from node.device_drivers import build_node_device
    from node.devices.factory import DeviceConfigError

    monkeypatch.delenv("NEGAWATT_TEST_UNSET", raising=False)
    with pytest.raises(DeviceConfigError, match="the environment variable NEGAWATT_TEST_UNSET is not set"):
        build_node_device("household", "0xabc", 100, {}, "mqtt", MqttSettings(
            style="tasmota", topic="t", username="u", password_env="NEGAWATT_TEST_UNSET"))
