"""Simulated peers for the real drivers, for tests and devnets: a Modbus TCP battery inverter
(pymodbus server), an EV charger speaking OCPP to the node (ocpp ChargePoint client) and a smart plug
on an MQTT broker (Mosquitto). Each evolves with the node's own device physics.

    python -m node.drivers.peers --modbus-port 5020 --ocpp-url ws://127.0.0.1:9000 --mqtt-port 1883

runs them in one process (see __main__). A devnet calls `start_peers(run_dir)`: it starts a
Mosquitto broker and that process, and returns them with the `[[devices]]` entries a node needs
to drive the three peers (the node's OCPP Central System listens on `ocpp_port`; the charger
connects to it, retrying until the node is up).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("negawatt.peers")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on `host`."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Peers:
    """Running simulated peers and what a node needs to reach them."""

    processes: list[subprocess.Popen]
    devices: list[dict[str, Any]]  # `[[devices]]` entries without `keystore`
    ports: dict[str, int]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def devices_toml(self, keystores: list[str | Path]) -> str:
        """The `[[devices]]` tables for node.toml, one keystore per device (in `devices` order)."""
        if len(keystores) != len(self.devices):
            raise ValueError(f"need {len(self.devices)} keystores, got {len(keystores)}")
        from node.setup import toml_value

        blocks = []
        for entry, keystore in zip(self.devices, keystores):
            lines = ["[[devices]]", f"keystore = {toml_value(str(keystore))}"]
            lines += [f"{key} = {toml_value(value)}" for key, value in entry.items()]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks) + "\n"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process (SIGTERM, then SIGKILL after `timeout`)."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)


def device_entries(host: str, modbus_port: int | None, ocpp_port: int | None, mqtt_port: int | None, *,
                   charge_point_id: str = "negawatt-cp-1", ocpp_version: str = "1.6", mqtt_topic: str = "negawatt-plug-1",
                   mqtt_style: str = "shelly_gen2") -> list[dict[str, Any]]:
    """The `[[devices]]` entries (without keystore) for the peers started with these ports."""
    fast = {"poll_seconds": 1.0, "confirm_seconds": 5.0, "backoff_max_seconds": 5.0}
    entries: list[dict[str, Any]] = []
    if modbus_port:
        entries.append({"kind": "battery", "capacity_w": 5_000, "driver": "modbus",
                        "modbus": {"host": host, "port": modbus_port, "device_id": 1, "stale_seconds": 10.0, **fast}})
    if ocpp_port:
        entries.append({"kind": "ev_charger", "capacity_w": 7_400, "driver": "ocpp",
                        "ocpp": {"host": host, "port": ocpp_port, "charge_point_id": charge_point_id,
                                 "version": ocpp_version, "stale_seconds": 15.0, **fast}})
    if mqtt_port:
        entries.append({"kind": "water_heater", "capacity_w": 2_000, "driver": "mqtt",
                        "mqtt": {"style": mqtt_style, "host": host, "port": mqtt_port, "topic": mqtt_topic,
                                 "stale_seconds": 15.0, **fast}})
    return entries


def start_peers(run_dir: Path, *, host: str = "127.0.0.1", modbus_port: int | None = None,
                ocpp_port: int | None = None, mqtt_port: int | None = None, ocpp_version: str = "1.6",
                charge_point_id: str = "negawatt-cp-1", mqtt_topic: str = "negawatt-plug-1",
                mqtt_style: str = "shelly_gen2", with_modbus: bool = True, with_ocpp: bool = True,
                with_mqtt: bool = True, timeout: float = 30.0) -> Peers:
    """Start a Mosquitto broker and the simulated inverter, charger and plug (one process).

    Ports left None are picked free on `host`. `ocpp_port` is where the *node's* Central System
    will listen (the simulated charger connects there and retries until the node runs). Logs go to
    `run_dir/peers.log` and `run_dir/mosquitto-<port>.log`. Returns once the inverter listens and the
    plug is connected to the broker; `Peers.stop()` ends everything.
    """
    from node.drivers.peers.mosquitto import start_broker

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    modbus_port = (modbus_port or free_port(host)) if with_modbus else None
    ocpp_port = (ocpp_port or free_port(host)) if with_ocpp else None
    mqtt_port = (mqtt_port or free_port(host)) if with_mqtt else None
    processes: list[subprocess.Popen] = []
    log_path = run_dir / "peers.log"
    try:
        if mqtt_port:
            processes.append(start_broker(run_dir, mqtt_port, host))
        ready = run_dir / "peers.ready"
        ready.unlink(missing_ok=True)
        args = [sys.executable, "-m", "node.drivers.peers", "--host", host, "--ready-file", str(ready)]
        if modbus_port:
            args += ["--modbus-port", str(modbus_port)]
        if ocpp_port:
            args += ["--ocpp-url", f"ws://{host}:{ocpp_port}", "--charge-point-id", charge_point_id,
                     "--ocpp-version", ocpp_version]
        if mqtt_port:
            args += ["--mqtt-port", str(mqtt_port), "--mqtt-topic", mqtt_topic, "--mqtt-style", mqtt_style]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[3]),
                                                                            os.environ.get("PYTHONPATH")]))}
        processes.append(subprocess.Popen(args, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if processes[-1].poll() is not None:
                raise RuntimeError(f"the peers exited with {processes[-1].returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the peers were not ready within {timeout:g} s; see {log_path}")
            time.sleep(0.05)
    except BaseException:
        Peers(processes, [], {}, log_path).stop()
        raise
    entries = device_entries(host, modbus_port, ocpp_port, mqtt_port, charge_point_id=charge_point_id,
                             ocpp_version=ocpp_version, mqtt_topic=mqtt_topic, mqtt_style=mqtt_style)
    ports = {name: port for name, port in (("modbus", modbus_port), ("ocpp", ocpp_port), ("mqtt", mqtt_port)) if port}
    return Peers(processes, entries, ports, log_path)
