"""The MQTT relay/plug driver against a real Mosquitto broker (started by the test) and a simulated
plug speaking Shelly Gen2, Tasmota or generic topics: reading power and energy, switching off and on
or limiting, the plug going silent, and the broker restarting."""

from __future__ import annotations

import pytest
from driver_peers import wait_for

from node.devices.interface import DeviceUnavailable
from node.drivers import build_driver
from node.drivers.peers.mqtt_plug import PlugPeer
from node.drivers.settings import MqttSettings

FAST = {"poll_seconds": 0.5, "stale_seconds": 2.0, "confirm_seconds": 5.0, "backoff_initial_seconds": 0.1,
        "backoff_max_seconds": 0.5}


def start(peer_loop, drivers, broker, style, plug_topic, **settings):
    peer = PlugPeer("127.0.0.1", broker.port, plug_topic, style=style, load_w=1_800, publish_seconds=0.3)
    peer_loop.run(peer.start())
    driver = build_driver("mqtt", "water_heater", f"plug-{plug_topic}", 1_800,
                          MqttSettings(style=style, port=broker.port, **{**FAST, **settings}))
    drivers.append(driver)
    driver.start()
    wait_for(driver.available, f"the driver reads the {style} plug")
    return peer, driver


@pytest.mark.parametrize("style", ["shelly_gen2", "tasmota"])
def test_reads_power_and_energy_and_switches_off_and_back_on(peer_loop, drivers, broker, style):
    peer, driver = start(peer_loop, drivers, broker, style, f"{style}-1", topic=f"{style}-1")
    assert driver.power_w() == 1_800
    energy = driver.energy_wh()
    assert 5_000 <= energy <= peer_loop.call(peer.snapshot)["energy_wh"]  # Tasmota's kWh read as Wh
    wait_for(lambda: driver.energy_wh() > energy, "the plug's counter advances")

    result = driver.apply_setpoint(300, "request 3")
    plug = peer_loop.call(peer.snapshot)
    assert result.honoured and result.power_w == 0
    assert plug["on"] is False and plug["power_w"] == 0 and plug["commands"][-1].lower() == "switch:off"
    assert driver.state()["curtailing"] and driver.state()["relay_on"] is False
    counter = driver.energy_wh()

    driver.restore()
    wait_for(lambda: peer_loop.call(peer.snapshot)["on"], "the relay switched back on")
    wait_for(lambda: driver.power_w() == 1_800, "power back after restore")
    assert driver.energy_wh() >= counter and not driver.state()["curtailing"]


def test_a_plug_that_was_off_stays_off_after_restore(peer_loop, drivers, broker):
    peer, driver = start(peer_loop, drivers, broker, "shelly_gen2", "off-1", topic="off-1")
    peer_loop.call(lambda: setattr(peer, "on", False))
    wait_for(lambda: driver.power_w() == 0 and driver.state()["relay_on"] is False, "the plug reports off")
    assert driver.apply_setpoint(0, "request 4").honoured
    driver.restore()
    assert peer_loop.call(peer.snapshot)["commands"] == ["switch:off"]  # no "on" sent


def test_generic_topics_limit_power_instead_of_switching(peer_loop, drivers, broker):
    t = "evse-1"
    peer, driver = start(peer_loop, drivers, broker, "generic", t, power_topic=f"{t}/power",
                         energy_topic=f"{t}/energy", state_topic=f"{t}/state", command_topic=f"{t}/set",
                         limit_topic=f"{t}/limit/set")
    result = driver.apply_setpoint(700, "request 5")
    plug = peer_loop.call(peer.snapshot)
    assert result.honoured and result.power_w == 700 and plug["on"] and plug["limit_w"] == 700
    driver.restore()
    wait_for(lambda: driver.power_w() == 1_800, "the limit lifted")
    assert peer_loop.call(peer.snapshot)["limit_w"] is None


def test_a_silent_plug_is_unavailable_and_a_broker_restart_is_survived(peer_loop, drivers, broker):
    peer, driver = start(peer_loop, drivers, broker, "shelly_gen2", "gone-1", topic="gone-1")
    peer_loop.run(peer.stop())  # the plug stops reporting; the broker is still there
    wait_for(lambda: not driver.available(), "the silent plug goes stale")
    assert "old" in driver.state()["error"] and driver.state()["connected"]
    with pytest.raises(DeviceUnavailable):
        driver.advance(0)
    with pytest.raises(DeviceUnavailable):
        driver.flexibility_w(0)
    peer_loop.run(peer.start())
    wait_for(driver.available, "the plug reports again")

    broker.stop()
    wait_for(lambda: not driver.state()["connected"], "the driver notices the broker is gone")
    with pytest.raises(DeviceUnavailable):
        driver.apply_setpoint(0, "request 6")
    broker.start()
    wait_for(driver.available, "the driver reconnects to the restarted broker", timeout=30)
    assert driver.connects >= 2
    assert driver.apply_setpoint(0, "request 7").honoured
    assert peer_loop.call(peer.snapshot)["on"] is False
