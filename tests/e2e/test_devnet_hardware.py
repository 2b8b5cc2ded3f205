"""`negawatt devnet --hardware`: one more node drives devices over the real protocols (a pymodbus
battery inverter, an OCPP 1.6 charger and a Shelly-style plug on Mosquitto, each a simulated peer
process) through the demo event: it meters all three and curtails and restores them."""

from __future__ import annotations

import json
import sqlite3

from negawatt.devnet.network import Devnet, DevnetSpec
from negawatt.devnet.scenario import run_event


def outbox_db(node) -> sqlite3.Connection:
    """The node's outbox file, read-only: the test inspects the raw storage the devnet no longer reads."""
    return sqlite3.connect(f"file:{node.directory / 'node-data' / 'outbox.sqlite'}?mode=ro", uri=True, timeout=30)


def test_a_hardware_node_meters_curtails_and_restores_its_real_protocol_devices(tmp_path):
    # No holdout: the one real-protocol node must be dispatched (its devices are metered alone).
    net = Devnet(DevnetSpec(nodes=1, zones=1, oracles=1, threshold=1, api=False, hardware=True, holdout_bps=0),
                 tmp_path / "run")
    try:
        net.up()
        run = run_event(net)
        hardware = next(node for node in net.nodes if node.name == "node-hw")
        kinds = sorted(kind for _, kind, _ in hardware.devices)
        assert kinds == ["battery", "ev_charger", "water_heater"]
        status = json.loads((hardware.directory / "node-data" / "device-status.json").read_text())["devices"]
        assert sorted(d["driver"] for d in status.values()) == ["modbus", "mqtt", "ocpp"]
        assert all(d["available"] and not d["curtailing"] for d in status.values())  # restored after the window
        with outbox_db(hardware) as db:
            metered = {row[0] for row in db.execute("SELECT device FROM batches")}
        assert metered == {address for address, _, _ in hardware.devices}
        mine = [row for row in net.participations() if row[0] == "node-hw"]
        # curtailed only what the allocation accepted (node-hw's owner offers cheapest), restored after it
        assert mine and all(row[4] in ("restored", "not_accepted") for row in mine)
        assert any(row[4] == "restored" for row in mine)
        log = (net.run_dir / "logs" / "node-hw.log").read_text()
        assert "node step failed" not in log
        assert run.epoch == 1
    finally:
        net.stop()
