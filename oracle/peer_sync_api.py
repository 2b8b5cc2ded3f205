"""The peer sync route: another oracle reads every stored meter batch of a time range, page by page.

    GET /v1/meter-batches/range?from=&to=&after=&limit=

answers one page, streamed as NDJSON (`application/x-ndjson`): one line per stored batch that
overlaps [from, to), as the device signed it plus when this oracle received it,

    {"device", "start", "intervalSeconds", "readings", "sequence", "signature", "receivedAt"}

in the order this oracle stored them (record id) after the cursor `after`, then one closing line

    {"next": <cursor or null>, "cursor": <last record id served, or `after`>, "count": <lines above>}

`next` is the `after` to ask for the following page, null when this was the last one; `cursor` is
where a puller resumes later to get only what was stored since. The closing line is how a reader
knows the page arrived whole. Each line is built with orjson from the stored record, without
per-batch models, so a page of thousands costs little CPU. The parameters are bounded (limit at most
MAX_PAGE_BATCHES, times within the store's integers, from below to); a wrong one is a 400
application/problem+json `invalid_payload` through the ingest app's problem handlers.

The route is `router` (an APIRouter with the /v1 prefix); `add_peer_sync_routes(app)` includes it
in an ingest app built by oracle.ingest_api.create_ingest_app (it reads `app.state.ingestor`).
Include it before the ingest router or after: its path does not collide with /v1/meter-batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import StreamingResponse

from oracle import db, meter_store
from oracle.ingest import Rejected
from oracle.ingest_api import QUERY_PROBLEMS, IngestorDep

NDJSON = "application/x-ndjson"
MAX_PAGE_BATCHES = 5_000
DEFAULT_PAGE_BATCHES = 1_000
_LINES_PER_CHUNK = 200  # lines joined into one write of the stream

router = APIRouter(prefix="/v1")


def page_lines(records: list[Any], after: int, limit: int) -> Iterator[bytes]:
    """The NDJSON lines of one page: up to `limit` of `records` (the store's answer for `limit + 1`,
    so one more than `limit` means another page follows), then the closing line."""
    served = records[:limit]
    chunk: list[bytes] = []
    for record in served:
        chunk.append(orjson.dumps({
            "device": record.device, "start": record.start, "intervalSeconds": record.interval_seconds,
            "readings": record.readings_list(), "sequence": record.sequence, "signature": record.signature,
            "receivedAt": record.received_at}))
        if len(chunk) >= _LINES_PER_CHUNK:
            yield b"\n".join(chunk) + b"\n"
            chunk = []
    if chunk:
        yield b"\n".join(chunk) + b"\n"
    cursor = served[-1].id if served else after
    yield orjson.dumps({"next": cursor if len(records) > limit else None, "cursor": cursor,
                        "count": len(served)}) + b"\n"


@router.get("/meter-batches/range", responses={**QUERY_PROBLEMS, 200: {
    "description": "one page of stored batches as NDJSON lines, then {next, cursor, count}",
    "content": {NDJSON: {"schema": {"type": "string"}}}}})
def get_meter_batches_range(
        ingestor: IngestorDep,
        from_: Annotated[int, Query(alias="from", ge=0, le=db.MAX_DB_INT, description="unix seconds, inclusive")],
        to: Annotated[int, Query(ge=1, le=db.MAX_DB_INT, description="unix seconds, exclusive")],
        after: Annotated[int, Query(ge=0, le=db.MAX_DB_INT, description="the cursor: a record id")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_BATCHES)] = DEFAULT_PAGE_BATCHES) -> StreamingResponse:
    """One page of every stored batch overlapping [from, to) after the cursor, for a peer oracle."""
    if from_ >= to:
        raise Rejected("invalid_payload", f"from ({from_}) must be below to ({to})")
    records = meter_store.batches_in_range(ingestor.engine, from_, to, after=after, limit=limit + 1,
                                           max_span_seconds=ingestor.max_span_seconds)
    return StreamingResponse(page_lines(records, after, limit), media_type=NDJSON)


def add_peer_sync_routes(app: FastAPI) -> None:
    """Serve GET /v1/meter-batches/range on an ingest app (one built by create_ingest_app)."""
    app.include_router(router)
