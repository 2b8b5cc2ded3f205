"""A node (`negawatt node run`, its own process) on anvil against the three simulated peers, each a
real protocol peer (a pymodbus inverter, an OCPP 1.6 charger, a Shelly-style plug on Mosquitto),
started the way a devnet starts them (node.drivers.peers.start_peers): the node meters all three,
reports them in `negawatt node status`, and curtails each one when a request arrives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from driver_peers import wait_for

from negawatt.localchain import free_port, fund_owner
from node.drivers.peers import start_peers
from node.outbox import Outbox
from protocol.chain import Transactor


def negawatt(*args: str, env: dict, cwd: Path | None = None) -> str:
    command = [str(Path(sys.executable).parent / "negawatt"), *args]
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def charge_limit(port: int) -> int:
    """The inverter's charge-limit register, read by an independent Modbus client."""
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=port, timeout=3)
    try:
        assert client.connect()
        return client.read_holding_registers(40120, count=1, device_id=1).registers[0]
    finally:
        client.close()


def test_a_node_meters_and_curtails_a_modbus_inverter_an_ocpp_charger_and_an_mqtt_plug(devnet, tmp_path):
    env = {**os.environ, "NEGAWATT_NODE_PASSWORD": "e2e"}
    peers = start_peers(tmp_path / "peers")
    node = None
    try:
        work = tmp_path / "node"
        out = negawatt("node", "init", "--dir", str(work), "--zone", "1", "--rpc-url", devnet.rpc_url, "--manifest",
                       str(devnet.manifest_path), "--interval", "60", "--device", "battery:5000", "--device",
                       "ev_charger:7400", "--device", "water_heater:2000", env=env)
        owner = out.split("owner: ")[1].split()[0]
        addresses = [line.split(": ")[1].split()[0] for line in out.splitlines() if line.startswith("device ")]
        config = work / "node.toml"
        head = config.read_text().split("[[devices]]")[0]
        config.write_text(head + f"confirmations = 0\nmetrics_port = {free_port()}\neligibility_check_seconds = 1\n\n"
                          + peers.devices_toml([f"keys/device-{i}.json" for i in range(3)]))

        web3, manifest = devnet.web3(), devnet.manifest()
        abis = [entry.abi for entry in manifest.contracts.values()]
        buyer = Transactor(web3, devnet.keys[2], abis=abis)
        fund_owner(web3, manifest, owner, 10_000 * 10**18)
        registered = negawatt("node", "register", "--config", str(config), env=env, cwd=work)
        assert registered.count("registered (") == 3

        node = subprocess.Popen([str(Path(sys.executable).parent / "negawatt"), "node", "run", "--config", str(config)],
                                env=env, cwd=work, stdout=(tmp_path / "node.log").open("w"), stderr=subprocess.STDOUT)
        status_path = work / "node-data" / "device-status.json"

        def reported() -> dict:
            try:
                return json.loads(status_path.read_text())["devices"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                return {}

        wait_for(lambda: len(reported()) == 3 and all(s["available"] for s in reported().values()),
                 "the node reads all three peers", timeout=60)
        drivers = {s["driver"]: s for s in reported().values()}
        assert drivers["modbus"]["power_w"] == 5_000 and drivers["ocpp"]["power_w"] == 7_400
        assert drivers["mqtt"]["power_w"] == 2_000 and drivers["ocpp"]["ocpp_version"] == "ocpp1.6"
        status = json.loads(negawatt("node", "status", "--json", "--config", str(config), env=env, cwd=work))
        assert [(d["state"]["driver"], d["state"]["available"]) for d in status["devices"]] == [
            ("modbus", True), ("ocpp", True), ("mqtt", True)]

        market, usd = manifest.contract(web3, "FlexMarket"), manifest.contract(web3, "MockStablecoin")
        buyer.send(usd.functions.mint(buyer.address, 10**12))
        buyer.send(usd.functions.approve(market.address, 10**12))
        start = web3.eth.get_block("latest")["timestamp"] + 25
        buyer.send(market.functions.openRequest(1, start, start + 60, 10_000, 300_000, usd.address, 10**9))

        dispatch = work / "node-data" / "dispatch.sqlite"

        def applied() -> list:
            import sqlite3
            with sqlite3.connect(dispatch) as db:
                return db.execute("SELECT device, watts FROM participations WHERE state = 'applied'").fetchall()

        wait_for(lambda: len(applied()) == 3, "all three setpoints applied in the window", timeout=90)
        wait_for(lambda: all(s["curtailing"] for s in reported().values()), "all three report curtailing")
        committed = dict(applied())
        battery, charger, plug = addresses
        assert charge_limit(peers.ports["modbus"]) == 5_000 - committed[battery] == 1_000  # 80% of 5 kW shed
        wait_for(lambda: reported()[charger]["power_w"] <= 7_400 - committed[charger]
                 and reported()[charger]["profile_active"], "the charger follows its charging profile")
        assert "profile 4711 limits to 1480 W" in peers.log_path.read_text()
        wait_for(lambda: reported()[plug]["power_w"] == 0 and reported()[plug]["relay_on"] is False,
                 "the plug is switched off")

        outbox = Outbox(work / "node-data" / "outbox.sqlite")
        wait_for(lambda: all(outbox.batches(a) for a in addresses), "a signed meter batch for each peer", timeout=150)
        for address in addresses:
            first = outbox.batches(address)[0]
            assert first.sequence == 0 and first.interval_seconds == 60 and first.start % 60 == 0
            assert first.signer(manifest.chainId, manifest.address("DeviceRegistry")) == address

        wait_for(lambda: charge_limit(peers.ports["modbus"]) == 5_000, "restored when the window ends", timeout=120)
        wait_for(lambda: reported()[plug]["relay_on"] is True and not reported()[charger]["profile_active"],
                 "plug and charger restored")
    finally:
        if node is not None and node.poll() is None:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.kill()
        peers.stop()
    log = (tmp_path / "node.log").read_text()
    assert node.returncode == 0 and "node step failed" not in log, log[-3000:]
    # new devices without a day of history: warned once each in the log (checked every second), and in status
    for address in addresses:
        assert log.count(f"{address} cannot earn yet (insufficient_history)") == 1, log[-3000:]
    assert all([w["code"] for w in d["warnings"]] == ["insufficient_history"] for d in status["devices"])
