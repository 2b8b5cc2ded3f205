"""The node as OCPP Central System (1.6J and 2.0.1) with a simulated charger, a real `ocpp`
ChargePoint client over websockets on loopback: meter values in, SetChargingProfile to curtail,
ClearChargingProfile to restore, a charger that disconnects and reconnects, and refused peers."""

from __future__ import annotations

import pytest
from driver_peers import wait_for

from negawatt.localchain import free_port
from node.devices.interface import DeviceUnavailable
from node.drivers import build_driver
from node.drivers.peers.ocpp_charger import ChargerPeer
from node.drivers.settings import OcppSettings

PURPOSE = {"1.6": "ChargePointMaxProfile", "2.0.1": "ChargingStationMaxProfile"}


def start(peer_loop, drivers, version, charge_point_id="cp-1", peer_id=None, **settings):
    port = free_port()
    options = {"poll_seconds": 0.5, "stale_seconds": 3.0, "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.5,
               **settings}
    driver = build_driver("ocpp", "ev_charger", f"ev-{version}", 7_400, OcppSettings(
        host="127.0.0.1", port=port, charge_point_id=charge_point_id, version=version, **options))
    drivers.append(driver)
    driver.start()
    wait_for(lambda: "waiting for charge point" in driver.state()["error"], "the Central System listens")
    peer = ChargerPeer(f"ws://127.0.0.1:{port}", peer_id or charge_point_id, version=version, meter_seconds=0.5)
    peer_loop.run(peer.start())
    return peer, driver


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_meter_values_in_and_a_charging_profile_curtails_and_is_cleared(peer_loop, drivers, charger_peers, version):
    peer, driver = start(peer_loop, drivers, version)
    charger_peers.append(peer)
    wait_for(driver.available, "meter values from the charger")
    state = driver.state()
    assert state["ocpp_version"] == f"ocpp{version}" and driver.power_w() == 7_400
    energy = driver.energy_wh()
    assert energy >= 250_000  # the charger's own register
    wait_for(lambda: driver.energy_wh() > energy, "the energy register advances")

    result = driver.apply_setpoint(3_000, "request 1")
    charger = peer_loop.call(peer.snapshot)
    assert result.honoured and result.power_w <= 3_000
    (profile,) = charger["profiles"].values()
    assert profile["charging_profile_purpose"] == PURPOSE[version]
    assert charger["limit_w"] == 3_000 and charger["power_w"] == 3_000
    assert driver.state()["curtailing"] and driver.state()["profile_active"]

    driver.restore()
    charger = peer_loop.call(peer.snapshot)
    assert charger["profiles"] == {} and charger["limit_w"] is None
    wait_for(lambda: driver.power_w() == 7_400, "charging at full power again")
    assert not driver.state()["curtailing"]


def test_limits_in_amperes_round_down(peer_loop, drivers, charger_peers):
    peer, driver = start(peer_loop, drivers, "2.0.1", rate_unit="A", voltage_v=230, phases=3)
    charger_peers.append(peer)
    wait_for(driver.available, "meter values from the charger")
    result = driver.apply_setpoint(2_000, "request 2")  # 2.89 A -> 2.8 A = 1932 W
    charger = peer_loop.call(peer.snapshot)
    (profile,) = charger["profiles"].values()
    schedule = profile["charging_schedule"][0]
    assert schedule["charging_rate_unit"] == "A" and float(schedule["charging_schedule_period"][0]["limit"]) == 2.8
    assert result.honoured and charger["power_w"] == 1_932


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_charger_that_disconnects_is_unavailable_until_it_reconnects(peer_loop, drivers, charger_peers, version):
    peer, driver = start(peer_loop, drivers, version)
    charger_peers.append(peer)
    wait_for(driver.available, "meter values from the charger")
    peer_loop.run(peer.stop())
    wait_for(lambda: not driver.available(), "the Central System notices the charger left")
    with pytest.raises(DeviceUnavailable):
        driver.power_w()
    with pytest.raises(DeviceUnavailable):
        driver.apply_setpoint(1_000, "request 3")
    assert driver.state()["curtailing"] is False and "cp-1" in driver.state()["error"]

    peer_loop.run(peer.start())  # the charger reconnects (and boots again)
    wait_for(driver.available, "the charger is back")
    assert driver.connects == 2 and peer_loop.call(peer.snapshot)["boots"] == 2
    assert driver.apply_setpoint(1_000, "request 4").honoured

    # Curtailed, the charger reboots and forgets its profile: the Central System sends it again.
    peer_loop.run(peer.stop())
    wait_for(lambda: not driver.available(), "the charger left again")
    peer_loop.call(lambda: peer.clear_profile(None))
    assert peer_loop.call(peer.snapshot)["limit_w"] is None
    peer_loop.run(peer.start())
    wait_for(lambda: peer_loop.call(peer.snapshot)["limit_w"] == 1_000, "the profile set again on reconnection")
    wait_for(lambda: driver.available() and driver.power_w() <= 1_000, "curtailed again")
    assert driver.state()["curtailing"]


def test_unknown_charge_points_and_wrong_versions_are_refused(peer_loop, drivers, charger_peers):
    stranger, driver = start(peer_loop, drivers, "1.6", charge_point_id="cp-home", peer_id="cp-stranger")
    charger_peers.append(stranger)
    wrong = ChargerPeer(stranger.url.rsplit("/", 1)[0], "cp-home", version="2.0.1", meter_seconds=0.5)
    peer_loop.run(wrong.start())
    charger_peers.append(wrong)
    wait_for(lambda: peer_loop.call(lambda: wrong.boots == 0 and stranger.boots == 0) and driver.failures == 0
             and not driver.available(), "nobody is accepted")
    right = ChargerPeer(stranger.url.rsplit("/", 1)[0], "cp-home", version="1.6", meter_seconds=0.5)
    peer_loop.run(right.start())
    charger_peers.append(right)
    wait_for(driver.available, "the configured charger is accepted")
    assert peer_loop.call(lambda: (wrong.boots, stranger.boots, right.boots)) == (0, 0, 1)
