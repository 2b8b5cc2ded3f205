"""The FastAPI application: the routers under /v1, problem+json errors, rate limiting, CORS, a cap on
request bodies (protocol.http_limits), a truthful OpenAPI document (api.openapi), the indexer thread
started and stopped with the app's lifespan. The app's state is an ApiContext on
`app.state.context`; routes reach it through api.deps, so no route module imports this one."""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from api import routes_app, routes_auth, routes_capability, routes_chain, routes_forecast, routes_ops
from api.context import ApiContext, make_context
from api.docs_pages import install_docs
from api.metrics import MetricsMiddleware
from api.openapi import install_openapi
from api.problems import install_problem_handlers
from api.ratelimit import RateLimitMiddleware
from api.responses import json_response
from api.web_app import install_web_app
from protocol.http_limits import BodyLimitMiddleware
from protocol.problems import ProblemNamespace, Reason

__all__ = ["ApiContext", "create_app", "json_response", "make_context"]
log = logging.getLogger(__name__)


def create_app(context: ApiContext, rate_limit_per_second: float = 50.0, rate_limit_burst: int = 100,
               cors_origins: list[str] | None = None, max_body_bytes: int = 16 * 1024,
               web_dir: Path | None = None) -> FastAPI:
    """The ASGI app, with the web app at `/` (api.web_app; `web_dir` overrides where its build is). The
    indexer (if any) runs in a thread from startup to shutdown; request bodies over `max_body_bytes`
    are refused (413) before anything reads them."""

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
                    "`application/problem+json` (RFC 9457). Every token amount, in REST bodies and in the SSE "
                    "stream's event arguments, is a decimal string of the token's base units; `GET /v1/tokens` "
                    "gives each token's symbol and decimals.",
        lifespan=lifespan, docs_url=None, redoc_url=None,
    )
    app.state.context = context
    install_problem_handlers(app)
    app.include_router(routes_ops.router)
    app.include_router(routes_ops.metrics_router)
    app.include_router(routes_chain.router)
    app.include_router(routes_auth.router)
    app.include_router(routes_forecast.router)
    app.include_router(routes_app.router)
    app.include_router(routes_capability.router)
    install_openapi(app)
    install_docs(app)
    install_web_app(app, web_dir)
    # innermost first: the body cap sits inside CORS (so a browser can read its 413) and the rate limit
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, namespace=ProblemNamespace.API,
                       reason=Reason.TOO_LARGE, title="Request body too large")
    app.add_middleware(CORSMiddleware, allow_origins=cors_origins or ["*"], allow_methods=["GET", "PUT", "POST",
                       "DELETE"], allow_headers=["Authorization", "Content-Type", "Last-Event-ID"])
    app.add_middleware(RateLimitMiddleware, rate=rate_limit_per_second, burst=rate_limit_burst,
                       exempt=("/v1/health", "/v1/ready", "/metrics"))
    if context.metrics is not None:  # outermost: 429s and 413s are counted too
        app.add_middleware(MetricsMiddleware, metrics=context.metrics)
    return app
