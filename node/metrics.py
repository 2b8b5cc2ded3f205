"""Prometheus metrics of a running node (prometheus-client), served on `metrics_port`.

    negawatt_node_outbox_depth{oracle}          deliveries still owed to each oracle
    negawatt_node_upload_errors_total{oracle}   failed or refused upload attempts
    negawatt_node_uploads_acked_total           acknowledged deliveries
    negawatt_node_dispatch_latency_seconds      window start -> setpoint applied
    negawatt_node_device_power_watts{device,kind}
    negawatt_node_device_curtailed{device}      1 while a setpoint is applied (never for a device that
                                                does not answer)
    negawatt_node_device_available{device,driver}  1 while the device answers (real drivers: a fresh reading)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from node.devices.interface import DeviceUnavailable
from node.outbox import Outbox


class NodeMetrics:
    """The node's metrics, in their own registry (so several nodes can share a process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.outbox_depth = Gauge("negawatt_node_outbox_depth", "Deliveries still owed to each oracle",
                                  ["oracle"], registry=self.registry)
        self.upload_errors = Counter("negawatt_node_upload_errors_total", "Failed or refused upload attempts",
                                     ["oracle"], registry=self.registry)
        self.uploads_acked = Counter("negawatt_node_uploads_acked_total", "Acknowledged deliveries",
                                     registry=self.registry)
        self.dispatch_latency = Histogram("negawatt_node_dispatch_latency_seconds",
                                          "From the start of a request window to the setpoint applied",
                                          buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5), registry=self.registry)
        self.device_power = Gauge("negawatt_node_device_power_watts", "Current consumption of each device",
                                  ["device", "kind"], registry=self.registry)
        self.device_curtailed = Gauge("negawatt_node_device_curtailed", "1 while a curtailment setpoint is applied",
                                      ["device"], registry=self.registry)
        self.device_available = Gauge("negawatt_node_device_available",
                                      "1 while the device answers (a real device's reading is fresh), else 0",
                                      ["device", "driver"], registry=self.registry)
        self._errors_seen: dict[str, int] = {}
        self._acked_seen = 0
        self._latencies_seen = 0

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics over HTTP."""
        start_http_server(port, addr=host, registry=self.registry)

    def update(self, outbox: Outbox, uploader_stats, devices, latencies_ms: list[float]) -> None:
        """Refresh every metric from the node's current state."""
        for oracle, depth in outbox.depth().items():
            self.outbox_depth.labels(oracle).set(depth)
        for oracle in list(self._errors_seen) + list(uploader_stats.errors_by_oracle):
            total = uploader_stats.errors_by_oracle.get(oracle, 0)
            if total > self._errors_seen.get(oracle, 0):
                self.upload_errors.labels(oracle).inc(total - self._errors_seen.get(oracle, 0))
                self._errors_seen[oracle] = total
        if uploader_stats.acked > self._acked_seen:
            self.uploads_acked.inc(uploader_stats.acked - self._acked_seen)
            self._acked_seen = uploader_stats.acked
        for latency in latencies_ms[self._latencies_seen:]:
            self.dispatch_latency.observe(latency / 1000)
        self._latencies_seen = len(latencies_ms)
        for device in devices:
            state = device.driver.state()
            available = state.get("available", True)
            self.device_available.labels(device.address, state.get("driver", "simulated")).set(1 if available else 0)
            try:
                self.device_power.labels(device.address, device.driver.kind).set(device.driver.power_w())
            except DeviceUnavailable:
                self.device_power.labels(device.address, device.driver.kind).set(float("nan"))
            curtailing = state.get("curtailing", state.get("setpoint_w") is not None)
            self.device_curtailed.labels(device.address).set(1 if available and curtailing else 0)
