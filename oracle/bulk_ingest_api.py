"""The bulk upload route: a node posts a backlog of signed meter batches in one request.

    POST /v1/meter-batches/bulk      (application/x-ndjson)

The body is NDJSON: one signed meter batch per line, each line exactly what POST /v1/meter-batches
takes as its body ({"device", "start", "intervalSeconds", "readings", "sequence", "signature"}).
The rule: bounded before parsing, each item judged as the single route judges it, answered only
once stored.

- Bounds: the body is at most `IngestSettings.bulk_max_bytes` (NEGAWATT_INGEST_BULK_MAX_BYTES;
  a 413 `payload_too_large` before it is read whole) and holds at most `bulk_max_batches`
  (NEGAWATT_INGEST_BULK_MAX_BATCHES) lines (a 413 `too_many_batches`); an empty body or an empty
  line is a 400 `invalid_payload`. Any of these refuses the whole upload: nothing is stored.
- Items: a line longer than the single route's body cap is refused `payload_too_large`; every
  other line is parsed by the single route's codec and checked by `Ingestor.accept_batches` (the
  single route's rules, signatures recovered in one pass off the event loop): the same codes and
  details the single route gives. One refused item never stops the others.
- Durability: the answer is sent after the batches are committed (accept_batches returns then).

The answer (200, application/x-ndjson) has one line per item, in the body's order, then a closing line:

    {"index": i, "status": 201 or 200, "ack": <the ack, the very bytes the single route answers>}
    {"index": i, "status": 4xx, "problem": <the problem body the single route answers>}
    {"count": n, "accepted": new, "replayed": replays, "refused": refusals}

A 503 (`chain_unavailable`, `database_busy`) refuses the upload as a whole; batches of groups
committed before a `database_busy` stay stored and are answered as replays when the upload is sent
again. Each item is counted in the metrics and the ingest log like a single post.

`router` is included by oracle.ingest_api.create_ingest_app, which gives the path its own body cap;
it shares the single routes' body reading and parsing (oracle.ingest_http).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from oracle.ingest import REASONS, Ack, Ingestor, IngestSettings, Rejected
from oracle.ingest_http import (DEFAULT_MAX_BODY_BYTES, Clock, IngestorDep, _InvalidPayload, _parse, _read_body,
                                _summary)
from oracle.openapi_doc import problem_responses
from protocol.messages import MeterBatchMessage
from protocol.meter import MeterBatch
from protocol.problems import ProblemNamespace, Reason, problem_body

BULK_PATH = "/v1/meter-batches/bulk"
NDJSON = "application/x-ndjson"
_INVALID_TITLE = "The request body is not a valid payload"

router = APIRouter(prefix="/v1")


def split_lines(body: bytes, max_batches: int) -> list[bytes]:
    """The body's lines (a final newline optional); raises Rejected for an empty body, an empty line
    or more than `max_batches` lines, before any line is parsed."""
    if not body.strip():
        raise Rejected(Reason.INVALID_PAYLOAD.value, "the upload holds no batch: one NDJSON line per batch")
    count = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    if count > max_batches:
        raise Rejected(Reason.TOO_MANY_BATCHES.value, f"{count} lines; at most {max_batches} batches in one upload")
    lines = body[:-1].split(b"\n") if body.endswith(b"\n") else body.split(b"\n")
    for index, line in enumerate(lines):
        if not line.strip():
            raise Rejected(Reason.INVALID_PAYLOAD.value, f"line {index} is empty: one batch per line, none blank")
    return lines


def _item_problem(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return problem_body(ProblemNamespace.INGEST, status, code, title, detail, **extra)


@dataclass(frozen=True)
class ItemAnswer:
    """One line's answer: its `ack`, or the `problem` body the single route would answer; `device` and
    `readings` of the parsed batch (for the metrics and the log; empty for an unparsed line)."""

    ack: Ack | None
    problem: dict[str, Any] | None
    device: str = ""
    readings: int = 0


def accept_lines(ingestor: Ingestor, lines: list[bytes], now: int, max_line_bytes: int) -> list[ItemAnswer]:
    """Each line's answer, in order (see ItemAnswer).

    Lines are parsed with the single route's codec and stored by `ingestor.accept_batches` (durable
    when this returns). Runs in a worker thread: parsing and signature recovery are CPU work."""
    answers: list[ItemAnswer | None] = [None] * len(lines)
    batches: list[MeterBatch] = []
    positions: list[int] = []
    for index, line in enumerate(lines):
        if len(line) > max_line_bytes:
            answers[index] = ItemAnswer(None, _item_problem(413, Reason.PAYLOAD_TOO_LARGE.value,
                                                            REASONS["payload_too_large"][1],
                                                            f"{len(line)} bytes; at most {max_line_bytes}"))
            continue
        try:
            batches.append(_parse(MeterBatchMessage, line).to_batch())
        except _InvalidPayload as error:
            answers[index] = ItemAnswer(None, _item_problem(400, Reason.INVALID_PAYLOAD.value, _INVALID_TITLE,
                                                            _summary(error.errors), errors=error.errors))
            continue
        positions.append(index)
    stored = ingestor.accept_batches(batches, now) if batches else []
    for index, batch, answer in zip(positions, batches, stored):
        if isinstance(answer, Rejected):
            answers[index] = ItemAnswer(None, _item_problem(answer.status, answer.code, answer.title, answer.detail),
                                        batch.device, len(batch.readings))
        else:
            answers[index] = ItemAnswer(answer, None, batch.device, len(batch.readings))
    return answers  # type: ignore[return-value]


def _accept_now(ingestor: Ingestor, lines: list[bytes], clock: Callable[[], float], max_line_bytes: int) -> list:
    """`accept_lines` with "now" read in the worker thread (the oracle's clock may call the chain)."""
    return accept_lines(ingestor, lines, int(clock()), max_line_bytes)


def _record(request: Request, answers: list[ItemAnswer]) -> tuple[int, int, int]:
    """Count and log each item like a single post; returns (accepted, replayed, refused)."""
    state = request.app.state
    metrics, ingest_log = getattr(state, "metrics", None), getattr(state, "ingest_log", None)
    accepted = replayed = refused = 0
    for item in answers:
        if item.ack is not None:
            replay = item.ack.replay
            replayed += replay
            accepted += not replay
            if metrics is not None:
                metrics.accepted("meter_batch", item.readings, replay=replay)
            if ingest_log is not None:
                if replay:
                    ingest_log.replayed()
                else:
                    ingest_log.batch_accepted(item.device, item.readings)
        else:
            assert item.problem is not None
            refused += 1
            if metrics is not None:
                metrics.rejected("meter_batch", item.problem["code"])
            if ingest_log is not None:
                ingest_log.refused("meter_batch", item.problem["code"], item.problem["detail"])
    return accepted, replayed, refused


def answer_lines(answers: list[ItemAnswer], counts: tuple[int, int, int]) -> bytes:
    """The NDJSON answer: one line per item (the ack's stored bytes spliced in as they are), then the
    closing line with the counts."""
    out: list[bytes] = []
    for index, item in enumerate(answers):
        if item.ack is not None:
            out.append(b'{"index":%d,"status":%d,"ack":%s}' % (index, 200 if item.ack.replay else 201,
                                                                item.ack.json.encode()))
        else:
            assert item.problem is not None
            out.append(orjson.dumps({"index": index, "status": item.problem["status"], "problem": item.problem}))
    accepted, replayed, refused = counts
    out.append(orjson.dumps({"count": len(answers), "accepted": accepted, "replayed": replayed, "refused": refused}))
    return b"\n".join(out) + b"\n"


def bulk_settings(ingestor: Any) -> IngestSettings:
    """The ingestor's rules (its bulk caps), or the defaults for a stand-in without them."""
    settings = getattr(ingestor, "settings", None)
    return settings if isinstance(settings, IngestSettings) else IngestSettings(_env_file=None)


_BODY_DOC = ("NDJSON: one signed meter batch per line, each line the body POST /v1/meter-batches takes "
             '({"device", "start", "intervalSeconds", "readings", "sequence", "signature"}); at most '
             "NEGAWATT_INGEST_BULK_MAX_BATCHES lines and NEGAWATT_INGEST_BULK_MAX_BYTES bytes, none empty")
_ANSWER_DOC = ('one line per item in order, {"index", "status": 201|200, "ack"} or {"index", "status", "problem"} '
               '(the single route\'s ack or problem), then {"count", "accepted", "replayed", "refused"}')


@router.post("/meter-batches/bulk", response_class=Response,
             responses={200: {"description": _ANSWER_DOC, "content": {NDJSON: {"schema": {"type": "string"}}}},
                        **problem_responses(400, 413, 503, s400="an empty upload or an empty line (invalid_payload)",
                                            s413="the body is over the bulk cap (payload_too_large) or it holds "
                                                 "more batches than allowed (too_many_batches)")},
             openapi_extra={"requestBody": {"required": True, "description": _BODY_DOC,
                                            "content": {NDJSON: {"schema": {"type": "string"}}}}})
async def post_meter_batches_bulk(request: Request, ingestor: IngestorDep, clock: Clock) -> Response:
    """Accept many signed meter batches (a node's backlog): one answer per item, after the commit."""
    settings = bulk_settings(ingestor)
    body = await _read_body(request, settings.bulk_max_bytes)
    lines = split_lines(body, settings.bulk_max_batches)
    max_line = getattr(request.app.state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    answers = await run_in_threadpool(_accept_now, ingestor, lines, clock, max_line)
    counts = _record(request, answers)
    return Response(answer_lines(answers, counts), status_code=200, media_type=NDJSON)
