"""The DSMR P1 site-meter driver against a simulated DSMR 5 meter behind a P1-to-TCP adapter on
loopback: the telegram's CRC checked against dsmr-parser's own, tariff 1 + tariff 2 read as integer
Wh and the actual power as W (checked against the telegram text, parsed here by hand), a telegram
with a wrong CRC rejected and the next one read, the adapter going away and coming back, and a
wrong device kind refused in node.toml."""

from __future__ import annotations

import json
import re
import time

import pytest
from driver_peers import wait_for

from negawatt.localchain import free_port
from node.config import ConfigError, load_config
from node.devices.interface import DeviceUnavailable
from node.drivers import build_driver
from node.drivers.peers.dsmr_p1 import P1MeterPeer, crc16, telegram
from node.drivers.settings import DsmrP1Settings
from node.drivers.site_meter import NOT_DISPATCHABLE

FAST = {"poll_seconds": 0.2, "stale_seconds": 2.0, "timeout_seconds": 1.0, "backoff_initial_seconds": 0.1,
        "backoff_max_seconds": 0.5}


def start_peer(peer_loop, **options) -> P1MeterPeer:
    peer = P1MeterPeer("127.0.0.1", free_port(), interval_seconds=0.2, **options)
    peer_loop.run(peer.start())
    return peer


def start_driver(drivers, peer, *, wait=True, **settings):
    driver = build_driver("p1", "site_meter", "meter-p1", 1,
                          DsmrP1Settings(host="127.0.0.1", port=peer.port, **{**FAST, **settings}))
    drivers.append(driver)
    driver.start()
    if wait:
        wait_for(driver.available, "the driver reads a telegram")
    return driver


def by_hand(text: str) -> tuple[int, int]:
    """(power W, import Wh) from a telegram's text, without dsmr-parser: 1-0:1.7.0 and 1-0:1.8.1 + 1-0:1.8.2."""
    def number(obis: str) -> str:
        return re.search(rf"^1-0:{re.escape(obis)}\((\d+)\.(\d+)\*", text, re.M).group(1, 2)
    t1, t2, kw = number("1.8.1"), number("1.8.2"), number("1.7.0")
    return int(kw[0]) * 1000 + int(kw[1]), sum(int(i) * 1000 + int(d) for i, d in (t1, t2))


def test_the_peer_s_telegrams_are_valid_dsmr_5():
    from dsmr_parser import telegram_specifications
    from dsmr_parser.parsers import TelegramParser

    text = telegram(time.time(), 4_567_890, 3_210_987, 1_234)
    assert text.startswith("/") and text.endswith("\r\n") and "\r\n1-3:0.2.8(50)\r\n" in text
    body, crc = text.rsplit("!", 1)
    assert crc16(body + "!") == TelegramParser.crc16(body + "!") == int(crc.strip(), 16)
    parsed = TelegramParser(telegram_specifications.V5).parse(text, throw_ex=True)
    assert str(parsed.ELECTRICITY_USED_TARIFF_1.value) == "4567.890" and parsed.ELECTRICITY_USED_TARIFF_1.unit == "kWh"
    assert str(parsed.CURRENT_ELECTRICITY_USAGE.value) == "1.234" and parsed.CURRENT_ELECTRICITY_USAGE.unit == "kW"
    assert by_hand(text) == (1_234, 7_778_877)


def test_reads_import_energy_and_power_from_the_telegrams(peer_loop, drivers):
    peer = start_peer(peer_loop)
    driver = start_driver(drivers, peer)
    sent = peer_loop.call(lambda: (peer.freeze(), peer.sent)[1])
    wait_for(lambda: peer_loop.call(peer.snapshot)["sent"] > sent, "a telegram after the freeze")
    want = by_hand(peer_loop.call(peer.snapshot)["last"]["text"])
    wait_for(lambda: (driver.power_w(), driver.energy_wh()) == want, f"the driver reads {want}")
    last = peer_loop.call(peer.snapshot)["last"]
    assert driver.energy_wh() == last["tariff1_wh"] + last["tariff2_wh"] and isinstance(driver.energy_wh(), int)
    state = driver.state()
    assert state["kind"] == "site_meter" and state["dsmr_version"] == "50" and state["rejected"] == 0
    assert json.loads(json.dumps(state)) == state
    peer_loop.call(peer.unfreeze)
    seen = [driver.energy_wh()]
    wait_for(lambda: seen.append(driver.energy_wh()) or seen[-1] > seen[0], "the energy registers advance")
    assert seen == sorted(seen)


def test_a_telegram_with_a_wrong_crc_is_rejected_and_the_next_one_read(peer_loop, drivers):
    peer = start_peer(peer_loop)
    driver = start_driver(drivers, peer)
    accepted = driver.state()["telegrams"]
    peer_loop.call(lambda: peer.corrupt(2))
    wait_for(lambda: driver.state()["rejected"] == 2, "two telegrams rejected")
    assert "CRC checksum" in driver.state()["last_rejection"]
    wait_for(lambda: driver.state()["telegrams"] > accepted, "the next good telegram is read")
    assert driver.available() and driver.state()["connects"] == 1  # rejected telegrams do not drop the connection
    assert peer_loop.call(peer.snapshot)["sent_bad"] == 2


def test_a_port_that_sends_only_bad_telegrams_never_becomes_available(peer_loop, drivers):
    peer = start_peer(peer_loop)
    peer_loop.call(lambda: peer.corrupt(10_000))
    driver = start_driver(drivers, peer, wait=False, stale_seconds=0.5)
    wait_for(lambda: driver.failures >= 1, "the connection attempt fails")
    assert "no valid telegram" in driver.state()["error"] and "CRC checksum" in driver.state()["error"]
    with pytest.raises(DeviceUnavailable, match="no valid telegram"):
        driver.advance(0)


def test_the_adapter_going_away_and_coming_back(peer_loop, drivers):
    peer = start_peer(peer_loop)
    driver = start_driver(drivers, peer)
    last = driver.energy_wh()
    peer_loop.run(peer.stop())
    wait_for(lambda: not driver.available(), "the driver notices the adapter is gone")
    with pytest.raises(DeviceUnavailable):
        driver.energy_wh()
    failures = driver.failures
    wait_for(lambda: driver.failures > failures + 1, "reconnection attempts with back-off")
    peer_loop.run(peer.start())
    wait_for(driver.available, "the driver reconnects")
    assert driver.connects == 2 and driver.energy_wh() >= last


def test_a_site_meter_is_never_dispatched(peer_loop, drivers):
    driver = start_driver(drivers, start_peer(peer_loop))
    assert driver.flexibility_w(0) == 0 and driver.forecast_flexibility_w(0, 900) == 0
    result = driver.apply_setpoint(500, "request 1")
    assert not result.honoured and result.reason == NOT_DISPATCHABLE and driver.state()["setpoint_w"] is None
    driver.restore()


def test_the_p1_driver_drives_only_site_meters(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text('owner_keystore = "o.json"\n[[devices]]\nkeystore = "m.json"\nkind = "heat_pump"\ncapacity_w = 1\n'
                    'driver = "p1"\np1 = { host = "192.168.1.60", port = 2001 }\n')
    with pytest.raises(ConfigError, match="the p1 driver cannot stand for a heat_pump; it drives site_meter"):
        load_config(path)
    path.write_text(path.read_text().replace('"heat_pump"', '"site_meter"'))
    device = load_config(path).devices[0]
    assert device.p1.port == 2001 and device.p1.dsmr_version == "5"
    path.write_text(path.read_text().replace('driver = "p1"', 'driver = "sunspec"'))
    with pytest.raises(ConfigError, match='a \\[p1\\] table needs driver = "p1"'):
        load_config(path)
