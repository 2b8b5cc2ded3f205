"""The API's application state: what the routes need (reads, auth, notifier, indexer progress and
the readiness rule), built once per app. Routes reach it through api.deps, never through api.app."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from api.db import is_sqlite
from api.indexer import Indexer, Progress
from api.metrics import ApiMetrics
from api.reads import Reads, VersionCache
from api.siwe_auth import SiweAuth
from api.stream import Notifier


@dataclass
class ApiContext:
    """What the routes need: the reads, auth, notifier, the indexer's progress and readiness rule."""

    engine: Engine
    reads: Reads
    auth: SiweAuth
    notifier: Notifier
    progress: Callable[[], Progress]
    ready_lag_blocks: int
    indexer: Indexer | None = None
    poll_seconds: float = 2.0
    inline_reads: bool = True
    ready_stale_seconds: float = 30.0
    registry: str | None = None  # the DeviceRegistry: the EIP-712 domain of the signed forecasts
    stop: threading.Event = field(default_factory=threading.Event)
    stream_keepalive: float = 15.0  # seconds without an event before the SSE stream sends a heartbeat
    metrics: ApiMetrics | None = None
    network: dict[str, Any] | None = None  # GET /v1/network: chainId, rpcUrl, contracts, paymentTokens

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a read: inline on SQLite (sub-millisecond, no thread hop), in the thread pool otherwise."""
        if self.inline_reads:
            return fn(*args)
        return await run_in_threadpool(fn, *args)

    def changed(self, kind: str, data: Any) -> None:
        """Indexer listener: invalidate cached aggregates, count the events and wake the streams."""
        self.reads.cache.bump()
        if kind == "events" and self.metrics is not None:
            self.metrics.count_events(data)
        if kind == "reorg":
            self.notifier.reorg(int(data))
        else:
            self.notifier.notify()


def make_context(engine: Engine, chain_id: int, indexer: Indexer | None, *, siwe_domains: list[str],
                 ready_lag_blocks: int = 5, poll_seconds: float = 2.0, nonce_seconds: int = 600,
                 session_seconds: int = 86_400, ready_stale_seconds: float = 30.0,
                 registry: str | None = None, stream_keepalive: float = 15.0) -> ApiContext:
    """The context of an app on `engine`; with an indexer, its progress feeds readiness and /metrics."""
    reads = Reads(engine, VersionCache())
    auth = SiweAuth(engine, chain_id, siwe_domains, nonce_seconds, session_seconds)
    if indexer is not None:
        progress = lambda: indexer.progress
    else:
        progress = lambda: _stored_progress(engine)
    context = ApiContext(engine, reads, auth, Notifier(), progress, ready_lag_blocks, indexer, poll_seconds,
                         inline_reads=is_sqlite(engine), ready_stale_seconds=ready_stale_seconds,
                         registry=registry, stream_keepalive=stream_keepalive)
    context.metrics = ApiMetrics(progress, lambda: context.notifier.subscribers)
    context.metrics.instrument(engine)
    if indexer is not None:
        indexer.listener = context.changed
    return context


def _stored_progress(engine: Engine) -> Progress:
    with engine.connect() as connection:
        row = connection.execute(text("SELECT last_block, head_block FROM indexer_state WHERE id = 1")).first()
    return Progress(row.last_block, row.head_block) if row else Progress(-1, 0)
