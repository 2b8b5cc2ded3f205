"""Operations routes of an oracle's HTTP service: what monitoring and orchestration read.

    GET /metrics     Prometheus text exposition (oracle.metrics)
    GET /v1/ready    200 {"ready": true, "checks": {...}} when every readiness check holds
                     (oracle.readiness), else 503 application/problem+json, code `not_ready`,
                     with `notReady` naming the failed checks and `checks` the measurements

GET /v1/health stays the liveness answer (the process serves). Both routes here are plain `def`
routes: their checks query the database and the RPC, so they run in the thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from oracle.metrics import OracleMetrics
from oracle.readiness import Readiness
from protocol.problems import PROBLEM_MEDIA_TYPE, ProblemNamespace, problem_body

NOT_READY = "not_ready"


class ReadyOut(BaseModel):
    """The answer of a ready oracle."""

    ready: bool = Field(description="true")
    checks: dict[str, dict] = Field(description="each check: ok, and what it measured")


ops_router = APIRouter()


@ops_router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Every metric of this oracle, in the Prometheus text format."""
    registry: OracleMetrics = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)


@ops_router.get("/v1/ready", response_model=ReadyOut,
                responses={503: {"description": "not ready: the failed checks are named",
                                 "content": {PROBLEM_MEDIA_TYPE: {}}}})
def ready(request: Request) -> JSONResponse:
    """200 when the database and the RPC answer, the follower is near the head and the key is loaded."""
    readiness: Readiness = request.app.state.readiness
    report = readiness.check()
    checks = {name: check.to_json() for name, check in report.checks.items()}
    if report.ready:
        return JSONResponse({"ready": True, "checks": checks})
    body = problem_body(ProblemNamespace.INGEST, 503, NOT_READY, "Not ready", report.summary(),
                        ready=False, notReady=report.not_ready, checks=checks)
    return JSONResponse(body, status_code=503, media_type=PROBLEM_MEDIA_TYPE, headers={"Retry-After": "5"})


def add_ops_routes(app: FastAPI, metrics: OracleMetrics, readiness: Readiness) -> None:
    """Serve /metrics and /v1/ready on `app` from `metrics` and `readiness` (kept on app.state)."""
    app.state.metrics = metrics
    app.state.readiness = readiness
    app.include_router(ops_router)
