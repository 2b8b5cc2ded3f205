"""Driver configuration in node.toml: valid real-device entries load, existing simulated configs are
unchanged, bad driver settings get errors naming the device and the field, and a node with only
simulated devices never imports a driver library."""

from __future__ import annotations

import subprocess
import sys

import pytest

from node.config import ConfigError, load_config
from node.device_drivers import build_node_device
from node.devices.factory import DeviceConfigError
from node.drivers.settings import ModbusSettings, MqttSettings

HEAD = 'owner_keystore = "keys/owner.json"\n'
SIMULATED = '[[devices]]\nkeystore = "d0.json"\nkind = "ev_charger"\ncapacity_w = 7400\nparams = { seed = 3 }\n'


def load(tmp_path, devices: str):
    path = tmp_path / "node.toml"
    path.write_text(HEAD + devices)
    return load_config(path)


def test_real_devices_load_next_to_simulated_ones(tmp_path):
    config = load(tmp_path, SIMULATED + """
[[devices]]
keystore = "d1.json"
kind = "battery"
capacity_w = 5000
driver = "modbus"
modbus = { host = "192.168.1.40", port = 1502, device_id = 3 }

[[devices]]
keystore = "d2.json"
kind = "ev_charger"
capacity_w = 11000
driver = "ocpp"
ocpp = { charge_point_id = "wallbox-1", version = "2.0.1", rate_unit = "A" }

[[devices]]
keystore = "d3.json"
kind = "water_heater"
capacity_w = 2000
driver = "mqtt"
[devices.mqtt]
style = "tasmota"
topic = "boiler"
""")
    simulated, modbus, ocpp, mqtt = config.devices
    assert simulated.driver == "simulated" and simulated.params == {"seed": 3} and simulated.driver_settings() is None
    assert modbus.modbus.port == 1502 and modbus.modbus.register_map.charge_limit.address == 40120
    assert ocpp.ocpp.port == 9000 and ocpp.ocpp.version == "2.0.1"
    assert mqtt.mqtt.resolved()["energy_topic"] == "tele/boiler/SENSOR" and mqtt.mqtt.resolved()["energy_unit"] == "kWh"
    driver = build_node_device("battery", "0xabc", 5_000, {}, "modbus", modbus.modbus)
    assert driver.live and driver.state()["available"] is False  # built, not connected until start()


@pytest.mark.parametrize("device, message", [
    ('driver = "modbus"\nmodbus = { host = "10.0.0.2", port = 70000 }', "devices[1].modbus.port: must be 1..65535"),
    ('driver = "modbus"', 'devices[1]: driver = "modbus" needs its settings table'),
    ('mqtt = { style = "tasmota", topic = "x" }', 'a [mqtt] table needs driver = "mqtt"'),
    ('driver = "modbus"\nparams = { seed = 1 }\nmodbus = { host = "h" }', "params are for simulated devices"),
    ('driver = "ocpp"\nocpp = { charge_point_id = "cp" }', "the ocpp driver cannot stand for a battery"),
    ('driver = "zigbee"', "devices[1].driver: Input should be"),
    ('driver = "modbus"\nmodbus = { host = "h", device_id = 300 }', "devices[1].modbus.device_id"),
    ('driver = "modbus"\nmodbus = { host = "h", poll_seconds = 20, stale_seconds = 5 }',
     "stale_seconds must be >= poll_seconds"),
    ('driver = "modbus"\nmodbus = { host = "h", colour = 1 }', "devices[1].modbus.colour: Extra inputs"),
    ('driver = "modbus"\nmodbus = { host = "h", register_map = { power = { address = 1, type = "int16" }, '
     'energy = { address = 1, type = "acc32" }, charge_limit = { address = 9, type = "uint16" } } }',
     "energy overlaps power at register 1"),
    ('driver = "mqtt"\nmqtt = { style = "shelly_gen2" }', "style shelly_gen2 needs topic"),
    ('driver = "mqtt"\nmqtt = { style = "generic", power_topic = "p" }',
     "style generic needs energy_topic, command_topic or limit_topic"),
    ('driver = "mqtt"\nmqtt = { style = "tasmota", topic = "plugs/#" }', "without wildcards"),
])
def test_bad_driver_settings_get_clear_errors(tmp_path, device, message):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, SIMULATED + f'\n[[devices]]\nkeystore = "d1.json"\nkind = "battery"\ncapacity_w = 5000\n{device}\n')
    assert message in str(error.value), str(error.value)
    assert str(tmp_path / "node.toml") in str(error.value)


def test_the_factory_refuses_mismatched_drivers():
    with pytest.raises(DeviceConfigError, match="cannot stand for a ev_charger"):
        build_node_device("ev_charger", "0xabc", 7_400, {}, "modbus", ModbusSettings(host="h"))
    with pytest.raises(DeviceConfigError, match="needs MqttSettings"):
        build_node_device("household", "0xabc", 100, {}, "mqtt", ModbusSettings(host="h"))
    assert MqttSettings(style="generic", power_topic="p", energy_topic="e", limit_topic="l").resolved()["limit_topic"] == "l"


def test_a_simulated_node_does_not_load_driver_libraries():
    code = ("import sys, node.runtime, node.cli, node.config\n"
            "from node.device_drivers import build_node_device\n"
            "build_node_device('ev_charger', '0xabc', 7400, {'seed': 1})\n"
            "loaded = [m for m in ('pymodbus', 'ocpp', 'aiomqtt', 'paho', 'jsonschema') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_drivers_do_not_load_the_simulators():
    code = ("import sys, node.drivers.live, node.drivers.modbus_inverter, node.drivers.mqtt_relay\n"
            "loaded = [m for m in sys.modules if m == 'node.devices.simulated' or m == 'node.devices.factory']\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)
