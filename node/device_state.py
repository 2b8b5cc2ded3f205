"""Saved simulator state, so a node restarted after a crash resumes its simulated devices where they were.

A real device keeps its own energy register and physical state while the gateway is down; a simulator
lives in the node's memory, so the node saves each simulator's snapshot (node.devices.simulated
SimulatedDevice.snapshot) after every metering boundary and every setpoint change, in an SQLite file
(WAL, synchronous=FULL) next to the outbox. On start the node resumes each device from its snapshot;
the device then integrates the time the node was down, as the real one would have kept running.
The file is the node's own state (like the outbox), written and read only by the node.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import time
from pathlib import Path
from typing import Iterable

from node.devices.interface import Device

log = logging.getLogger("negawatt.node.device_state")


class DeviceStateStore:
    """Snapshots of the node's simulated devices, by device address."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS device_state (address TEXT PRIMARY KEY, snapshot BLOB NOT NULL, "
                        "saved_at REAL NOT NULL)")

    def save(self, devices: Iterable[tuple[str, Device]]) -> int:
        """Save the snapshot of every (address, driver) whose driver takes one (a simulator: see
        Device.snapshot); returns how many."""
        snapshots = [(address, driver.snapshot()) for address, driver in devices]
        rows = [(address, pickle.dumps(snapshot), time.time()) for address, snapshot in snapshots
                if snapshot is not None]
        if rows:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO device_state VALUES (?, ?, ?)", rows)
        return len(rows)

    def resume(self, address: str, driver: Device) -> bool:
        """Resume `driver` from the saved snapshot of `address`; False when there is none or it does not fit."""
        if driver.snapshot() is None:  # a driver that keeps no state of its own (a real device)
            return False
        row = self.db.execute("SELECT snapshot FROM device_state WHERE address = ?", (address,)).fetchone()
        if row is None:
            return False
        try:
            resumed = driver.resume(pickle.loads(row[0]))
        except Exception:  # an unreadable snapshot: start the device afresh rather than not at all
            log.warning("the saved state of %s is unreadable; starting it afresh", address)
            return False
        if not resumed:
            log.warning("the saved state of %s belongs to another configuration; starting it afresh", address)
        return resumed

    def close(self) -> None:
        self.db.close()
