"""The node's metering, dispatch, metrics and status file with a real driver whose device goes away
(a Modbus inverter on loopback): no reading lost or counted twice, no commitment and no "honoured"
setpoint for a device that does not answer, the setpoint applied once it answers again, and the
device reported unavailable and not curtailing."""

from __future__ import annotations

from driver_peers import wait_for
from eth_account import Account

from negawatt.localchain import free_port
from node.dispatch import Dispatcher, NodeDevice, Policy, Request, decide, open_dispatch_db
from node.drivers import build_driver, status_file
from node.drivers.peers.modbus_inverter import InverterPeer
from node.drivers.settings import ModbusSettings
from node.metering import Meter, MeteredDevice
from node.metrics import NodeMetrics
from node.outbox import Outbox
from node.uploader import UploadStats

ORACLE = "http://127.0.0.1:9"
REGISTRY = "0x" + "11" * 20
INTERVAL = 60


def inverter(peer_loop, drivers):
    port = free_port()
    peer = InverterPeer("127.0.0.1", port, max_charge_w=5_000)
    peer_loop.run(peer.start())
    driver = build_driver("modbus", "battery", "battery", 5_000, ModbusSettings(
        host="127.0.0.1", port=port, poll_seconds=0.2, stale_seconds=1.0, backoff_initial_seconds=0.1,
        backoff_max_seconds=0.5, max_read_delay_seconds=30))
    drivers.append(driver)
    driver.start()
    wait_for(driver.available, "the inverter answers")
    return peer, driver


def test_metering_skips_an_unanswering_device_without_losing_or_repeating_readings(peer_loop, drivers, tmp_path):
    peer, driver = inverter(peer_loop, drivers)
    account = Account.create()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    meter = Meter(outbox, [MeteredDevice(account.address, bytes(account.key), driver)], INTERVAL, 31337, REGISTRY,
                  lambda: [ORACLE])
    # The node's clock is given explicitly; the counter is the inverter's own, read when ticking.
    assert meter.tick(600.0) == 0  # metering starts at 600
    start_counter = outbox.meter_state(account.address)[1]
    wait_for(lambda: driver.energy_wh() > start_counter, "the inverter's counter moves")
    assert meter.tick(660.5) == 1  # [600, 660)

    peer_loop.run(peer.stop())
    wait_for(lambda: not driver.available(), "the inverter is gone")
    assert meter.tick(720.2) == 0 and meter.tick(725.0) == 0  # not answering: skipped, retried
    assert account.address in meter.unavailable
    peer_loop.run(peer.start())
    wait_for(driver.available, "the inverter is back")
    assert meter.tick(735.0) == 1  # 15 s after the boundary: [660, 720) metered with the counter read now
    assert account.address not in meter.unavailable
    wait_for(lambda: driver.energy_wh() > outbox.meter_state(account.address)[1], "the counter moves")
    assert meter.tick(780.1) == 1  # [720, 780)
    counter_780 = outbox.meter_state(account.address)[1]

    peer_loop.run(peer.stop())
    wait_for(lambda: not driver.available(), "the inverter is gone again")
    assert meter.tick(840.0) == 0
    peer_loop.run(peer.start())
    wait_for(driver.available, "the inverter is back again")
    assert meter.tick(875.0) == 0  # 35 s late: this boundary is skipped
    assert meter.tick(900.1) == 0  # metering restarts at 900 (a gap in time)
    restart_counter = outbox.meter_state(account.address)[1]
    wait_for(lambda: driver.energy_wh() > restart_counter, "the counter moves")
    assert meter.tick(960.3) == 1 and meter.tick(961.0) == 0  # [900, 960), once

    batches = outbox.batches(account.address)
    assert [(b.start, b.sequence) for b in batches] == [(600, 0), (660, 1), (720, 2), (900, 3)]
    assert all(b.signer(31337, REGISTRY) == account.address for b in batches)
    final_counter = outbox.meter_state(account.address)[1]
    # Contiguous intervals add up exactly to the counter's progress: nothing lost, nothing twice.
    assert sum(b.readings[0] for b in batches[:3]) == counter_780 - start_counter
    assert batches[0].readings[0] > 0 and batches[3].readings[0] > 0
    assert batches[3].readings[0] == final_counter - restart_counter


def test_dispatch_and_metrics_never_count_an_unanswering_device_as_curtailing(peer_loop, drivers, tmp_path):
    peer, driver = inverter(peer_loop, drivers)
    account = Account.create()
    device = NodeDevice(account.address, bytes(account.key), driver, zone=1, capacity_w=5_000)
    clock = {"now": 1_000.0}
    outbox = Outbox(tmp_path / "outbox.sqlite")
    dispatcher = Dispatcher(open_dispatch_db(str(tmp_path / "dispatch.sqlite")), outbox, [device], Policy(), 31337,
                            REGISTRY, lambda: [ORACLE], clock=lambda: clock["now"], retry_seconds=0.0)
    metrics = NodeMetrics()

    def sample(name: str) -> float:
        labels = {"device": account.address}
        if name == "negawatt_node_device_available":
            labels["driver"] = "modbus"
        return metrics.registry.get_sample_value(name, labels)

    peer_loop.run(peer.stop())
    wait_for(lambda: not driver.available(), "the inverter is gone")
    watts, reason = decide(Policy(), Request(1, 1, 1_100, 1_200, 3_000, 10**6, REGISTRY), device, 1_000.0)
    assert watts == 0 and reason.startswith("device unavailable")
    assert dispatcher.on_request(Request(1, 1, 1_100, 1_200, 3_000, 10**6, REGISTRY)) == 0  # no commitment
    assert [d["decision"] for d in dispatcher.decisions(1)] == ["declined"]
    metrics.update(outbox, UploadStats(), [device], [])
    assert sample("negawatt_node_device_available") == 0 and sample("negawatt_node_device_curtailed") == 0

    peer_loop.run(peer.start())
    wait_for(driver.available, "the inverter is back")
    assert dispatcher.on_request(Request(2, 1, 1_100, 1_200, 3_000, 10**6, REGISTRY)) > 0
    peer_loop.run(peer.stop())
    wait_for(lambda: not driver.available(), "the inverter is gone in the window")
    clock["now"] = 1_100.0
    dispatcher.step()
    dispatcher.step()
    decisions = dispatcher.decisions(2)
    assert [d["decision"] for d in decisions] == ["committed", "unavailable"]  # recorded once, retried
    state = dispatcher.db.execute("SELECT state FROM participations WHERE request_id = 2").fetchone()[0]
    assert state == "committed"  # not applied, so not honoured
    metrics.update(outbox, UploadStats(), [device], [])
    assert sample("negawatt_node_device_curtailed") == 0

    status_file.write(tmp_path, [(account.address, driver)])
    reported = status_file.read(tmp_path, account.address)
    assert reported["available"] is False and reported["error"] and reported["curtailing"] is False

    peer_loop.run(peer.start())
    wait_for(driver.available, "the inverter is back in the window")
    clock["now"] = 1_130.0
    dispatcher.step()
    assert [d["decision"] for d in dispatcher.decisions(2)][-1] == "applied"
    assert peer_loop.call(peer.snapshot)["charge_limit_w"] < 5_000
    metrics.update(outbox, UploadStats(), [device], [])
    assert sample("negawatt_node_device_available") == 1 and sample("negawatt_node_device_curtailed") == 1

    peer_loop.run(peer.stop())  # gone when the window ends: restored by the driver once it answers
    wait_for(lambda: not driver.available(), "the inverter is gone at the end")
    clock["now"] = 1_200.0
    dispatcher.step()
    assert [d["decision"] for d in dispatcher.decisions(2)][-2:] == ["restore pending", "restored"]
    peer_loop.run(peer.start())
    wait_for(lambda: peer_loop.call(peer.snapshot)["charge_limit_w"] == 5_000, "restored on reconnection")
