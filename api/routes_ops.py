"""Operational routes: liveness, readiness (indexer lag), the live event stream and Prometheus
`/metrics` (api.metrics; at the root, where scrapers look, not under /v1).

A module-level router (mounted by api.app); the app state comes in through api.deps."""

from __future__ import annotations

import time

from fastapi import APIRouter, Header, Query
from starlette.responses import Response, StreamingResponse

from api.deps import Context
from api.metrics import CONTENT_TYPE
from api.openapi import problem_responses
from api.problems import ApiProblem, Reason, problem
from api.responses import json_response
from api.schemas import Health, Ready
from api.stream import STREAM_KINDS, event_stream, parse_event_id

router = APIRouter(prefix="/v1")
metrics_router = APIRouter()


@metrics_router.get("/metrics", tags=["operations"], response_class=Response,
                    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                     "description": "Prometheus text format: indexer lag, events indexed, HTTP "
                                                    "requests and latency, SSE subscribers, DB query latency"}})
async def metrics(ctx: Context):
    """Prometheus metrics of this API process (not rate limited)."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/health", response_model=Health, tags=["operations"])
async def health():
    """Liveness: the process serves HTTP."""
    return json_response({"status": "ok"})


@router.get("/ready", response_model=Ready, tags=["operations"],
            responses=problem_responses(503))
async def ready(ctx: Context):
    """200 when the mirror is within the allowed lag of the chain head (confirmations + ready_lag_blocks)."""
    progress = ctx.progress()
    body = {"indexed_block": progress.indexed_block, "head_block": progress.head_block,
            "lag_blocks": progress.lag_blocks}
    allowed = ctx.ready_lag_blocks + (ctx.indexer.confirmations if ctx.indexer else 0)
    if progress.head_block <= 0 or progress.lag_blocks > allowed:
        return problem(503, Reason.INDEXER_LAGGING, "Not ready",
                       f"the indexer is {progress.lag_blocks} blocks behind the head (allowed: {allowed})", **body)
    if ctx.indexer is not None:
        silent = time.monotonic() - progress.polled_at
        if silent > ctx.ready_stale_seconds:
            return problem(503, Reason.CHAIN_UNREACHABLE, "Not ready",
                           f"the indexer has not reached the RPC for {silent:.0f} s", **body)
    return json_response(body)


@router.get("/stream", tags=["stream"],
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "SSE: events request, report, claim, reorg"},
                       **problem_responses(400, 429)})
async def stream(ctx: Context,
                 types: str | None = Query(None, max_length=40, description="comma-separated: request,report,claim"),
                 after: str | None = Query(None, max_length=40, description="resume after this event id"),
                 last_event_id: str | None = Header(None, max_length=40)):
    """Server-Sent Events of new requests, reports and claims (`id: <block>-<logIndex>-<tx>`, `tx` the
    first 8 hex digits of the transaction hash; resume with `Last-Event-ID` or `after`, which also take
    `<block>-<logIndex>`). `data` is `{block, logIndex, txHash, contract, event, args}`; in `args`
    every token amount is a decimal string of base units, as in every REST body (see `GET /v1/tokens`).
    A `: keepalive` comment comes after a quiet while; `event: reorg` `{forkBlock}` says events after
    that block were rolled back and follow again."""
    kinds = STREAM_KINDS
    if types is not None:
        kinds = tuple(sorted({t.strip() for t in types.split(",") if t.strip()}))
        unknown = [t for t in kinds if t not in STREAM_KINDS]
        if unknown or not kinds:
            raise ApiProblem(400, Reason.INVALID_PARAMETER, "Invalid types",
                             f"types: {', '.join(unknown) or 'empty'} not among {', '.join(STREAM_KINDS)}")
    start = None
    resume = last_event_id or after
    if resume is not None:
        start = parse_event_id(resume)
        if start is None:
            raise ApiProblem(400, Reason.INVALID_PARAMETER, "Invalid event id",
                             f"{resume[:40]!r} is not <block>-<logIndex>[-<8 hex digits of the tx hash>]")
    def progress() -> tuple[int, int]:
        now = ctx.progress()
        return now.indexed_block, now.head_block

    return StreamingResponse(event_stream(ctx.reads, ctx.notifier, kinds, start, progress, ctx.stream_keepalive),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
