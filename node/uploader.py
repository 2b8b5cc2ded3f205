"""Delivering the outbox to every oracle until each acknowledges, with back-off.

An oracle that is down, slow or not yet aware of the device (its chain view lags) is retried with
exponential back-off; one that refuses an item for a permanent reason (a bad signature, a reading
out of range, a conflict) gets it marked rejected with the reason, logged and kept for inspection,
so one bad item never blocks the ones behind it.

A backlog (at least `bulk_min` meter batches due to one oracle, after an outage or when the node
joins with history) goes in one request to the oracle's bulk route, POST /v1/meter-batches/bulk
(NDJSON, one batch per line; the answer judges each line as the single route would, and each is
then acked, retried or rejected by the same rules). An oracle that answers the upload as a whole
with 404/405 (no bulk route), 413 (over its caps) or 400 gets the batches one by one instead.
"""

from __future__ import annotations

import json
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
BULK_PATH = "/v1/meter-batches/bulk"
BULK_MIN = 8  # due batches from which one bulk upload replaces single posts


@dataclass
class UploadStats:
    """Counters for status and metrics."""

    acked: int = 0
    retried: int = 0
    rejected: int = 0
    bulk_uploads: int = 0
    errors_by_oracle: dict[str, int] = field(default_factory=dict)


def backoff(attempts: int, base: float = 1.0, ceiling: float = 300.0) -> float:
    """Seconds to wait before attempt `attempts + 1`: 1, 2, 4, ... capped at `ceiling`."""
    return min(ceiling, base * (2 ** min(attempts, 16)))


class Uploader:
    """Pushes pending deliveries to one oracle URL per call of `pump`."""

    def __init__(self, outbox: Outbox, timeout: float = 10.0, clock=time.time, backoff_base: float = 1.0,
                 pause_between: float = 0.0, bulk_min: int = BULK_MIN):
        self.outbox = outbox
        self.bulk_min = bulk_min  # 0: never use the bulk route
        self.backoff_base = backoff_base
        self.pause_between = pause_between
        self.http = httpx.Client(timeout=timeout)
        self.stats = UploadStats()
        self.clock = clock

    def pump(self, oracle: str, limit: int = 100) -> int:
        """Send what is due to `oracle`; returns how many were acknowledged. Stops at the first
        transport failure (the oracle is unreachable: no point trying the rest now)."""
        due = self.outbox.due(oracle, self.clock(), limit)
        batches = [d for d in due if d.kind == "batch"]
        bulk = bool(self.bulk_min) and len(batches) >= self.bulk_min
        acked, reachable = self._send_each([d for d in due if d.kind != "batch"] if bulk else due)
        if bulk and reachable:  # commitments first (their gate closes), then the backlog in one upload
            outcome, count = self._send_bulk(oracle, batches)
            acked += count
            if outcome == "single":
                more, _reachable = self._send_each(batches)
                acked += more
        return acked

    def _send_each(self, deliveries: list[Delivery]) -> tuple[int, bool]:
        """Send `deliveries` one by one: (how many were acknowledged, whether the oracle stayed reachable)."""
        acked = 0
        for delivery in deliveries:
            if self.pause_between:
                time.sleep(self.pause_between)
            outcome = self._send(delivery)
            if outcome == "acked":
                acked += 1
            elif outcome == "unreachable":
                return acked, False
        return acked, True

    def _send_bulk(self, oracle: str, batches: list[Delivery]) -> tuple[str, int]:
        """One upload of `batches` to the bulk route: ("answered", acked) when each line was answered,
        ("unreachable", 0), or ("single", 0) when the batches are to go one by one."""
        body = b"".join(json.dumps(d.payload, separators=(",", ":")).encode() + b"\n" for d in batches)
        try:
            response = self.http.post(oracle.rstrip("/") + BULK_PATH, content=body,
                                      headers={"content-type": "application/x-ndjson"})
        except httpx.HTTPError as error:
            for delivery in batches:
                self._retry(delivery, f"unreachable: {error}")
            return "unreachable", 0
        if response.status_code != 200:
            code = _problem_code(response)
            if response.status_code >= 500 or response.status_code == 429:
                for delivery in batches:
                    self._retry(delivery, f"{response.status_code} {code}")
                return "answered", 0
            log.info("bulk upload to %s answered %d %s; sending the %d batches one by one", oracle,
                     response.status_code, code, len(batches))
            return "single", 0
        lines = response.content.split(b"\n")
        try:
            items = [json.loads(line) for line in lines[:len(batches)]]
            closing = json.loads(lines[len(batches)])
        except (ValueError, IndexError):
            items, closing = [], {}
        if closing.get("count") != len(batches) or [i.get("index") for i in items] != list(range(len(batches))):
            log.warning("bulk answer of %s does not answer the %d batches; sending them one by one", oracle,
                        len(batches))
            return "single", 0
        self.stats.bulk_uploads += 1
        acked = 0
        for delivery, item in zip(batches, items):
            status = item.get("status")
            if status in (200, 201):
                self.outbox.mark_acked(delivery)
                self.stats.acked += 1
                acked += 1
            else:
                problem = item.get("problem") if isinstance(item.get("problem"), dict) else {}
                self._refused(delivery, int(status) if isinstance(status, int) else 0,
                              str(problem.get("code", "unknown")), json.dumps(problem)[:300])
        return "answered", acked

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
        return self._refused(delivery, response.status_code, _problem_code(response), response.text[:300])

    def _refused(self, delivery: Delivery, status: int, code: str, text: str) -> str:
        """Retry a refusal that can pass later (5xx, 429, a retryable code); reject the rest for good."""
        if status >= 500 or status == 429 or code in RETRYABLE_CODES:
            self._retry(delivery, f"{status} {code}")
            return "retry"
        self.outbox.mark_rejected(delivery, f"{status} {code}: {text}")
        self.stats.rejected += 1
        log.warning("%s %s rejected by %s: %s %s", delivery.kind, delivery.payload.get("sequence",
                    delivery.payload.get("requestId")), delivery.oracle, status, code)
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
