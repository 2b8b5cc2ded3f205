"""The API's Prometheus metrics, served at `GET /metrics` in the Prometheus text format.

Rules: one registry per app (never prometheus_client's global one, so two apps in one process do
not share counters); every label has a bounded set of values: a route is the matched path template
(`/v1/requests/{request_id}`) or `unmatched`, a statement is its SQL verb, an event is a contract
event name. What is measured:
- `negawatt_api_indexer_lag_blocks`, `negawatt_api_indexed_block`, `negawatt_api_head_block` and
  `negawatt_api_indexer_rpc_age_seconds` (since the indexer last reached the RPC), read when scraped;
- `negawatt_api_events_indexed_total{contract,event}`, counted as the indexer commits;
- `negawatt_api_http_requests_total{method,route,status}` and
  `negawatt_api_http_request_duration_seconds{route}` (the SSE stream is counted, not timed: its
  duration is the connection's);
- `negawatt_api_sse_subscribers`, the open event streams;
- `negawatt_api_db_query_duration_seconds{statement}`, every SQL statement the app's engine runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from protocol.sql_timing import first_word, time_statements

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNTIMED_ROUTES = frozenset({"/v1/stream"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
_VERBS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "PRAGMA"})
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DB_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)


class _LiveCollector(Collector):
    """Gauges read at scrape time: the indexer's progress and the open streams."""

    def __init__(self, progress: Callable[[], Any], subscribers: Callable[[], int]):
        self.progress = progress
        self.subscribers = subscribers

    def collect(self) -> Iterable[GaugeMetricFamily]:
        progress = self.progress()
        yield GaugeMetricFamily("negawatt_api_indexed_block", "the last block the mirror committed",
                                value=progress.indexed_block)
        yield GaugeMetricFamily("negawatt_api_head_block", "the chain head the indexer last saw (0: not yet)",
                                value=progress.head_block)
        yield GaugeMetricFamily("negawatt_api_indexer_lag_blocks", "chain head minus the last indexed block",
                                value=progress.lag_blocks)
        polled = getattr(progress, "polled_at", 0.0)
        yield GaugeMetricFamily("negawatt_api_indexer_rpc_age_seconds",
                                "seconds since the indexer last reached the RPC (-1: never in this process)",
                                value=time.monotonic() - polled if polled else -1.0)
        yield GaugeMetricFamily("negawatt_api_sse_subscribers", "open /v1/stream connections",
                                value=self.subscribers())


class ApiMetrics:
    """The metrics of one app: counters the app and the indexer feed, gauges read when scraped."""

    def __init__(self, progress: Callable[[], Any], subscribers: Callable[[], int]):
        self.registry = CollectorRegistry()
        self.events = Counter("negawatt_api_events_indexed", "contract events the indexer committed",
                              ["contract", "event"], registry=self.registry)
        self.requests = Counter("negawatt_api_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("negawatt_api_http_request_duration_seconds",
                                 "time to answer an HTTP request (the SSE stream excluded)", ["route"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.queries = Histogram("negawatt_api_db_query_duration_seconds", "SQL statement latency",
                                 ["statement"], buckets=_DB_BUCKETS, registry=self.registry)
        self.registry.register(_LiveCollector(progress, subscribers))

    def count_events(self, rows: Iterable[dict[str, Any]]) -> None:
        """The indexer committed these event rows."""
        for row in rows:
            self.events.labels(row["contract"], row["name"]).inc()

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    def instrument(self, engine: Engine) -> None:
        """Time every statement `engine` runs, by its SQL verb."""

        def observe(statement: str, seconds: float) -> None:
            verb = first_word(statement).upper()
            self.queries.labels(verb if verb in _VERBS else "other").observe(seconds)

        time_statements(engine, observe)


class MetricsMiddleware:
    """ASGI middleware counting and timing each HTTP request by its matched route template."""

    def __init__(self, app: Any, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def observed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method if method in _METHODS else "other", path, str(status["code"])).inc()
            if path not in UNTIMED_ROUTES:
                self.metrics.latency.labels(path).observe(time.perf_counter() - started)
