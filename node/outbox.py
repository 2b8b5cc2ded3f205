"""The node's outbox: signed meter batches and commitments, kept until every oracle acknowledged them.

SQLite in WAL mode with synchronous=FULL, through the standard library (a gateway has little memory
to spare). A reading counts as read only once its signed batch, its per-oracle deliveries and the
device's meter state are committed in one transaction; so after a kill -9 or a power cut the node
neither loses an acknowledged-or-pending reading nor meters an interval twice, and the per-device
`sequence` continues where it stopped. The oracles deduplicate by (device, sequence), so a batch
sent again after a crash is acknowledged once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from protocol.meter import Commitment, MeterBatch
from protocol.messages import encode_batch, encode_commitment

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    start INTEGER NOT NULL,
    interval_seconds INTEGER NOT NULL,
    readings TEXT NOT NULL,
    signature TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (device, sequence)
);
CREATE TABLE IF NOT EXISTS commitments (
    id INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL,
    device TEXT NOT NULL,
    watts INTEGER NOT NULL,
    signature TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    offer TEXT NOT NULL DEFAULT '[0, 0, 0]',  -- [min price, extra watts, extra min price, min availability
                                              --  price] (signed with it; rows from before availability have 3)
    UNIQUE (request_id, device)
);
CREATE TABLE IF NOT EXISTS deliveries (
    kind TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    oracle TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    acked_at INTEGER,
    PRIMARY KEY (kind, item_id, oracle)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (oracle, status, next_attempt);
CREATE TABLE IF NOT EXISTS meter_state (
    device TEXT PRIMARY KEY,
    boundary INTEGER NOT NULL,
    energy_wh INTEGER NOT NULL
);
"""

PENDING, ACKED, REJECTED = "pending", "acked", "rejected"


@dataclass(frozen=True)
class Delivery:
    """One item still owed to one oracle."""

    kind: str  # "batch" or "commitment"
    item_id: int
    oracle: str
    attempts: int
    payload: dict


class Outbox:
    """Durable store of what the node signed and to whom it still has to deliver it."""

    def __init__(self, path: Path | str):
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(commitments)")}
        if "offer" not in columns:  # outboxes from before commitments carried prices
            self._db.execute("ALTER TABLE commitments ADD COLUMN offer TEXT NOT NULL DEFAULT '[0, 0, 0]'")

    @classmethod
    def reader(cls, path: Path | str) -> "Outbox":
        """A read-only view of an outbox another process owns (status tools, the devnet): its status
        methods work, writing fails. FileNotFoundError if the node has not created it yet."""
        if not Path(path).exists():
            raise FileNotFoundError(f"no outbox at {path}")
        outbox = cls.__new__(cls)
        outbox.path = str(path)
        outbox._lock = threading.Lock()
        outbox._db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, check_same_thread=False,
                                     isolation_level=None, timeout=30)
        return outbox

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ writing

    def next_sequence(self, device: str) -> int:
        """The sequence the device's next batch carries."""
        row = self._db.execute("SELECT MAX(sequence) FROM batches WHERE device = ?", (device,)).fetchone()
        return 0 if row[0] is None else row[0] + 1

    def meter_state(self, device: str) -> tuple[int, int] | None:
        """(last metered interval boundary, the device's energy counter there in Wh), or None."""
        row = self._db.execute("SELECT boundary, energy_wh FROM meter_state WHERE device = ?", (device,)).fetchone()
        return (row[0], row[1]) if row else None

    def start_metering(self, device: str, boundary: int, energy_wh: int) -> None:
        """Remember where metering of `device` starts (first boundary and counter value)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meter_state (device, boundary, energy_wh) VALUES (?, ?, ?)",
                             (device, boundary, energy_wh))

    def add_batch(self, batch: MeterBatch, oracles: Iterable[str], boundary: int | None = None,
                  energy_wh: int | None = None) -> int:
        """Store a signed batch, a delivery per oracle and (optionally) the new meter state, atomically."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute(
                    "INSERT INTO batches (device, sequence, start, interval_seconds, readings, signature, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (batch.device, batch.sequence, batch.start, batch.interval_seconds, json.dumps(list(batch.readings)),
                     "0x" + batch.signature.hex(), int(time.time())))
                item_id = cursor.lastrowid
                self._db.executemany("INSERT INTO deliveries (kind, item_id, oracle) VALUES ('batch', ?, ?)",
                                     [(item_id, oracle) for oracle in oracles])
                if boundary is not None and energy_wh is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO meter_state (device, boundary, energy_wh) VALUES (?, ?, ?)",
                        (batch.device, boundary, energy_wh))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(item_id)

    def readings(self, device: str, start: int, end: int) -> dict[int, tuple[int, int]]:
        """{interval start: (Wh, interval seconds)} of `device`'s signed readings in [start, end)."""
        rows = self._db.execute(
            "SELECT start, interval_seconds, readings FROM batches WHERE device = ? AND start < ? "
            "AND start + interval_seconds * json_array_length(readings) > ?", (device, end, start)).fetchall()
        found = {}
        for first, interval, values in rows:
            for k, wh in enumerate(json.loads(values)):
                t = first + k * interval
                if start <= t < end:
                    found[t] = (int(wh), interval)
        return found

    def add_commitment(self, commitment: Commitment, oracles: Iterable[str]) -> int | None:
        """Store a signed commitment and its deliveries; None if this (request, device) was committed already."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO commitments (request_id, device, watts, signature, created_at, offer)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (commitment.request_id, commitment.device, commitment.watts, "0x" + commitment.signature.hex(),
                     int(time.time()), json.dumps([str(commitment.min_price_per_kwh), commitment.extra_watts,
                                                   str(commitment.extra_min_price_per_kwh),
                                                   str(commitment.min_availability_price_per_kwh)])))
                if cursor.rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return None
                item_id = cursor.lastrowid
                self._db.executemany("INSERT INTO deliveries (kind, item_id, oracle) VALUES ('commitment', ?, ?)",
                                     [(item_id, oracle) for oracle in oracles])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(item_id)

    def add_oracle(self, oracle: str, since: int) -> int:
        """Owe a newly known oracle every batch created since `since` and every commitment; returns the count."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            a = self._db.execute("INSERT OR IGNORE INTO deliveries (kind, item_id, oracle) "
                                 "SELECT 'batch', id, ? FROM batches WHERE created_at >= ?", (oracle, since)).rowcount
            b = self._db.execute("INSERT OR IGNORE INTO deliveries (kind, item_id, oracle) "
                                 "SELECT 'commitment', id, ? FROM commitments", (oracle,)).rowcount
            self._db.execute("COMMIT")
        return a + b

    # ------------------------------------------------------------------ delivering

    def due(self, oracle: str, now: float, limit: int = 100) -> list[Delivery]:
        """Pending deliveries to `oracle` whose back-off has passed, commitments first, batches in order."""
        rows = self._db.execute(
            "SELECT d.kind, d.item_id, d.attempts, b.device, b.sequence, b.start, b.interval_seconds, b.readings,"
            " b.signature, c.request_id, c.device, c.watts, c.signature, c.offer"
            " FROM deliveries d LEFT JOIN batches b ON d.kind = 'batch' AND b.id = d.item_id"
            " LEFT JOIN commitments c ON d.kind = 'commitment' AND c.id = d.item_id"
            " WHERE d.oracle = ? AND d.status = 'pending' AND d.next_attempt <= ?"
            " ORDER BY d.kind DESC, b.device, b.sequence LIMIT ?", (oracle, now, limit)).fetchall()
        out = []
        for kind, item_id, attempts, device, sequence, start, interval, readings, bsig, rid, cdev, watts, csig, offer \
                in rows:
            if kind == "batch":
                payload = encode_batch(MeterBatch(device, start, interval, tuple(json.loads(readings)), sequence,
                                                  bytes.fromhex(bsig[2:])))
            else:
                price, extra, extra_price, *availability = json.loads(offer)
                payload = encode_commitment(Commitment(rid, cdev, watts, int(price), int(extra), int(extra_price),
                                                       int(availability[0]) if availability else 0,
                                                       signature=bytes.fromhex(csig[2:])))
            out.append(Delivery(kind, item_id, oracle, attempts, payload))
        return out

    def mark_acked(self, delivery: Delivery) -> None:
        """The oracle acknowledged it (201, or 200 for a replay)."""
        with self._lock:
            self._db.execute("UPDATE deliveries SET status = 'acked', acked_at = ?, last_error = NULL "
                             "WHERE kind = ? AND item_id = ? AND oracle = ?",
                             (int(time.time()), delivery.kind, delivery.item_id, delivery.oracle))

    def mark_retry(self, delivery: Delivery, error: str, next_attempt: float) -> None:
        """Keep it pending; try again at `next_attempt`."""
        with self._lock:
            self._db.execute("UPDATE deliveries SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
                             "WHERE kind = ? AND item_id = ? AND oracle = ?",
                             (next_attempt, error[:500], delivery.kind, delivery.item_id, delivery.oracle))

    def mark_rejected(self, delivery: Delivery, error: str) -> None:
        """The oracle refused it for good (a permanent reason code); kept for inspection, not retried."""
        with self._lock:
            self._db.execute("UPDATE deliveries SET status = 'rejected', attempts = attempts + 1, last_error = ? "
                             "WHERE kind = ? AND item_id = ? AND oracle = ?",
                             (error[:500], delivery.kind, delivery.item_id, delivery.oracle))

    # ------------------------------------------------------------------ status

    def depth(self) -> dict[str, int]:
        """Pending deliveries per oracle."""
        rows = self._db.execute("SELECT oracle, COUNT(*) FROM deliveries WHERE status = 'pending' GROUP BY oracle")
        return dict(rows.fetchall())

    def last_ack(self) -> dict[str, int]:
        """Unix time of the last acknowledgement per oracle."""
        rows = self._db.execute("SELECT oracle, MAX(acked_at) FROM deliveries WHERE status = 'acked' GROUP BY oracle")
        return dict(rows.fetchall())

    def metered_boundaries(self) -> dict[str, int]:
        """The last interval boundary metered, per device that has started metering."""
        return dict(self._db.execute("SELECT device, boundary FROM meter_state").fetchall())

    def rejected(self) -> list[tuple[str, int, str, str]]:
        """(kind, item id, oracle, reason) of every permanently rejected delivery."""
        return self._db.execute("SELECT kind, item_id, oracle, last_error FROM deliveries "
                                "WHERE status = 'rejected'").fetchall()

    def batches(self, device: str) -> list[MeterBatch]:
        """Every batch of `device`, in sequence order."""
        rows = self._db.execute("SELECT device, start, interval_seconds, readings, sequence, signature FROM batches "
                                "WHERE device = ? ORDER BY sequence", (device,)).fetchall()
        return [MeterBatch(d, s, i, tuple(json.loads(r)), q, bytes.fromhex(sig[2:])) for d, s, i, r, q, sig in rows]
