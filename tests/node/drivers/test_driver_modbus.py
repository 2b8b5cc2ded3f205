"""The Modbus TCP inverter driver against a real pymodbus server simulating a battery inverter on
loopback: reading power, energy and SoC, curtailing and restoring through the charge-limit register,
the inverter going away and coming back, and the register map's codec and validation."""

from __future__ import annotations

import pytest
from driver_peers import wait_for
from pydantic import ValidationError

from negawatt.localchain import free_port
from node.devices.interface import DeviceUnavailable
from node.drivers import build_driver
from node.drivers.peers.modbus_inverter import InverterPeer
from node.drivers.register_map import RegisterMap, default_register_map
from node.drivers.settings import ModbusSettings


def start(peer_loop, drivers, register_map=None, **settings):
    port = free_port()
    peer = InverterPeer("127.0.0.1", port, register_map=register_map, max_charge_w=5_000, initial_soc=0.3)
    peer_loop.run(peer.start())
    options = {"poll_seconds": 0.2, "stale_seconds": 1.0, "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.5,
               **settings}
    if register_map is not None:
        options["register_map"] = register_map
    driver = build_driver("modbus", "battery", "battery-1", 5_000, ModbusSettings(host="127.0.0.1", port=port, **options))
    drivers.append(driver)
    driver.start()
    wait_for(driver.available, "the driver reads the inverter")
    return peer, driver


def test_reads_power_energy_and_soc_and_curtails_and_restores(peer_loop, drivers):
    peer, driver = start(peer_loop, drivers)
    state = driver.state()
    inverter = peer_loop.call(peer.snapshot)
    assert state["available"] and state["driver"] == "modbus"
    assert driver.power_w() == inverter["power_w"] == 5_000  # charging at full power
    assert abs(state["soc"] - inverter["soc"]) < 0.001 and 0.29 < state["soc"] < 0.31
    first = driver.energy_wh()
    assert 1_234_567 <= first <= inverter["energy_wh"]  # the inverter's own lifetime counter
    assert driver.flexibility_w(0) == 5_000

    result = driver.apply_setpoint(1_200, "request 7")
    assert result.honoured and result.power_w <= 1_200
    inverter = peer_loop.call(peer.snapshot)
    assert inverter["charge_limit_w"] == 1_200 and inverter["power_w"] == 1_200  # the register and the physics
    wait_for(lambda: driver.power_w() == 1_200, "the driver reads the curtailed power")
    assert driver.state()["curtailing"] and driver.state()["charge_limit_w"] == 1_200
    wait_for(lambda: driver.energy_wh() > first, "the energy counter keeps counting")

    driver.restore()
    inverter = peer_loop.call(peer.snapshot)
    assert inverter["charge_limit_w"] == 5_000 and inverter["power_w"] == 5_000
    wait_for(lambda: driver.power_w() == 5_000, "power back after restore")
    assert not driver.state()["curtailing"] and driver.state()["setpoint_w"] is None


def test_an_inverter_that_stops_answering_is_unavailable_and_reconnects_with_backoff(peer_loop, drivers):
    peer, driver = start(peer_loop, drivers)
    assert driver.apply_setpoint(1_000, "request 1").honoured
    peer_loop.run(peer.stop())
    wait_for(lambda: not driver.available(), "the driver notices the inverter is gone")
    with pytest.raises(DeviceUnavailable):
        driver.advance(0)
    with pytest.raises(DeviceUnavailable):
        driver.energy_wh()
    with pytest.raises(DeviceUnavailable):
        driver.apply_setpoint(500, "request 2")  # never counted as curtailing
    state = driver.state()
    assert state["available"] is False and state["curtailing"] is False and state["error"]
    with pytest.raises(DeviceUnavailable, match="answers again"):
        driver.restore()
    assert driver.state()["restore_pending"]
    failures = driver.failures
    wait_for(lambda: driver.failures > failures + 1, "reconnection attempts while the inverter is away")

    peer_loop.run(peer.start())  # the same inverter (still limited to 1000 W) comes back
    wait_for(driver.available, "the driver reconnects")
    assert driver.connects == 2 and driver.backoff.attempts == 0
    # The pending restore was carried out on reconnection.
    wait_for(lambda: peer_loop.call(peer.snapshot)["charge_limit_w"] == 5_000, "the charge limit restored")
    # The driver clears its flag after the write is confirmed, on its own loop: the peer can see the
    # write a moment before, so wait for the flag rather than read it once.
    wait_for(lambda: not driver.state()["restore_pending"], "the pending restore marked done")
    assert driver.state()["setpoint_w"] is None
    wait_for(lambda: driver.power_w() == 5_000, "full charging power again")


def test_custom_register_map_end_to_end(peer_loop, drivers):
    custom = RegisterMap.model_validate({
        "word_order": "little", "power_sign": -1,
        "power": {"address": 100, "type": "int32", "table": "input", "scale": 0},
        "energy": {"address": 110, "type": "uint32", "scale": 1},  # in units of 10 Wh
        "soc": {"address": 120, "type": "uint16", "scale_register": 121},
        "charge_limit": {"address": 130, "type": "uint32", "scale": 0},
    })
    peer, driver = start(peer_loop, drivers, register_map=custom)
    assert driver.power_w() == 5_000  # reported as -5000 (charging negative), read as import
    energy = driver.energy_wh()
    assert energy % 10 == 0 and abs(energy - peer_loop.call(peer.snapshot)["energy_wh"]) <= 10
    result = driver.apply_setpoint(2_500, "custom map")
    assert result.honoured and peer_loop.call(peer.snapshot)["charge_limit_w"] == 2_500


def test_register_codec_roundtrips_and_sunspec_not_implemented_values():
    m = default_register_map()
    for kind, value in [("int16", -1234), ("uint16", 65_000), ("int32", -70_000), ("uint32", 4_000_000_000),
                        ("acc32", 123_456)]:
        for order in ("big", "little"):
            rmap = m.model_copy(update={"word_order": order})
            point = m.power.model_copy(update={"type": kind, "scale_register": None})
            assert rmap.decode(point, rmap.encode(point, value)) == value
    big = m.model_copy(update={"word_order": "big"})
    acc = m.energy
    assert big.encode(acc, 0x12345678) == [0x1234, 0x5678]
    assert m.model_copy(update={"word_order": "little"}).encode(acc, 0x12345678) == [0x5678, 0x1234]
    assert big.decode(acc, [0, 0]) is None  # acc32 0: not accumulated
    assert big.decode(m.power, [0x8000]) is None  # int16 not implemented
    with pytest.raises(ValueError, match="does not fit"):
        big.encode(m.power, 40_000)


@pytest.mark.parametrize("change, message", [
    ({"energy": {"address": 40102, "type": "int16"}}, "energy counter must be uint32 or acc32"),
    ({"charge_limit": {"address": 40120, "type": "uint16", "table": "input"}}, "must be a holding register"),
    ({"soc": {"address": 40101, "type": "uint16"}, "power": {"address": 40100, "type": "int32"}},
     "soc overlaps power at register 40101"),
    ({"charge_limit": {"address": 65_535, "type": "uint32"}}, "runs past register 65535"),
    ({"power": {"address": 40100, "type": "float32"}}, "Input should be"),
    ({"power": {"address": 40100, "type": "int16", "scale": -2, "scale_register": 40101}}, "either scale or"),
])
def test_bad_register_maps_get_clear_errors(change, message):
    base = default_register_map().model_dump()
    base.update(change)
    with pytest.raises(ValidationError, match=message):
        RegisterMap.model_validate(base)
