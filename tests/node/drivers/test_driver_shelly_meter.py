"""The Shelly site-meter driver against a simulated Shelly Pro 3EM / Pro EM on a real Mosquitto
broker: Gen2 NotifyStatus frames on <topic>/events/rpc and Shelly.GetStatus answered on <src>/rpc,
the readings equal to what the meter published, a monotonic integer Wh counter through a counter
reset, refusal to be dispatched, a silent meter and a broker restart, and TLS with a password."""

from __future__ import annotations

import json
import math

import pytest
from driver_peers import wait_for
from tls_material import BROKER_USERS

from node.config import ConfigError, load_config
from node.devices.interface import DeviceUnavailable
from node.drivers import build_driver
from node.drivers.peers.shelly_em import ShellyEmPeer
from node.drivers.settings import ShellyMeterSettings
from node.drivers.site_meter import NOT_DISPATCHABLE
from node.drivers.tls import client_context

FAST = {"poll_seconds": 0.5, "stale_seconds": 2.0, "timeout_seconds": 2.0, "backoff_initial_seconds": 0.1,
        "backoff_max_seconds": 0.5}


def start_peer(peer_loop, port, topic, *, publish_seconds=0.2, **options) -> ShellyEmPeer:
    peer = ShellyEmPeer("127.0.0.1", port, topic, publish_seconds=publish_seconds, **options)
    peer_loop.run(peer.start())
    wait_for(lambda: peer_loop.call(lambda: peer.connected), "the meter reaches the broker")
    return peer


def start_driver(drivers, port, topic, *, wait=True, **settings):
    driver = build_driver("shelly", "site_meter", f"meter-{topic}", 1,
                          ShellyMeterSettings(host="127.0.0.1", port=port, topic=topic, **{**FAST, **settings}))
    drivers.append(driver)
    driver.start()
    if wait:
        wait_for(driver.available, "the driver reads the meter")
    return driver


def frozen_reading(peer_loop, peer, driver) -> dict:
    """Freeze the meter; wait until the driver shows exactly what the meter publishes."""
    peer_loop.call(peer.freeze)
    published = peer_loop.call(peer.reported)
    want = (round(published["power_w"]), math.floor(published["energy_wh"]))
    wait_for(lambda: (driver.power_w(), driver.state()["meter_energy_wh"]) == want, f"the driver reads {want}")
    return published


@pytest.mark.parametrize("profile", ["em", "em1"])
def test_reads_the_published_power_and_energy(peer_loop, drivers, broker, profile):
    topic = f"shellypro3em-{profile}"
    peer = start_peer(peer_loop, broker.port, topic, profile=profile)
    driver = start_driver(drivers, broker.port, topic, profile=profile)
    published = frozen_reading(peer_loop, peer, driver)
    assert driver.energy_wh() == math.floor(published["energy_wh"]) and isinstance(driver.energy_wh(), int)
    state = driver.state()
    assert state["kind"] == "site_meter" and state["driver"] == "shelly" and state["profile"] == profile
    assert json.loads(json.dumps(state)) == state
    assert "Shelly.GetStatus" in peer_loop.call(lambda: peer.requests)  # the RPC request/response path
    peer_loop.call(peer.unfreeze)
    seen = [driver.energy_wh()]
    wait_for(lambda: seen.append(driver.energy_wh()) or seen[-1] > seen[0], "the energy counter advances")
    assert seen == sorted(seen)


def test_notifications_alone_are_enough(peer_loop, drivers, broker):
    """A meter that never answers RPC requests: the NotifyStatus frames carry the readings."""
    peer = start_peer(peer_loop, broker.port, "notify-only")
    peer._answer = lambda payload: None  # noqa: SLF001  (the simulated meter ignores every request)
    driver = start_driver(drivers, broker.port, "notify-only")
    frozen_reading(peer_loop, peer, driver)


def test_a_counter_reset_keeps_the_energy_monotonic(peer_loop, drivers, broker):
    peer = start_peer(peer_loop, broker.port, "reset-1")
    driver = start_driver(drivers, broker.port, "reset-1")
    frozen_reading(peer_loop, peer, driver)
    before = driver.energy_wh()
    peer_loop.call(peer.reset_counters)  # EMData.ResetCounters
    wait_for(lambda: driver.state()["meter_energy_wh"] == 0, "the reset counter is read")
    assert driver.energy_wh() == before and driver.state()["energy_resets"] == 1
    peer_loop.call(peer.unfreeze)
    wait_for(lambda: driver.state()["meter_energy_wh"] >= 1, "counting again")
    assert driver.energy_wh() == before + driver.state()["meter_energy_wh"]


def test_a_site_meter_is_never_dispatched(peer_loop, drivers, broker):
    peer = start_peer(peer_loop, broker.port, "nodispatch")
    driver = start_driver(drivers, broker.port, "nodispatch")
    assert driver.flexibility_w(0) == 0 and driver.forecast_flexibility_w(0, 900) == 0
    result = driver.apply_setpoint(0, "request 9")
    assert not result.honoured and result.reason == NOT_DISPATCHABLE
    driver.restore()
    assert driver.state()["setpoint_w"] is None and not driver.state()["curtailing"]
    assert set(peer_loop.call(lambda: peer.requests)) == {"Shelly.GetStatus"}  # nothing but status requests


def test_a_silent_meter_is_unavailable_and_a_broker_restart_is_survived(peer_loop, drivers, broker):
    peer = start_peer(peer_loop, broker.port, "silent-1")
    driver = start_driver(drivers, broker.port, "silent-1")
    peer_loop.run(peer.stop())  # the meter goes quiet; the broker is still there
    wait_for(lambda: not driver.available(), "the silent meter goes stale")
    with pytest.raises(DeviceUnavailable, match="stale"):
        driver.energy_wh()
    assert driver.state()["connected"]
    peer_loop.run(peer.start())
    wait_for(driver.available, "the meter reports again")
    broker.stop()
    wait_for(lambda: not driver.state()["connected"], "the driver notices the broker is gone")
    with pytest.raises(DeviceUnavailable):
        driver.advance(0)
    broker.start()
    wait_for(driver.available, "the driver reconnects to the restarted broker", timeout=30)
    assert driver.connects >= 2


def test_tls_with_a_password_and_a_wrong_password(peer_loop, drivers, secure_broker, tls_material, tmp_path,
                                                   monkeypatch):
    start_peer(peer_loop, secure_broker, "tls-meter", tls_context=client_context(tls_material.ca), username="plug",
               password=BROKER_USERS["plug"])
    secret = tmp_path / "broker.pw"
    secret.write_text(BROKER_USERS["node"] + "\n")
    driver = start_driver(drivers, secure_broker, "tls-meter", username="node", tls_ca_file=tls_material.ca,
                          password_file=secret)
    assert driver.settings.uses_tls and driver.energy_wh() > 0
    monkeypatch.setenv("NEGAWATT_TEST_METER_PASSWORD", "not-the-node-password")
    wrong = start_driver(drivers, secure_broker, "tls-meter", wait=False, username="node",
                         tls_ca_file=tls_material.ca, password_env="NEGAWATT_TEST_METER_PASSWORD")
    wait_for(lambda: wrong.failures >= 2, "the broker refuses the login")
    assert wrong.connects == 0 and "refused the login of 'node'" in wrong.state()["error"]


def test_settings_and_config_are_checked(tmp_path):
    with pytest.raises(ValueError, match="would cross the network to 192.168.1.7 in clear"):
        ShellyMeterSettings(topic="t", host="192.168.1.7", username="u", password_env="X")
    with pytest.raises(ValueError, match="without wildcards"):
        ShellyMeterSettings(topic="shellies/#")
    path = tmp_path / "node.toml"
    path.write_text('owner_keystore = "o.json"\n[[devices]]\nkeystore = "m.json"\nkind = "household"\ncapacity_w = 1\n'
                    'driver = "shelly"\nshelly = { topic = "shellypro3em-1" }\n')
    with pytest.raises(ConfigError, match="the shelly driver cannot stand for a household; it drives site_meter"):
        load_config(path)
    path.write_text(path.read_text().replace('"household"', '"site_meter"'))
    assert load_config(path).devices[0].shelly.profile == "em"
