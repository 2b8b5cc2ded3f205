"""HTTP front of the ingest: nodes post signed meter batches and commitments; peers and auditors read them.

    POST /v1/meter-batches   {"device", "start", "intervalSeconds", "readings", "sequence", "signature"}
    POST /v1/meter-batches/bulk   NDJSON, one such batch per line: a backlog in one request, one
                             answer per line after the commit (oracle.bulk_ingest_api)
    POST /v1/commitments     {"requestId", "device", "watts", "minPricePerKWh", "extraWatts",
                              "extraMinPricePerKWh", "minAvailabilityPricePerKWh", "signature"}
                             (an offer: protocol.messages)
    GET  /v1/meter-batches?device=&from=&to=&limit=    stored batches with signatures (re-verifiable)
    GET  /v1/commitments?request_id=
    GET  /v1/gaps?device=&open=
    GET  /v1/health                                    liveness
    GET  /v1/ready, GET /metrics                       readiness and Prometheus metrics (oracle.ops_api)

201 with the ack for a new acceptance, 200 with the identical stored ack for a replay. Every
rejection is a 4xx `application/problem+json` body {"type", "title", "status", "detail", "code"}
(RFC 9457); the 5xx a client can meet are 503 `chain_unavailable` when the RPC is down and an
unknown device or request cannot be looked up, and 503 `database_busy` when another process held
the database's write lock past the busy timeout (oracle.db; nothing was stored): retry later.
Every answer to a POST is counted in the metrics (accepted, replayed, refused by reason) and logged
as a decision (oracle.logs.IngestLog).

The routes are a module-level `router` (the bulk route is oracle.bulk_ingest_api's); they reach
the app's Ingestor, clock and body limit through oracle.ingest_http's dependencies (`app.state`),
set by `create_ingest_app`. The problem format and
reason codes are protocol.problems'.

Run it with `python -m oracle.ingest_api` (settings from NEGAWATT_* environment variables and
DATABASE_URL, see IngestServiceSettings) or `uvicorn --factory oracle.ingest_api:app_from_env`.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from oracle import bulk_ingest_api, db, meter_store
from oracle.allowed_methods import allowed_methods
from oracle.chain_view import ChainView, run_poller
from oracle.ingest import ChainUnavailable, Ingestor, IngestSettings, Rejected
# The shared plumbing, imported from here by the other oracle routes too (_read_body, problem, IngestorDep).
from oracle.ingest_http import (DEFAULT_MAX_BODY_BYTES, Body, Clock, IngestorDep, _errors,  # noqa: F401
                                _InvalidPayload, _parse, _read_body, _summary, get_body, get_clock, get_ingestor,
                                problem)
from oracle.logs import IngestLog, configure_logging
from oracle.metrics import OracleMetrics
from oracle.ops_api import add_ops_routes
from oracle.readiness import DEFAULT_MAX_LAG_BLOCKS, Readiness, rpc_url_of
from oracle.openapi_doc import ADDRESS_PATTERN, HASH_PATTERN, HEX_PATTERN, install_openapi, problem_responses
from protocol.chain import connect
from protocol.fast_verify import RegistryDomainVerifier
from protocol.http_limits import BodyLimitMiddleware, limited_server
from protocol.manifest import check_chain, load_manifest
from protocol.addresses import checksummed
from protocol.messages import CommitmentMessage, MeterBatchMessage
from protocol.problems import ProblemNamespace, Reason
from protocol.settings import ChainSettings

logger = logging.getLogger(__name__)

# The request bodies are the protocol's message codecs (protocol/messages.py).
MeterBatchPayload = MeterBatchMessage
CommitmentPayload = CommitmentMessage
_address = checksummed


# ------------------------------------------------------------------------------------------------
# problems


# The POST routes whose answers are counted and logged as ingest decisions, by message kind.
INGEST_PATHS = {"/v1/meter-batches": "meter_batch", "/v1/meter-batches/bulk": "meter_batch",
                "/v1/commitments": "commitment"}
DATABASE_BUSY = "database_busy"


def _ingest_kind(request: Request) -> str | None:
    return INGEST_PATHS.get(request.url.path) if request.method == "POST" else None


def record_refusal(request: Request, code: Reason | str, detail: str) -> None:
    """Count and log a refused ingest message (a no-op for other routes or an app without metrics)."""
    kind = _ingest_kind(request)
    code = code.value if isinstance(code, Reason) else str(code)
    if kind is None:
        logger.info("refused %s %s: %s (%s)", request.method, request.url.path, code, detail)
        return
    state = request.app.state
    if getattr(state, "metrics", None) is not None:
        state.metrics.rejected(kind, code)
    if getattr(state, "ingest_log", None) is not None:
        state.ingest_log.refused(kind, code, detail)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error of an oracle app as application/problem+json (never echoing the input back)."""
    @app.exception_handler(Rejected)
    async def _rejected(request: Request, error: Rejected) -> JSONResponse:
        record_refusal(request, error.code, error.detail)
        return problem(error.status, error.code, error.title, error.detail)

    @app.exception_handler(ChainUnavailable)
    async def _unavailable(request: Request, error: ChainUnavailable) -> JSONResponse:
        record_refusal(request, Reason.CHAIN_UNAVAILABLE, str(error))
        response = problem(503, Reason.CHAIN_UNAVAILABLE, "The chain is not reachable; retry later", str(error))
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(db.DatabaseBusy)
    async def _busy(request: Request, error: db.DatabaseBusy) -> JSONResponse:
        logger.warning("%s %s: %s", request.method, request.url.path, error)
        record_refusal(request, DATABASE_BUSY, str(error))
        response = problem(503, DATABASE_BUSY, "The database is busy; retry later", str(error))
        response.headers["Retry-After"] = "2"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = _errors(error)
        record_refusal(request, Reason.INVALID_PAYLOAD, _summary(errors))
        return problem(400, Reason.INVALID_PAYLOAD, "The request is not valid", _summary(errors), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: Reason.NOT_FOUND, 405: Reason.METHOD_NOT_ALLOWED}
        code = codes.get(error.status_code, Reason.HTTP_ERROR)
        response = problem(error.status_code, code, str(error.detail), str(error.detail))
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        if error.status_code == 405:
            response.headers["Allow"] = allowed_methods(request)  # every route of the path, not the first
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error in the ingest API")
        return problem(500, Reason.INTERNAL_ERROR, "Internal error", "the error is logged")


def _query_address(value: str, name: str = "device") -> str:
    try:
        return _address(value)
    except ValueError as error:
        raise Rejected(Reason.INVALID_PAYLOAD.value, f"{name}: {error}") from None


# ------------------------------------------------------------------------------------------------
# response models (they document the JSON; the routes serve the stored or built JSON as is)


class AckOut(BaseModel):
    """The oracle's acknowledgement of an accepted message (the exact stored text on a replay)."""

    model_config = ConfigDict(extra="allow")

    status: str = Field(description="accepted")
    kind: str = Field(description="meter_batch or commitment")
    device: str = Field(pattern=ADDRESS_PATTERN)
    digest: str = Field(pattern=HASH_PATTERN)
    received_at: int
    gap: dict[str, Any] | None = Field(description="the sequence gap this batch opened, if any")


class StoredBatchOut(BaseModel):
    """A stored meter batch, as signed (re-verifiable), with what the oracle recorded."""

    device: str = Field(pattern=ADDRESS_PATTERN)
    start: int
    intervalSeconds: int
    readings: list[int]
    sequence: int
    signature: str = Field(pattern=HEX_PATTERN)
    readingsHash: str = Field(pattern=HASH_PATTERN)
    digest: str = Field(pattern=HASH_PATTERN)
    receivedAt: int


class StoredCommitmentOut(BaseModel):
    """A stored commitment, as signed."""

    requestId: int
    device: str = Field(pattern=ADDRESS_PATTERN)
    watts: int
    minPricePerKWh: int
    extraWatts: int
    extraMinPricePerKWh: int
    minAvailabilityPricePerKWh: int
    signature: str = Field(pattern=HEX_PATTERN)
    digest: str = Field(pattern=HASH_PATTERN)
    receivedAt: int


class GapOut(BaseModel):
    """A recorded sequence gap of a device."""

    device: str = Field(pattern=ADDRESS_PATTERN)
    expected: int
    received: int
    detectedAt: int
    filledAt: int | None
    missing: int


class IngestHealth(BaseModel):
    """Liveness and how far the chain view has read."""

    status: str
    chainId: int | None
    chainCursor: int | None
    devices: int | None
    requests: int | None
    rules: dict[str, Any]


PROBLEMS: dict[int | str, dict[str, Any]] = problem_responses(400, 403, 409, 413, 422, 503)  # what a post may answer
QUERY_PROBLEMS: dict[int | str, dict[str, Any]] = problem_responses(400)  # a query's only problem: its parameters
ACKS: dict[int | str, dict[str, Any]] = {200: {"model": AckOut, "description": "a replay: the stored ack"}, **PROBLEMS}


def _json(data: Any) -> JSONResponse:
    """`data` served as FastAPI would without a response model (jsonable_encoder, then JSONResponse)."""
    return JSONResponse(jsonable_encoder(data))


def _ack_response(request: Request, kind: str, ack: Any, readings: int = 0, detail: tuple = ()) -> Response:
    """The ack as the answer (201 new, 200 replay), counted and logged as a decision."""
    state = request.app.state
    if getattr(state, "metrics", None) is not None:
        state.metrics.accepted(kind, readings, replay=ack.replay)
    ingest_log = getattr(state, "ingest_log", None)
    if ingest_log is not None:
        if ack.replay:
            ingest_log.replayed()
        elif kind == "meter_batch":
            ingest_log.batch_accepted(*detail)
        else:
            ingest_log.commitment_accepted(*detail)
    return Response(ack.json, status_code=200 if ack.replay else 201, media_type="application/json")


def _accept_now(accept: Callable[[Any, int], Any], message: Any, clock: Callable[[], float]) -> Any:
    """`accept(message, now)` with "now" read in the worker thread, not on the event loop: the
    oracle's clock (protocol.clock.ChainClock) refreshes its lead over the wall clock with a JSON-RPC
    call about once a second, which must not stall every other request of the loop meanwhile."""
    return accept(message, int(clock()))


# ------------------------------------------------------------------------------------------------
# the routes

router = APIRouter(prefix="/v1")
_DEVICE_QUERY = Query(description="a device address (mixed case must carry its EIP-55 checksum)",
                      json_schema_extra={"pattern": ADDRESS_PATTERN})
DeviceQuery = Annotated[str, _DEVICE_QUERY]


@router.post("/meter-batches", status_code=201, response_model=AckOut, responses=ACKS,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": MeterBatchPayload.model_json_schema()}}}})
async def post_meter_batch(request: Request, ingestor: IngestorDep, body: Body, clock: Clock) -> Response:
    """Accept one signed meter batch (201), or return the stored ack of a replay (200)."""
    payload = _parse(MeterBatchPayload, body)
    batch = payload.to_batch()
    ack = await run_in_threadpool(_accept_now, ingestor.accept_batch, batch, clock)
    readings = len(batch.readings)
    return _ack_response(request, "meter_batch", ack, readings, (ack.body.get("device", batch.device), readings))


@router.post("/commitments", status_code=201, response_model=AckOut, responses=ACKS,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": CommitmentPayload.model_json_schema()}}}})
async def post_commitment(request: Request, ingestor: IngestorDep, body: Body, clock: Clock) -> Response:
    """Accept one signed commitment (201), or return the stored ack of a replay (200)."""
    payload = _parse(CommitmentPayload, body)
    commitment = payload.to_commitment()
    ack = await run_in_threadpool(_accept_now, ingestor.accept_commitment, commitment, clock)
    return _ack_response(request, "commitment", ack,
                         detail=(ack.body.get("device", commitment.device), commitment.request_id, commitment.watts))


@router.get("/meter-batches", response_model=list[StoredBatchOut], responses=QUERY_PROBLEMS)
def get_meter_batches(ingestor: IngestorDep, device: DeviceQuery,
                      from_: Annotated[int, Query(alias="from", ge=0, le=db.MAX_DB_INT)] = 0,
                      to: Annotated[int, Query(ge=0, le=db.MAX_DB_INT)] = db.MAX_DB_INT,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000) -> Response:
    """Stored batches of `device` overlapping [from, to), oldest first, as signed (re-verifiable)."""
    records = meter_store.batches_of_device(ingestor.engine, _query_address(device), from_, to, limit,
                                            ingestor.max_span_seconds)
    return _json([{"device": r.device, "start": r.start, "intervalSeconds": r.interval_seconds,
                   "readings": r.readings_list(), "sequence": r.sequence, "signature": r.signature,
                   "readingsHash": r.readings_hash, "digest": r.digest, "receivedAt": r.received_at}
                  for r in records])


@router.get("/commitments", response_model=list[StoredCommitmentOut], responses=QUERY_PROBLEMS)
def get_commitments(ingestor: IngestorDep, request_id: Annotated[int, Query(ge=0)]) -> Response:
    """Stored commitments to request `request_id`, by device, as signed."""
    return _json([{"requestId": r.request_id, "device": r.device, "watts": r.watts,
                   "minPricePerKWh": int(r.min_price), "extraWatts": r.extra_watts,
                   "extraMinPricePerKWh": int(r.extra_min_price),
                   "minAvailabilityPricePerKWh": int(r.min_availability_price), "signature": r.signature,
                   "digest": r.digest, "receivedAt": r.received_at}
                  for r in db.commitments_of_request(ingestor.engine, request_id)])


@router.get("/gaps", response_model=list[GapOut], responses=QUERY_PROBLEMS)
def get_gaps(ingestor: IngestorDep, device: Annotated[str | None, _DEVICE_QUERY] = None,
             open_only: Annotated[bool, Query(alias="open")] = False,
             limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000) -> Response:
    """Recorded sequence gaps (of one device, or all), with how many sequences are still missing."""
    address = _query_address(device) if device is not None else None
    return _json([{"device": gap.device, "expected": gap.expected, "received": gap.received,
                   "detectedAt": gap.detected_at, "filledAt": gap.filled_at, "missing": missing}
                  for gap, missing in db.gaps_of_device(ingestor.engine, address, open_only=open_only, limit=limit)])


@router.get("/health", response_model=IngestHealth)
def health(ingestor: IngestorDep) -> Response:
    """Liveness, and how far the chain view has read."""
    view = ingestor.chain_view
    return _json({
        "status": "ok",
        "chainId": getattr(view, "chain_id", None),
        "chainCursor": getattr(view, "cursor", None),
        "devices": len(view.devices()) if hasattr(view, "devices") else None,
        "requests": len(view.requests()) if hasattr(view, "requests") else None,
        "rules": ingestor.settings.model_dump(),
    })


# ------------------------------------------------------------------------------------------------
# the app


def create_ingest_app(ingestor: Ingestor, *, clock: Callable[[], float] = time.time,
                      poll_seconds: float | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                      metrics: OracleMetrics | None = None, readiness: Readiness | None = None,
                      ingest_log: IngestLog | None = None,
                      max_lag_blocks: int = DEFAULT_MAX_LAG_BLOCKS) -> FastAPI:
    """The ingest HTTP app around `ingestor`, with /metrics and /v1/ready (oracle.ops_api).

    `clock` gives "now" (unix seconds) for each message; `poll_seconds` starts a background thread
    that keeps the chain view in sync (for deactivations and cancellations; lookup misses sync
    on their own); `max_body_bytes` caps request bodies. `metrics`, `readiness` and `ingest_log`
    default to new ones for this ingest (readiness: database, chain RPC, follower within
    `max_lag_blocks` of the head; no key); the oracle service passes its own (app.state).
    """
    view = ingestor.chain_view
    metrics = metrics or OracleMetrics()
    engine = getattr(ingestor, "engine", None)  # (an app built around a stand-in has none)
    if engine is not None:
        metrics.instrument(engine)
    if readiness is None:
        follower = getattr(view, "follower", None)
        readiness = Readiness(engine, rpc_url_of(getattr(view, "web3", None)), view,
                              confirmations=getattr(follower, "confirmations", 0), max_lag_blocks=max_lag_blocks)
    metrics.watch(chain=readiness.chain)
    ingest_log = ingest_log or IngestLog()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        poller = None
        if poll_seconds and hasattr(view, "sync"):
            poller = threading.Thread(target=run_poller, args=(view, stop, poll_seconds), name="chain-view-poller",
                                      daemon=True)
            poller.start()
        yield
        stop.set()
        if poller is not None:
            poller.join(timeout=10)
        ingest_log.flush()

    app = FastAPI(title="negawatt oracle ingest", version="1", lifespan=lifespan)
    app.state.ingestor = ingestor
    app.state.clock = clock
    app.state.max_body_bytes = max_body_bytes
    app.state.ingest_log = ingest_log
    add_ops_routes(app, metrics, readiness)
    install_problem_handlers(app)
    bulk_bytes = bulk_ingest_api.bulk_settings(ingestor).bulk_max_bytes
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, namespace=ProblemNamespace.INGEST,
                       reason=Reason.PAYLOAD_TOO_LARGE, title="The request body is too large",
                       path_limits={bulk_ingest_api.BULK_PATH: bulk_bytes})
    install_openapi(app)  # problems as problem+json, no invented 422 (oracle.openapi_doc)

    @app.exception_handler(_InvalidPayload)
    async def _invalid_payload(request: Request, error: _InvalidPayload) -> JSONResponse:
        record_refusal(request, Reason.INVALID_PAYLOAD, _summary(error.errors))
        return problem(400, Reason.INVALID_PAYLOAD, "The request body is not a valid payload",
                       _summary(error.errors), errors=error.errors)

    app.include_router(router)
    app.include_router(bulk_ingest_api.router)
    return app


# ------------------------------------------------------------------------------------------------
# running it as a service


class IngestServiceSettings(ChainSettings):
    """Settings of the ingest service (NEGAWATT_* environment variables, DATABASE_URL, .env)."""

    model_config = SettingsConfigDict(env_prefix="NEGAWATT_", env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite:///oracle-ingest.sqlite",
                              validation_alias=AliasChoices("database_url", "DATABASE_URL", "NEGAWATT_DATABASE_URL"),
                              description="SQLite URL or path (default), or postgresql://...")
    host: str = Field("127.0.0.1", description="address the HTTP server binds")
    port: int = Field(8100, ge=0, le=65_535, description="port the HTTP server binds")
    poll_seconds: float = Field(2.0, gt=0, description="how often the chain view syncs in the background")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1_024)


def build_ingestor(settings: IngestServiceSettings, rules: IngestSettings | None = None) -> Ingestor:
    """Connect to the chain and the database named by `settings` and return a ready Ingestor."""
    manifest = load_manifest(settings.manifest)
    web3 = connect(settings.rpc_url)
    check_chain(manifest, web3)
    engine = db.make_engine(settings.database_url)
    db.init_db(engine)
    meter_store.migrate_legacy(engine)
    view = ChainView(web3, manifest, engine, confirmations=settings.confirmations)
    verifier = RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry"))
    return Ingestor(engine, view, verifier, rules or IngestSettings())


def app_from_env() -> FastAPI:
    """App factory for `uvicorn --factory oracle.ingest_api:app_from_env` (settings from the environment)."""
    settings = IngestServiceSettings()
    return create_ingest_app(build_ingestor(settings), poll_seconds=settings.poll_seconds,
                             max_body_bytes=settings.max_body_bytes)


def main(argv: list[str] | None = None) -> None:
    """`python -m oracle.ingest_api [--host H] [--port P] [--database-url URL] [--rpc-url URL] [--manifest F]`."""
    parser = argparse.ArgumentParser(prog="python -m oracle.ingest_api", description=__doc__.splitlines()[0])
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--database-url", dest="database_url")
    parser.add_argument("--rpc-url", dest="rpc_url")
    parser.add_argument("--manifest", type=Path)
    parser.add_argument("--confirmations", type=int)
    args = parser.parse_args(argv)
    settings = IngestServiceSettings(**{k: v for k, v in vars(args).items() if v is not None})
    configure_logging(0)
    app = create_ingest_app(build_ingestor(settings), poll_seconds=settings.poll_seconds,
                            max_body_bytes=settings.max_body_bytes)
    logger.info("ingest listening on http://%s:%d (database %s)", settings.host, settings.port,
                settings.database_url.split("@")[-1])
    limited_server(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                   loop="uvloop").run()  # http_limits


if __name__ == "__main__":
    main()
