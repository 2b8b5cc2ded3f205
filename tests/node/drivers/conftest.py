"""Fixtures of the driver tests: a loop for the simulated peers, a real Mosquitto broker on a free
loopback port (plain and anonymous, or TLS with a password file), throwaway TLS material, and the
drivers a test started (stopped at teardown)."""

from __future__ import annotations

import pytest
from driver_peers import PeerLoop
from tls_material import TlsMaterial, make_tls_material, start_secure_broker

from negawatt.localchain import free_port
from node.drivers.peers.mosquitto import start_broker


@pytest.fixture
def peer_loop():
    """A running loop for simulated peers."""
    loop = PeerLoop()
    yield loop
    loop.close()


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto broker on a free loopback port: (port, restart function)."""
    port = free_port()
    state = {"process": start_broker(tmp_path / "mosquitto", port)}

    def stop() -> None:
        state["process"].terminate()
        state["process"].wait(timeout=10)

    def start() -> None:
        state["process"] = start_broker(tmp_path / "mosquitto", port)

    yield type("Broker", (), {"port": port, "stop": staticmethod(stop), "start": staticmethod(start)})
    if state["process"].poll() is None:
        stop()


@pytest.fixture
def drivers():
    """Collects started drivers and stops them at teardown."""
    started = []
    yield started
    for driver in started:
        driver.stop()


@pytest.fixture
def charger_peers(peer_loop):
    """Collects started simulated charge points and stops them (on the peer loop) at teardown."""
    started = []
    yield started
    for peer in started:
        peer_loop.run(peer.stop())


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory) -> TlsMaterial:
    """A CA, a server and a client certificate it signed, and an untrusted second CA."""
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def secure_broker(tmp_path, tls_material):
    """A TLS + password Mosquitto broker on a free loopback port: its port."""
    port, process = start_secure_broker(tmp_path / "secure-mosquitto", tls_material)
    yield port
    process.terminate()
    process.wait(timeout=10)
