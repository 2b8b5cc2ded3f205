"""The SunSpec site-meter driver against a real pymodbus server serving a SunSpec map on loopback:
discovery of models 201-204, W and TotWhImp with their scale factors (checked against the peer's
registers, decoded here independently), a monotonic integer Wh counter through a register wrap
and a meter reset, refusal to be dispatched, a missing "SunS" marker or meter model, and the meter
going away and coming back."""

from __future__ import annotations

import json
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import pytest
from driver_peers import wait_for

from negawatt.localchain import free_port
from node.config import ConfigError, load_config
from node.devices.interface import DeviceUnavailable
from node.drivers import build_driver
from node.drivers.peers.sunspec_meter import SunSpecMeterPeer
from node.drivers.settings import SunSpecMeterSettings
from node.drivers.site_meter import NOT_DISPATCHABLE, MonotonicCounter

FAST = {"poll_seconds": 0.1, "stale_seconds": 1.0, "timeout_seconds": 1.0, "backoff_initial_seconds": 0.1,
        "backoff_max_seconds": 0.5}


def start_peer(peer_loop, **options) -> SunSpecMeterPeer:
    peer = SunSpecMeterPeer("127.0.0.1", free_port(), **options)
    peer_loop.run(peer.start())
    return peer


def start_driver(drivers, peer: SunSpecMeterPeer, *, wait: bool = True, **settings):
    driver = build_driver("sunspec", "site_meter", "meter-1", 1,
                          SunSpecMeterSettings(host="127.0.0.1", port=peer.port, **{**FAST, **settings}))
    drivers.append(driver)
    driver.start()
    if wait:
        wait_for(driver.available, "the driver reads the meter")
    return driver


def expected(registers: dict[str, int]) -> tuple[int, int]:
    """(W, Wh) from the raw registers, by SunSpec's rule value = raw x 10^sf (energy floored to Wh)."""
    power = Decimal(registers["W"]).scaleb(registers["W_SF"])
    energy = Decimal(registers["TotWhImp"]).scaleb(registers["TotWh_SF"])
    return int(power.to_integral_value(rounding=ROUND_HALF_EVEN)), int(energy.to_integral_value(rounding=ROUND_FLOOR))


def frozen_reading(peer_loop, peer, driver) -> dict:
    """Freeze the meter and wait until the driver reads exactly what its registers say."""
    peer_loop.call(peer.freeze)
    registers = peer_loop.call(peer.snapshot)["registers"]
    want = expected(registers)
    wait_for(lambda: (driver.power_w(), driver.state()["meter_energy_wh"]) == want,
             f"the driver reads W/TotWhImp {want}")
    return registers


@pytest.mark.parametrize("model, w_sf, wh_sf, load", [
    (201, 0, 0, {}),
    (202, -1, 1, {}),  # 0.1 W resolution, energy in units of 10 Wh
    (203, 1, -1, {}),  # 10 W steps, energy in units of 0.1 Wh
    (204, -2, 2, {"base_w": 100, "swing_w": 200}),  # 0.01 W (int16 holds up to 327.67 W), 100 Wh steps
])
def test_each_meter_model_is_discovered_and_decoded_with_its_scale_factors(peer_loop, drivers, model, w_sf, wh_sf,
                                                                           load):
    # 0.1 Wh below a multiple of 100 Wh: the coarsest register steps soon after the clock runs again.
    peer = start_peer(peer_loop, model=model, w_sf=w_sf, wh_sf=wh_sf, energy_offset_wh=3_456_799.9, **load)
    driver = start_driver(drivers, peer)
    state = driver.state()
    assert state["model"] == model and driver.model_address == 40070  # after "SunS" and the common model
    assert state["kind"] == "site_meter" and state["kind_number"] == 6 and state["dispatchable"] is False
    assert json.loads(json.dumps(state)) == state

    registers = frozen_reading(peer_loop, peer, driver)
    assert (registers["W_SF"], registers["TotWh_SF"]) == (w_sf, wh_sf)
    power, energy = expected(registers)
    assert driver.power_w() == power and driver.energy_wh() == energy  # the first reading: the meter's own counter
    assert isinstance(driver.energy_wh(), int)
    if wh_sf > 0:
        assert energy % 10 ** wh_sf == 0
    # The peer's counter is the integral of its power: as time runs, the reading advances, never back.
    peer_loop.call(peer.unfreeze)
    seen = [driver.energy_wh()]
    wait_for(lambda: seen.append(driver.energy_wh()) or seen[-1] > seen[0], "the import counter advances")
    assert seen == sorted(seen)


def test_a_register_wrap_and_a_meter_reset_keep_the_counter_monotonic(peer_loop, drivers):
    peer = start_peer(peer_loop, model=203)
    driver = start_driver(drivers, peer)
    frozen_reading(peer_loop, peer, driver)
    top = 2 ** 32 - 10
    peer_loop.call(lambda: peer.set_meter_wh(top))
    wait_for(lambda: driver.state()["meter_energy_wh"] == top, "the counter near the top of the acc32")
    assert driver.energy_wh() == top
    peer_loop.call(lambda: peer.set_meter_wh(2 ** 32 + 5))  # the register wraps to 5
    wait_for(lambda: driver.state()["meter_energy_wh"] == 5, "the wrapped register")
    assert driver.energy_wh() == 2 ** 32 + 5 and driver.state()["energy_wraps"] == 1  # counting went on exactly
    peer_loop.call(lambda: peer.set_meter_wh(2 ** 32 + 3_000_000))
    wait_for(lambda: driver.state()["meter_energy_wh"] == 3_000_000, "the counter moves on")
    before = driver.energy_wh()
    peer_loop.call(lambda: peer.set_meter_wh(7))  # the meter was reset (or replaced)
    wait_for(lambda: driver.state()["meter_energy_wh"] == 7, "the reset register")
    assert driver.energy_wh() == before + 7 and driver.state()["energy_resets"] == 1


def test_a_restarted_node_continues_the_counter_from_its_snapshot(peer_loop, drivers):
    peer = start_peer(peer_loop, model=202)
    driver = start_driver(drivers, peer)
    frozen_reading(peer_loop, peer, driver)
    before, saved = driver.energy_wh(), driver.snapshot()
    driver.stop()
    peer_loop.call(lambda: peer.set_meter_wh(40))  # the meter was reset while the node was down
    again = build_driver("sunspec", "site_meter", "meter-1", 1, SunSpecMeterSettings(host="127.0.0.1", port=peer.port,
                                                                                    **FAST))
    assert not again.resume({"driver": "p1", "counter": saved["counter"]})  # another driver's state
    assert again.resume(saved)
    drivers.append(again)
    again.start()
    wait_for(again.available, "the restarted driver reads the meter")
    assert again.energy_wh() == before + 40 and again.state()["energy_resets"] == 1


def test_the_monotonic_counter_rules():
    counter = MonotonicCounter("test", modulus_wh=1_000)
    assert counter.update(100) == 100
    assert counter.update(99) == 100  # a 1 Wh wobble is held, not a reset
    assert counter.update(120) == 120
    assert counter.update(990) == 990
    assert counter.update(10) == 1_010 and counter.wraps == 1  # more than half the modulus back: a wrap
    assert counter.update(400) == 1_400
    assert counter.update(50) == 1_450 and counter.resets == 1  # less than half back: a reset, continue
    with pytest.raises(ValueError, match="negative"):
        counter.update(-1)
    with pytest.raises(TypeError):
        counter.update(1.5)


def test_a_site_meter_is_never_dispatched(peer_loop, drivers):
    peer = start_peer(peer_loop, model=201)
    driver = start_driver(drivers, peer)
    assert driver.flexibility_w(0) == 0 and driver.forecast_flexibility_w(0, 900) == 0
    requests = peer_loop.call(lambda: peer.requests)
    result = driver.apply_setpoint(0, "request 3")
    assert not result.honoured and result.reason == NOT_DISPATCHABLE and result.requested_w == 0
    driver.restore()  # nothing to restore: no error
    state = driver.state()
    assert state["setpoint_w"] is None and not state["curtailing"] and not state["restore_pending"]
    assert peer_loop.call(lambda: peer.requests) >= requests  # only reads reached the meter
    with pytest.raises(ValueError):
        driver.apply_setpoint(-1, "bad")


def test_a_device_without_the_suns_marker_is_refused_with_a_clear_error(peer_loop, drivers):
    peer = start_peer(peer_loop, marker=(0x1234, 0x5678))
    driver = start_driver(drivers, peer, wait=False)
    wait_for(lambda: driver.failures >= 1, "discovery fails")
    error = driver.state()["error"]
    assert "no SunSpec marker 'SunS'" in error and "40000: 0x1234 0x5678" in error, error
    assert "50000: no such register" in error
    with pytest.raises(DeviceUnavailable, match="no SunSpec marker"):
        driver.advance(0)
    assert driver.connects == 0


def test_a_map_without_a_meter_model_is_refused(peer_loop, drivers):
    peer = start_peer(peer_loop, model=103)  # an inverter model, not a meter
    driver = start_driver(drivers, peer, wait=False)
    wait_for(lambda: driver.failures >= 1, "discovery fails")
    assert "has no meter model 201-204 (models found: 1, 103)" in driver.state()["error"]
    other = start_driver(drivers, start_peer(peer_loop, model=201), wait=False, model=203)
    wait_for(lambda: other.failures >= 1, "the configured model is missing")
    assert "has no meter model 203 (models found: 1, 201)" in other.state()["error"]


def test_a_meter_that_stops_answering_is_unavailable_and_reconnects(peer_loop, drivers):
    peer = start_peer(peer_loop, model=204)
    driver = start_driver(drivers, peer)
    last = driver.energy_wh()
    peer_loop.run(peer.stop())
    wait_for(lambda: not driver.available(), "the driver notices the meter is gone")
    for read in (lambda: driver.advance(0), driver.power_w, driver.energy_wh):
        with pytest.raises(DeviceUnavailable):
            read()
    failures = driver.failures
    wait_for(lambda: driver.failures > failures + 1, "reconnection attempts with back-off")
    peer_loop.run(peer.start())  # the same meter, on the same port
    wait_for(driver.available, "the driver reconnects")
    assert driver.connects == 2 and driver.energy_wh() >= last


def test_the_sunspec_driver_drives_only_site_meters(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text('owner_keystore = "o.json"\n[[devices]]\nkeystore = "m.json"\nkind = "battery"\ncapacity_w = 1\n'
                    'driver = "sunspec"\nsunspec = { host = "192.168.1.50" }\n')
    with pytest.raises(ConfigError, match="the sunspec driver cannot stand for a battery; it drives site_meter"):
        load_config(path)
    path.write_text(path.read_text().replace('"battery"', '"site_meter"'))
    device = load_config(path).devices[0]
    assert device.sunspec.port == 502 and device.sunspec.base_address is None and device.driver_settings().host
