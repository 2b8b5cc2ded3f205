"""Delivering the outbox to every oracle until each acknowledges, with back-off.

An oracle that is down, slow or not yet aware of the device (its chain view lags) is retried with
exponential back-off; one that refuses an item for a permanent reason (a bad signature, a reading
out of range, a conflict) gets it marked rejected with the reason, logged and kept for inspection,
so one bad item never blocks the ones behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import httpx

from node.outbox import Delivery, Outbox

log = logging.getLogger("negawatt.node.uploader")

# Reason codes after which the same item can succeed later.
RETRYABLE_CODES = frozenset({"unknown_device", "unknown_request", "chain_unavailable", "future_interval"})
PATHS = {"batch": "/v1/meter-batches", "commitment": "/v1/commitments"}


@dataclass
class UploadStats:
    """Counters for status and metrics."""

    acked: int = 0
    retried: int = 0
    rejected: int = 0
    errors_by_oracle: dict[str, int] = field(default_factory=dict)


def backoff(attempts: int, base: float = 1.0, ceiling: float = 300.0) -> float:
    """Seconds to wait before attempt `attempts + 1`: 1, 2, 4, ... capped at `ceiling`."""
    return min(ceiling, base * (2 ** min(attempts, 16)))


class Uploader:
    """Pushes pending deliveries to one oracle URL per call of `pump`."""

    def __init__(self, outbox: Outbox, timeout: float = 10.0, clock=time.time, backoff_base: float = 1.0,
                 pause_between: float = 0.0):
        self.outbox = outbox
        self.backoff_base = backoff_base
        self.pause_between = pause_between
        self.http = httpx.Client(timeout=timeout)
        self.stats = UploadStats()
        self.clock = clock

    def pump(self, oracle: str, limit: int = 100) -> int:
        """Send what is due to `oracle`; returns how many were acknowledged. Stops at the first
        transport failure (the oracle is unreachable: no point trying the rest now)."""
        acked = 0
        for delivery in self.outbox.due(oracle, self.clock(), limit):
            if self.pause_between:
                time.sleep(self.pause_between)
            outcome = self._send(delivery)
            if outcome == "acked":
                acked += 1
            elif outcome == "unreachable":
                break
        return acked

    def _send(self, delivery: Delivery) -> str:
        url = delivery.oracle.rstrip("/") + PATHS[delivery.kind]
        try:
            response = self.http.post(url, json=delivery.payload)
        except httpx.HTTPError as error:
            self._retry(delivery, f"unreachable: {error}")
            return "unreachable"
        if response.status_code in (200, 201):
            self.outbox.mark_acked(delivery)
            self.stats.acked += 1
            return "acked"
        code = _problem_code(response)
        if response.status_code >= 500 or response.status_code == 429 or code in RETRYABLE_CODES:
            self._retry(delivery, f"{response.status_code} {code}")
            return "retry"
        self.outbox.mark_rejected(delivery, f"{response.status_code} {code}: {response.text[:300]}")
        self.stats.rejected += 1
        log.warning("%s %s rejected by %s: %s %s", delivery.kind, delivery.payload.get("sequence",
                    delivery.payload.get("requestId")), delivery.oracle, response.status_code, code)
        return "rejected"

    def _retry(self, delivery: Delivery, reason: str) -> None:
        self.outbox.mark_retry(delivery, reason, self.clock() + backoff(delivery.attempts, self.backoff_base))
        self.stats.retried += 1
        self.stats.errors_by_oracle[delivery.oracle] = self.stats.errors_by_oracle.get(delivery.oracle, 0) + 1


def _problem_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "unknown"
    return str(body.get("code", "unknown")) if isinstance(body, dict) else "unknown"


def run_uploads(uploader: Uploader, oracles: callable, stop: threading.Event, idle_seconds: float = 1.0) -> None:
    """Keep every oracle's queue moving until `stop` is set; `oracles()` gives the current URLs."""
    while not stop.is_set():
        sent = 0
        for oracle in oracles():
            try:
                sent += uploader.pump(oracle)
            except Exception:  # one broken oracle must not stop deliveries to the others
                log.exception("upload to %s failed", oracle)
        if not sent:
            stop.wait(idle_seconds)
