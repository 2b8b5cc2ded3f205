"""The node as an OpenADR 3 VEN of the project's own facade, over real HTTP on anvil: a BL client
(plain httpx) creates a programme and an event (a FlexMarket request escrowed on chain); the node's
VEN component finds it, the dispatcher curtails the node's simulated EV charger during the event's
window through the same `Dispatcher.curtail` as a negawatt commitment and restores it after, and
the usage the node metered (its own signed readings) reaches the facade as a USAGE report. Events
the facade's store serves malformed are skipped with a log line; a negawatt request for the window
the utility holds is declined (counted once). The full `node run` loop is not started: the VEN,
the dispatcher and the meter are driven step by step on a settable clock (runtime.build_ven wires
the same objects into the loop, and builds the VEN here)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import httpx
import pytest
from dispatch_setup import SettableClock
from eth_account import Account
from vtn_facade import ZONE, running_facade

from node.devices.factory import build_device
from node.dispatch import Dispatcher, NodeDevice, Policy, open_dispatch_db
from node.metering import Meter, MeteredDevice
from node.outbox import Outbox
from node.runtime import build_ven
from node.ven_settings import OpenAdrConfig
from protocol.requests import FlexRequest

INTERVAL = 900


def iso(seconds: int) -> str:
    """ISO 8601 UTC of unix seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@pytest.fixture(scope="module")
def facade(tmp_path_factory):
    with running_facade(tmp_path_factory.mktemp("node-ven")) as net:
        yield net


def bl_client(net) -> httpx.Client:
    """The BL client of the facade, with its bearer token."""
    cfg = net.credentials
    token = httpx.post(cfg["token_url"], data={"grant_type": "client_credentials"},
                       auth=(cfg["bl_client_id"], cfg["bl_client_secret"])).json()["access_token"]
    return httpx.Client(base_url=net.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_the_node_follows_a_utility_event_and_reports_its_usage(facade, tmp_path, caplog):
    chain_now = int(facade.web3.eth.get_block("latest")["timestamp"])
    start = -(-(chain_now + 1800) // INTERVAL) * INTERVAL  # past the facade's 15-minute gate
    end = start + INTERVAL
    with bl_client(facade) as bl:
        program = bl.post("/programs", json={"programName": "node-ven-flex", "attributes": [
            {"type": "NEGAWATT_ZONE", "values": [ZONE]}, {"type": "NEGAWATT_PRICE_CEILING", "values": ["0.30"]}]})
        assert program.status_code == 201, program.text
        program_id = program.json()["id"]
        event = bl.post("/events", json={
            "programID": program_id, "eventName": "evening-peak",
            "intervalPeriod": {"start": iso(start), "duration": "PT15M"},
            "intervals": [{"id": 0, "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-5]}]}]})
        assert event.status_code == 201, event.text
        event_id = event.json()["id"]
    bl_id = facade.credentials["bl_client_id"]
    for name, body in (("no-period", {"intervals": [{"id": 0, "payloads": [
                           {"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-3]}]}]}),
                       ("no-intervals", {"intervalPeriod": {"start": iso(start), "duration": "PT15M"}}),
                       ("a-word", {"intervalPeriod": {"start": iso(start), "duration": "PT15M"}, "intervals": [
                           {"id": 0, "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": ["lots"]}]}]})):
        facade.context.store.create("EVENT", bl_id, {"objectType": "EVENT", "programID": program_id,
                                                     "eventName": name, **body}, program_id=program_id, name=name,
                                    object_id=f"broken-{name}")  # a VTN serving what its API would refuse

    clock = SettableClock(start - 2 * INTERVAL)
    key = Account.create()
    arrival = start - 3_600
    ev = build_device({"kind": "ev_charger", "device_id": key.address, "seed": 1, "max_power_w": 7_400,
                       "sessions": [{"arrival": arrival, "departure": arrival + 12 * 3_600,
                                     "energy_needed_wh": 40_000}]}, start_time=arrival)
    device = NodeDevice(key.address, bytes(key.key), ev, zone=ZONE, capacity_w=7_400)
    db = open_dispatch_db(str(tmp_path / "dispatch.sqlite"))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    registry = facade.manifest.address("DeviceRegistry")
    dispatcher = Dispatcher(db, outbox, [device], Policy(), facade.manifest.chainId, registry, lambda: [],
                            clock=clock)
    meter = Meter(outbox, [MeteredDevice(key.address, bytes(key.key), ev)], INTERVAL, facade.manifest.chainId,
                  registry, lambda: [])
    cfg = facade.credentials
    config = OpenAdrConfig(url=facade.base, client_id=cfg["ven_client_id"], client_secret=cfg["ven_client_secret"],
                           program="node-ven-flex", poll_seconds=1)
    node = SimpleNamespace(config=SimpleNamespace(openadr=config, interval_seconds=INTERVAL), site=None,
                           devices=[device], outbox=outbox)  # what runtime.build_ven reads of a Node
    ven = build_ven(node, dispatcher, clock, open_dispatch_db(str(tmp_path / "dispatch.sqlite")))

    meter.tick(clock())
    with caplog.at_level(logging.WARNING, logger="negawatt.node.ven"):
        assert ven.poll() == 1
    assert ven.program_id == program_id and ven.ven_id and ven.resource_id
    [window] = dispatcher.utility_windows()
    assert (window["event_id"], window["start"], window["end"], window["watts"], window["state"]) == \
        (event_id, start, end, 5_000, "planned")
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    for name in ("no-period", "no-intervals", "a-word"):
        assert any(f"event broken-{name} skipped" in line for line in skipped), skipped
    assert any("no interval period" in line for line in skipped)

    # counted once: a negawatt request for the window the utility's event holds is not offered
    request = FlexRequest(7, ZONE, start, end, 3_000, 10**6, "0x" + "11" * 20, gate_closure=start - INTERVAL)
    assert dispatcher.on_request(request) == 0
    assert "utility's event" in dispatcher.decisions(7)[-1]["reason"]

    clock.now = start - INTERVAL
    meter.tick(clock())
    clock.now = start
    meter.tick(clock())
    ev.advance(start)
    before = ev.power_w()
    assert before >= 7_000  # charging flat out before the event
    dispatcher.step()
    assert dispatcher.utility_windows()[0]["state"] == "applied"
    clock.now = start + 600
    ev.advance(clock.now)
    assert ev.power_w() <= before - 5_000
    clock.now = end
    meter.tick(clock())
    dispatcher.step()
    assert dispatcher.utility_windows()[0]["state"] == "restored"
    ev.advance(end + 60)
    assert ev.power_w() >= 7_000  # restored after the window

    readings = outbox.readings(key.address, start - INTERVAL, end)
    assert readings[start][0] < readings[start - INTERVAL][0] - 1_000  # the curtailed interval's Wh
    ven.poll()
    [reported] = ven.reported()
    assert reported["event_id"] == event_id and reported["intervals"] == 1
    with bl_client(facade) as bl:
        reports = bl.get("/reports", params={"eventID": event_id}).json()
    [usage] = [r for r in reports if r.get("clientID") == cfg["ven_client_id"]]
    [resource] = usage["resources"]
    assert resource["resourceName"] == config.resource_name
    assert [i["payloads"][0]["values"][0] for i in resource["intervals"]] == [readings[start][0]]
    assert usage["negawattDelivery"]["readings"] == 1  # the facade signed it as its bound site's batch
    ven.poll()
    assert len(ven.reported()) == 1  # reported once
