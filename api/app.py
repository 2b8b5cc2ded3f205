"""The FastAPI application: routes under /v1, problem+json errors, rate limiting, CORS, the indexer
thread started and stopped with the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from api.db import is_sqlite
from api.indexer import Indexer, Progress
from api.problems import install_problem_handlers
from api.ratelimit import RateLimitMiddleware
from api.reads import Reads, VersionCache
from api.siwe_auth import SiweAuth
from api.stream import Notifier

log = logging.getLogger(__name__)


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
    stop: threading.Event = field(default_factory=threading.Event)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a read: inline on SQLite (sub-millisecond, no thread hop), in the thread pool otherwise."""
        if self.inline_reads:
            return fn(*args)
        return await run_in_threadpool(fn, *args)

    def changed(self, kind: str, data: Any) -> None:
        """Indexer listener: invalidate cached aggregates and wake the streams."""
        self.reads.cache.bump()
        if kind == "reorg":
            self.notifier.reorg(int(data))
        else:
            self.notifier.notify()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialized with orjson (no response-model validation on the hot path)."""
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def make_context(engine: Engine, chain_id: int, indexer: Indexer | None, *, siwe_domains: list[str],
                 ready_lag_blocks: int = 5, poll_seconds: float = 2.0, nonce_seconds: int = 600,
                 session_seconds: int = 86_400, ready_stale_seconds: float = 30.0) -> ApiContext:
    """The context of an app on `engine`; with an indexer, its progress feeds readiness."""
    reads = Reads(engine, VersionCache())
    auth = SiweAuth(engine, chain_id, siwe_domains, nonce_seconds, session_seconds)
    if indexer is not None:
        progress = lambda: indexer.progress
    else:
        progress = lambda: _stored_progress(engine)
    context = ApiContext(engine, reads, auth, Notifier(), progress, ready_lag_blocks, indexer, poll_seconds,
                         inline_reads=is_sqlite(engine), ready_stale_seconds=ready_stale_seconds)
    if indexer is not None:
        indexer.listener = context.changed
    return context


def _stored_progress(engine: Engine) -> Progress:
    from sqlalchemy import text

    with engine.connect() as connection:
        row = connection.execute(text("SELECT last_block, head_block FROM indexer_state WHERE id = 1")).first()
    return Progress(row.last_block, row.head_block) if row else Progress(-1, 0)


def create_app(context: ApiContext, rate_limit_per_second: float = 50.0, rate_limit_burst: int = 100,
               cors_origins: list[str] | None = None) -> FastAPI:
    """The ASGI app. The indexer (if any) runs in a thread from startup to shutdown."""
    from api.routes_auth import add_auth_routes
    from api.routes_chain import add_chain_routes
    from api.routes_ops import add_ops_routes

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        thread = None
        if context.indexer is not None:
            context.stop.clear()
            thread = threading.Thread(target=context.indexer.run, args=(context.stop, context.poll_seconds),
                                      name="negawatt-indexer", daemon=True)
            thread.start()
        try:
            yield
        finally:
            context.stop.set()
            context.notifier.notify()
            if thread is not None:
                await asyncio.get_running_loop().run_in_executor(None, thread.join, 30)
                log.info("indexer stopped")

    app = FastAPI(
        title="negawatt dApp API",
        version="1.0.0",
        description="Devices, flexibility requests, settlement reports, rewards with claim proofs and network "
                    "statistics, mirrored from the chain and verified oracle documents. Errors are "
                    "`application/problem+json` (RFC 9457). Amounts are decimal strings of token base units.",
        lifespan=lifespan,
    )
    app.state.context = context
    install_problem_handlers(app)
    add_ops_routes(app, context)
    add_chain_routes(app, context)
    add_auth_routes(app, context)
    app.add_middleware(CORSMiddleware, allow_origins=cors_origins or ["*"], allow_methods=["GET", "PUT", "POST",
                       "DELETE"], allow_headers=["Authorization", "Content-Type", "Last-Event-ID"])
    app.add_middleware(RateLimitMiddleware, rate=rate_limit_per_second, burst=rate_limit_burst,
                       exempt=("/v1/health", "/v1/ready"))
    return app
