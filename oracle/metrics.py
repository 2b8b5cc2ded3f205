"""Prometheus metrics of a running oracle (prometheus-client), served at GET /metrics (oracle.ops_api).

    negawatt_oracle_ingest_accepted_total{kind}          new meter batches / commitments stored
    negawatt_oracle_ingest_readings_total                readings in the accepted meter batches
    negawatt_oracle_ingest_replays_total{kind}           identical messages answered with the stored ack
    negawatt_oracle_ingest_rejected_total{kind,reason}   refusals, by the reason code of the problem
    negawatt_oracle_peer_missing_batches{peer}           batches the peer held that this oracle lacked, at
                                                         the last pull (the replication lag, in batches)
    negawatt_oracle_peer_pulled_batches_total{peer}      batches taken from the peer
    negawatt_oracle_peer_errors_total{peer}              unreachable or declining peer calls
    negawatt_oracle_peer_last_contact_timestamp_seconds{peer}
    negawatt_oracle_attestation_outcomes_total{outcome}  every attestation tick, by what it did
    negawatt_oracle_reports{state}                       stored reports by state (computed, submitted, final,
                                                         discarded), counted at scrape time
    negawatt_oracle_pending_report{status}               1 for the OracleHub's pending-report status
    negawatt_oracle_chain_epoch                          the OracleHub's current (final) epoch
    negawatt_oracle_last_report_ineligible_devices{reason}  in the last report this oracle computed
    negawatt_oracle_chain_up                             1 when the RPC answered the scrape's head query
    negawatt_oracle_chain_head_block / _followed_block / _lag_blocks   head - the chain view's cursor
    negawatt_oracle_db_statement_seconds{statement}      each SQL statement (BEGIN IMMEDIATE is the lock wait)
    negawatt_oracle_db_write_seconds{lock}               each write transaction, lock wait included
    negawatt_oracle_db_write_wait_seconds{lock}          the wait for the write lock

The rule: the ingest counts what the HTTP service answered (so rates match what nodes see); the
gauges that describe state (reports, chain lag) are read when Prometheus scrapes, never cached.
Each oracle has its own registry, so several can run in one process (the tests do).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from oracle import db
from protocol.sql_timing import first_word, time_statements
from protocol.statuses import ReportStatus, StoredReportStatus

log = logging.getLogger(__name__)

INGEST_KINDS = ("meter_batch", "commitment")
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_STATEMENTS = ("select", "insert", "update", "delete", "begin", "commit", "rollback")


def _statement_kind(statement: str) -> str:
    word = first_word(statement).lower()
    return word if word in _STATEMENTS else "other"


class OracleMetrics:
    """The oracle's metrics, in their own registry; `render()` is the /metrics body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self.ingest_accepted = Counter("negawatt_oracle_ingest_accepted_total", "Messages accepted and stored",
                                       ["kind"], registry=registry)
        self.ingest_readings = Counter("negawatt_oracle_ingest_readings_total",
                                       "Readings in the accepted meter batches", registry=registry)
        self.ingest_replays = Counter("negawatt_oracle_ingest_replays_total",
                                      "Identical messages answered with the stored ack", ["kind"], registry=registry)
        self.ingest_rejected = Counter("negawatt_oracle_ingest_rejected_total",
                                       "Messages refused, by reason code", ["kind", "reason"], registry=registry)
        self.peer_missing = Gauge("negawatt_oracle_peer_missing_batches",
                                  "Batches the peer held that this oracle lacked at the last pull",
                                  ["peer"], registry=registry)
        self.peer_pulled = Counter("negawatt_oracle_peer_pulled_batches_total", "Batches taken from the peer",
                                   ["peer"], registry=registry)
        self.peer_errors = Counter("negawatt_oracle_peer_errors_total", "Peer calls unreachable or declined",
                                   ["peer"], registry=registry)
        self.peer_last_contact = Gauge("negawatt_oracle_peer_last_contact_timestamp_seconds",
                                       "When the peer last answered (unix seconds)", ["peer"], registry=registry)
        self.outcomes = Counter("negawatt_oracle_attestation_outcomes_total", "Attestation ticks, by outcome",
                                ["outcome"], registry=registry)
        self.pending_report = Gauge("negawatt_oracle_pending_report",
                                    "1 for the OracleHub's current pending-report status", ["status"],
                                    registry=registry)
        self.chain_epoch = Gauge("negawatt_oracle_chain_epoch", "The OracleHub's current epoch", registry=registry)
        self.ineligible = Gauge("negawatt_oracle_last_report_ineligible_devices",
                                "Ineligible devices in the last report computed here, by reason", ["reason"],
                                registry=registry)
        self.db_statement = Histogram("negawatt_oracle_db_statement_seconds", "SQL statement latency",
                                      ["statement"], buckets=DB_BUCKETS, registry=registry)
        self.db_write = Histogram("negawatt_oracle_db_write_seconds", "Write transactions, lock wait included",
                                  ["lock"], buckets=DB_BUCKETS, registry=registry)
        self.db_write_wait = Histogram("negawatt_oracle_db_write_wait_seconds", "Wait for the write lock",
                                       ["lock"], buckets=DB_BUCKETS, registry=registry)
        for kind in INGEST_KINDS:  # present at zero from the start, so rate() has a series
            self.ingest_accepted.labels(kind)
            self.ingest_replays.labels(kind)
        self._engines: set[int] = set()
        self._reasons_seen: set[str] = set()

    # ------------------------------------------------------------------ ingest

    def accepted(self, kind: str, readings: int = 0, replay: bool = False) -> None:
        """Count one message the ingest answered 200/201 (`readings`: a new batch's count)."""
        if replay:
            self.ingest_replays.labels(kind).inc()
            return
        self.ingest_accepted.labels(kind).inc()
        if readings:
            self.ingest_readings.inc(readings)

    def rejected(self, kind: str, reason: str) -> None:
        """Count one refused message by its problem's reason code."""
        self.ingest_rejected.labels(kind, reason).inc()

    # ------------------------------------------------------------------ peers

    def peer_answered(self, peer: str) -> None:
        """A peer answered a call."""
        self.peer_last_contact.labels(peer).set(time.time())

    def peer_failed(self, peer: str) -> None:
        """A peer call failed (unreachable, or a non-200 answer)."""
        self.peer_errors.labels(peer).inc()

    def peer_pull(self, peer: str, missing: int, pulled: int) -> None:
        """The result of one pull from `peer`: batches it had that were missing here, and taken."""
        self.peer_missing.labels(peer).set(missing)
        if pulled:
            self.peer_pulled.labels(peer).inc(pulled)

    # ------------------------------------------------------------------ attestation

    def outcome(self, outcome: Any) -> None:
        """Count one attestation tick's outcome (an enum with a string value)."""
        self.outcomes.labels(getattr(outcome, "value", str(outcome))).inc()

    def chain_state(self, epoch: int, pending: ReportStatus) -> None:
        """The OracleHub's epoch and pending-report status, as last read."""
        self.chain_epoch.set(epoch)
        for status in ReportStatus:
            self.pending_report.labels(status.value).set(1 if status is pending else 0)

    def report_computed(self, reasons: Iterable[Iterable[str]]) -> None:
        """The ineligibility reasons of each device of the report just computed."""
        counts: dict[str, int] = {}
        for device_reasons in reasons:
            for reason in device_reasons:
                counts[reason] = counts.get(reason, 0) + 1
        for reason in self._reasons_seen | set(counts):  # reasons no longer present go back to zero
            self.ineligible.labels(reason).set(counts.get(reason, 0))
        self._reasons_seen |= set(counts)

    # ------------------------------------------------------------------ database and state

    def instrument(self, engine: Engine) -> None:
        """Time every SQL statement and write transaction on `engine` (once per engine)."""
        if id(engine) in self._engines:
            return
        self._engines.add(id(engine))

        time_statements(engine, lambda statement, seconds: self.db_statement.labels(
            _statement_kind(statement)).observe(seconds))

        def _write(kind: str, waited: float, total: float) -> None:
            self.db_write_wait.labels(kind).observe(waited)
            self.db_write.labels(kind).observe(total)

        db.observe_writes(engine, _write)

    def watch(self, *, report_counts: Callable[[], dict[str, int]] | None = None,
              chain: Callable[[], tuple[int | None, int | None]] | None = None) -> None:
        """Read state at scrape time: `report_counts()` -> {state: n}; `chain()` -> (head or None if the
        RPC does not answer, followed block or None before the first sync)."""
        self.registry.register(_StateCollector(report_counts, chain))

    def render(self) -> bytes:
        """The text exposition of every metric (the /metrics body)."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Reports by state and the chain lag, computed when Prometheus scrapes."""

    def __init__(self, report_counts: Callable[[], dict[str, int]] | None,
                 chain: Callable[[], tuple[int | None, int | None]] | None):
        self.report_counts = report_counts
        self.chain = chain

    def describe(self) -> list:  # no eager collect at registration (it would query the DB and RPC)
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if self.report_counts is not None:
            family = GaugeMetricFamily("negawatt_oracle_reports", "Stored reports by state", labels=["state"])
            try:
                counts = self.report_counts()
            except Exception as error:  # a scrape must still answer; the DB latency shows the trouble
                log.warning("metrics: reports not counted: %s", error)
                counts = {status.value: math.nan for status in StoredReportStatus}
            for state, count in counts.items():
                family.add_metric([state], count)
            yield family
        if self.chain is not None:
            head, followed = self.chain()
            yield GaugeMetricFamily("negawatt_oracle_chain_up", "1 when the RPC answered",
                                    value=0 if head is None else 1)
            nan = math.nan
            yield GaugeMetricFamily("negawatt_oracle_chain_head_block", "The chain's head block",
                                    value=nan if head is None else head)
            yield GaugeMetricFamily("negawatt_oracle_chain_followed_block", "The last block the chain view applied",
                                    value=nan if followed is None else followed)
            lag = nan if head is None or followed is None else max(0, head - followed)
            yield GaugeMetricFamily("negawatt_oracle_chain_lag_blocks", "Head minus the followed block", value=lag)
