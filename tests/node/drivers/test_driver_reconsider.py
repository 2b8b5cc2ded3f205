"""A device that does not answer when a request arrives (a real Modbus inverter not up yet, as a
node's real drivers are still connecting just after it starts) is declined for now and decided
again once it answers, while the gate is open: committed once, never offered twice, the pending
reconsideration kept across a restart; one that answers only after the gate is dropped."""

from __future__ import annotations

from driver_peers import wait_for
from eth_account import Account

from negawatt.localchain import free_port
from node.dispatch import Dispatcher, NodeDevice, Policy, Request, open_dispatch_db
from node.drivers import build_driver
from node.drivers.peers.modbus_inverter import InverterPeer
from node.drivers.settings import ModbusSettings
from node.outbox import Outbox

ORACLE = "http://127.0.0.1:9"
REGISTRY = "0x" + "11" * 20


def not_yet_answering_inverter(drivers):
    """A peer not started yet, and a driver already trying to reach it (as at a node's start)."""
    port = free_port()
    peer = InverterPeer("127.0.0.1", port, max_charge_w=5_000)
    driver = build_driver("modbus", "battery", "battery", 5_000, ModbusSettings(
        host="127.0.0.1", port=port, poll_seconds=0.2, stale_seconds=1.0, backoff_initial_seconds=0.1,
        backoff_max_seconds=0.3, max_read_delay_seconds=30))
    drivers.append(driver)
    driver.start()
    return peer, driver


def commitments(outbox: Outbox) -> list[tuple[int, str]]:
    return [(d.payload["requestId"], d.payload["device"]) for d in outbox.due(ORACLE, 10**12)
            if d.kind == "commitment"]


def test_a_device_that_answers_before_the_gate_is_committed_once(peer_loop, drivers, tmp_path):
    peer, driver = not_yet_answering_inverter(drivers)
    account = Account.create()
    device = NodeDevice(account.address, bytes(account.key), driver, zone=1, capacity_w=5_000)
    clock = {"now": 1_000.0}
    outbox = Outbox(tmp_path / "outbox.sqlite")
    db_path = str(tmp_path / "dispatch.sqlite")

    def dispatcher() -> Dispatcher:
        return Dispatcher(open_dispatch_db(db_path), outbox, [device], Policy(), 31337, REGISTRY, lambda: [ORACLE],
                          clock=lambda: clock["now"], retry_seconds=0.0)

    first = dispatcher()
    request = Request(1, 1, 1_600, 1_900, 3_000, 10**6, REGISTRY)  # gate closure at the start, 1_600
    assert first.on_request(request) == 0
    decisions = first.decisions(1)
    assert [d["decision"] for d in decisions] == ["declined"]
    assert decisions[0]["reason"].startswith("device unavailable") and "reconsidered" in decisions[0]["reason"]
    assert first.reconsidering() == [(1, account.address)]
    clock["now"] = 1_100.0
    first.step()  # still not answering: nothing new recorded, nothing offered
    assert [d["decision"] for d in first.decisions(1)] == ["declined"] and commitments(outbox) == []

    restarted = dispatcher()  # the pending reconsideration is in the database, not in memory
    assert restarted.reconsidering() == [(1, account.address)]
    peer_loop.run(peer.start())
    wait_for(driver.available, "the inverter answers")
    clock["now"] = 1_200.0
    restarted.step()
    assert [d["decision"] for d in restarted.decisions(1)] == ["declined", "committed"]
    assert commitments(outbox) == [(1, account.address)]
    assert restarted.reconsidering() == []

    clock["now"] = 1_300.0
    restarted.step()
    assert restarted.on_request(request) == 0  # the same request seen again (e.g. a replayed log)
    assert commitments(outbox) == [(1, account.address)]  # offered once
    assert [d["decision"] for d in restarted.decisions(1)] == ["declined", "committed"]
    peer_loop.run(peer.stop())


def test_a_device_that_answers_only_after_the_gate_is_not_offered(peer_loop, drivers, tmp_path):
    peer, driver = not_yet_answering_inverter(drivers)
    account = Account.create()
    device = NodeDevice(account.address, bytes(account.key), driver, zone=1, capacity_w=5_000)
    clock = {"now": 1_000.0}
    outbox = Outbox(tmp_path / "outbox.sqlite")
    dispatcher = Dispatcher(open_dispatch_db(str(tmp_path / "dispatch.sqlite")), outbox, [device], Policy(), 31337,
                            REGISTRY, lambda: [ORACLE], clock=lambda: clock["now"], retry_seconds=0.0)
    cleared = Request(2, 1, 2_000, 2_300, 3_000, 10**6, REGISTRY, holdout_bps=0, gate_closure=1_500)
    assert dispatcher.on_request(cleared) == 0 and dispatcher.reconsidering() == [(2, account.address)]

    peer_loop.run(peer.start())
    wait_for(driver.available, "the inverter answers")
    clock["now"] = 1_496.0  # 4 s before the gate: within min_lead_seconds (5), too late to commit
    dispatcher.step()
    decisions = dispatcher.decisions(2)
    assert [d["decision"] for d in decisions] == ["declined", "declined"]
    assert "no longer reconsidered" in decisions[-1]["reason"]
    assert dispatcher.reconsidering() == [] and commitments(outbox) == []
    dispatcher.step()
    assert len(dispatcher.decisions(2)) == 2
    peer_loop.run(peer.stop())
