"""The node's Prometheus endpoint serves outbox depth, upload errors, dispatch latency and device state."""

from __future__ import annotations

import socket

import httpx
from eth_account import Account

from node.devices.factory import build_device
from node.dispatch import NodeDevice
from node.metrics import NodeMetrics
from node.outbox import Outbox
from node.uploader import Uploader
from protocol.meter import MeterBatch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_are_served_over_http(tmp_path):
    key = Account.create()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there: uploads fail
    for sequence in range(3):
        batch = MeterBatch(key.address, 900 * sequence, 900, (10,), sequence).signed(key.key, 1, "0x" + "11" * 20)
        outbox.add_batch(batch, [down])
    uploader = Uploader(outbox, backoff_base=0.01)
    uploader.pump(down)
    heat_pump = build_device({"kind": "heat_pump", "device_id": "hp", "seed": 2}, start_time=0)
    heat_pump.advance(3_600)
    device = NodeDevice(key.address, bytes(key.key), heat_pump, zone=1, capacity_w=3_000)

    metrics = NodeMetrics()
    port = free_port()
    metrics.serve(port)
    metrics.update(outbox, uploader.stats, [device], [120.0, 480.0])
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert f'negawatt_node_outbox_depth{{oracle="{down}"}} 3.0' in text
    assert f'negawatt_node_upload_errors_total{{oracle="{down}"}} 1.0' in text
    assert "negawatt_node_dispatch_latency_seconds_count 2.0" in text
    assert 'negawatt_node_dispatch_latency_seconds_bucket{le="0.5"} 2.0' in text
    assert 'negawatt_node_dispatch_latency_seconds_bucket{le="0.2"} 1.0' in text
    assert f'negawatt_node_device_power_watts{{device="{key.address}",kind="heat_pump"}} {float(heat_pump.power_w())}' \
        in text
    assert f'negawatt_node_device_curtailed{{device="{key.address}"}} 0.0' in text
