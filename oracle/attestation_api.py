"""HTTP routes of the attestation protocol and of the oracle's publications.

    POST /v1/proposals               {"epoch", "previousRoot", "requestIds"} + X-Negawatt-Oracle, -Issued-At,
                                     -Signature headers -> {"oracle", "digest", "signature"}
    GET  /v1/reports/{epoch}         the final report of an epoch: signed fields, per-request and
                                     per-device results (with the baseline and why a device earned
                                     nothing), and every leaf of the rewards tree with its proof
    GET  /v1/reports/by-digest/{d}   any report this oracle holds, with its status
    GET  /v1/rewards/{account}       the account's cumulative amounts per token and their proofs,
                                     from the last final report (what a node claims with)

Only an oracle of the OracleHub's set may post a proposal, signed over the proposal and a fresh
timestamp (protocol.proposals, three X-Negawatt-* headers), within its rate: oracle.proposal_gate
answers 401, 403 or 429 before any work. A proposal this oracle will not sign is a 409 problem
with the reason code. The routes are a module-level `router`; they reach the Attestor and the gate
through dependencies (`app.state`), which `add_attestation_routes` sets on the oracle's app. Every
status a route sends is declared in the OpenAPI document (oracle.openapi_doc).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from oracle.attestation import Attestor, ProposalRejected
from oracle.ingest_api import _read_body, problem
from oracle.openapi_doc import install_openapi, problem_responses
from oracle.proposal_gate import ChainSetUnavailable, OracleSet, ProposalGate, ProposalGateSettings, ProposalRefused
from protocol.problems import Reason
from protocol.proposals import (
    ADDRESS_PATTERN,
    HEADER_ISSUED_AT,
    HEADER_ORACLE,
    HEADER_SIGNATURE,
    ISSUED_AT_PATTERN,
    SIGNATURE_PATTERN,
)
from protocol.report import MAX_REPORT_ITEMS
from protocol.report_document import LeafProof, ReportDocument
from protocol.statuses import StoredReportStatus

HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
_HASH = re.compile(HASH_PATTERN[:-1])  # used with fullmatch: "$" would let a trailing newline through
_ADDRESS = re.compile(ADDRESS_PATTERN[:-1])


MAX_EPOCH = 2**32 - 1  # OracleHub stores the epoch as uint32
RequestId = Annotated[int, Field(ge=1, le=2**63 - 1)]  # FlexMarket ids start at 1; stored as BIGINT


class Proposal(BaseModel):
    """Another oracle's request to compute and sign an epoch over a set of requests (strict: JSON
    integers only, no unknown fields)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    epoch: int = Field(ge=1, le=2**32 - 1)
    previousRoot: str = Field(pattern=HASH_PATTERN, max_length=66)
    requestIds: list[RequestId] = Field(min_length=1, max_length=MAX_REPORT_ITEMS)  # what one report may carry


class ProposalAnswer(BaseModel):
    """This oracle's signature over the proposed epoch's report."""

    oracle: str = Field(pattern=ADDRESS_PATTERN, description="the answering oracle (checksummed)")
    digest: str = Field(pattern=HASH_PATTERN, description="EIP-712 digest of its report")
    signature: str = Field(pattern=SIGNATURE_PATTERN, description="its SettlementReport signature, r||s||v")


class PublishedReport(BaseModel):
    """A report this oracle holds: its status, the signed document and every leaf with its proof."""

    status: str = Field(description="computed, submitted, final or discarded",
                        json_schema_extra={"enum": ["computed", "submitted", "final", "discarded"]})
    report: dict[str, Any] = Field(description="the report document (protocol.report_document)")
    leaves: list[LeafProof]


class FinalReport(BaseModel):
    """An epoch's final report document with every leaf and proof beside its fields."""

    model_config = ConfigDict(extra="allow")

    digest: str = Field(pattern=HASH_PATTERN)
    epoch: int = Field(ge=1, le=2**32 - 1)
    rewardsRoot: str = Field(pattern=HASH_PATTERN)
    leaves: list[LeafProof]


class RewardProof(BaseModel):
    """One token of an account's cumulative rewards and the proof of its leaf."""

    token: str = Field(pattern=ADDRESS_PATTERN)
    amount: str = Field(pattern=r"^[0-9]+$", description="cumulative base units, decimal")
    proof: list[str] = Field(json_schema_extra={"items": {"type": "string", "pattern": HASH_PATTERN}})


class AccountRewards(BaseModel):
    """An account's cumulative rewards per token as of the last final report (epoch 0: none yet)."""

    account: str = Field(pattern=ADDRESS_PATTERN, description="as asked")
    epoch: int = Field(ge=0, le=2**32 - 1)
    root: str = Field(pattern=HASH_PATTERN)
    rewards: list[RewardProof]


class ProofCache:
    """Leaves with proofs per report digest: a report never changes, and rebuilding its tree for
    every rewards query would cost O(accounts) hashing per request. Keeps the last `size` reports."""

    def __init__(self, size: int = 8):
        self.size = size
        self._by_digest: dict[str, list[dict[str, Any]]] = {}

    def leaves(self, body: ReportDocument) -> list[dict[str, Any]]:
        """The report's leaves with proofs, as served (amounts as decimal strings)."""
        digest = body.digest
        cached = self._by_digest.get(digest)
        if cached is None:
            cached = [leaf.model_dump(mode="json") for leaf in body.proofs()]
            if len(self._by_digest) >= self.size:
                self._by_digest.pop(next(iter(self._by_digest)))
            self._by_digest[digest] = cached
        return cached


async def get_attestor(request: Request) -> Attestor:
    """The app's Attestor (`app.state.attestor`, set by add_attestation_routes)."""
    return request.app.state.attestor


async def get_proofs(request: Request) -> ProofCache:
    """The app's cache of leaves with proofs."""
    return request.app.state.proofs


async def get_gate(request: Request) -> ProposalGate:
    """The app's proposal gate (`app.state.proposal_gate`)."""
    return request.app.state.proposal_gate


AttestorDep = Annotated[Attestor, Depends(get_attestor)]
Proofs = Annotated[ProofCache, Depends(get_proofs)]
Gate = Annotated[ProposalGate, Depends(get_gate)]

router = APIRouter(prefix="/v1")

_CREDENTIAL_HEADERS = [
    {"name": HEADER_ORACLE, "in": "header", "required": True, "schema": {"type": "string", "pattern": ADDRESS_PATTERN},
     "description": "the proposing oracle (one of the OracleHub's oracles)"},
    {"name": HEADER_ISSUED_AT, "in": "header", "required": True,
     "schema": {"type": "string", "pattern": ISSUED_AT_PATTERN},
     "description": "unix seconds the proposal was signed at; refused outside this oracle's skew window"},
    {"name": HEADER_SIGNATURE, "in": "header", "required": True,
     "schema": {"type": "string", "pattern": SIGNATURE_PATTERN},
     "description": "EIP-712 OracleProposal signature by the proposer (protocol.proposals)"},
]
DigestPath = Annotated[str, Path(description="a report's EIP-712 digest", json_schema_extra={"pattern": HASH_PATTERN})]
EpochPath = Annotated[int, Path(description="an OracleHub epoch",
                                json_schema_extra={"minimum": 1, "maximum": MAX_EPOCH})]
AccountPath = Annotated[str, Path(description="an account", json_schema_extra={"pattern": ADDRESS_PATTERN})]


def _published(proofs: ProofCache, body: ReportDocument, status: StoredReportStatus) -> dict[str, Any]:
    return {"status": status.value, "report": body.as_json(), "leaves": proofs.leaves(body)}


@router.post("/proposals", response_model=ProposalAnswer,
             responses=problem_responses(400, 401, 403, 409, 413, 415, 429, 503),
             openapi_extra={"parameters": _CREDENTIAL_HEADERS, "requestBody": {"required": True, "content": {
                 "application/json": {"schema": Proposal.model_json_schema()}}}})
async def post_proposal(request: Request, attestor: AttestorDep, gate: Gate) -> JSONResponse:
    """Compute the proposed epoch from this oracle's own data and return its signature, if an
    oracle of the on-chain set signed the proposal recently and is within its rate."""
    gate.admit_client(request.client.host if request.client else "unknown")
    credentials = gate.credentials(request.headers)
    body = await _read_body(request, gate.settings.max_body_bytes)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return problem(415, Reason.UNSUPPORTED_MEDIA_TYPE, "A proposal is application/json",
                       f"content-type {media_type[:60] or 'missing'}")
    try:
        proposal = Proposal.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False, include_input=False,
                                                  include_context=False)) from None
    if gate.oracle_set.needs_read(credentials.proposer):
        await run_in_threadpool(gate.oracle_set.refresh)
    gate.authenticate(credentials, proposal.epoch, proposal.previousRoot, proposal.requestIds)
    return _json(await run_in_threadpool(attestor.answer_proposal, proposal.epoch, proposal.previousRoot,
                                         sorted(set(proposal.requestIds))))


@router.get("/reports/by-digest/{digest}", response_model=PublishedReport, responses=problem_responses(400, 404))
def report_by_digest(attestor: AttestorDep, proofs: Proofs, digest: DigestPath):
    """A report this oracle holds (computed, submitted, final or discarded)."""
    if not _HASH.fullmatch(digest):
        return problem(400, Reason.INVALID_DIGEST, "Not a 32-byte hex digest", digest)
    found = attestor.store.get(digest.lower())
    if found is None:
        return problem(404, Reason.UNKNOWN_REPORT, "No such report here", digest)
    return _json(_published(proofs, *found))


@router.get("/reports/{epoch}", response_model=FinalReport, responses=problem_responses(400, 404))
def report_of_epoch(attestor: AttestorDep, proofs: Proofs, epoch: EpochPath):
    """The final report of `epoch` with every leaf and proof; its root is the on-chain one."""
    if not 1 <= epoch <= MAX_EPOCH:
        return problem(400, Reason.INVALID_EPOCH, "Epochs run from 1 to 2^32 - 1", str(epoch)[:40])
    body = attestor.store.final(epoch)
    if body is None:
        return problem(404, Reason.UNKNOWN_REPORT, "No final report of that epoch here", str(epoch))
    return _json({**body.as_json(), "leaves": proofs.leaves(body)})


@router.get("/rewards/{account}", response_model=AccountRewards, responses=problem_responses(400))
def rewards(attestor: AttestorDep, proofs: Proofs, account: AccountPath):
    """Cumulative rewards of `account` per token, with proofs, as of the last final report."""
    if not _ADDRESS.fullmatch(account):
        return problem(400, Reason.INVALID_ADDRESS, "Not a 20-byte hex address", account)
    body = attestor.store.latest_final()
    if body is None:
        return _json({"account": account, "epoch": 0, "root": "0x" + "00" * 32, "rewards": []})
    mine = [leaf for leaf in proofs.leaves(body) if leaf["account"].lower() == account.lower()]
    return _json({"account": account, "epoch": body.epoch, "root": body.rewardsRoot,
                  "rewards": [{"token": leaf["token"], "amount": leaf["amount"], "proof": leaf["proof"]}
                              for leaf in mine]})


def _json(data: Any) -> JSONResponse:
    """`data` served as FastAPI would without a response model (the documents are served as built)."""
    return JSONResponse(jsonable_encoder(data))


def default_gate(attestor: Attestor, settings: ProposalGateSettings | None = None) -> ProposalGate:
    """The gate of `attestor`'s hub: its oracle set read from the OracleHub, freshness by its clock."""
    settings = settings or ProposalGateSettings()
    oracle_set = OracleSet.of_hub(attestor.hub, max_age_seconds=settings.oracle_set_max_age_seconds,
                                  miss_seconds=settings.oracle_set_miss_seconds)
    return ProposalGate(attestor.manifest.chainId, attestor.hub.address, oracle_set, attestor.clock, settings)


def add_attestation_routes(app: FastAPI, attestor: Attestor, gate: ProposalGate | None = None) -> None:
    """Mount the attestation and publication routes on the oracle's app (its state: the attestor, a
    proof cache, the proposal gate, by default `default_gate(attestor)`)."""
    app.state.attestor = attestor
    app.state.proofs = ProofCache()
    app.state.proposal_gate = gate or default_gate(attestor)

    @app.exception_handler(ProposalRejected)
    async def _declined(_request: Any, error: ProposalRejected):
        return problem(409, error.code, "Proposal declined", error.detail)

    @app.exception_handler(ProposalRefused)
    async def _refused(_request: Any, error: ProposalRefused):
        response = problem(error.status, error.code, error.title, error.detail)
        response.headers.update(error.headers)
        return response

    @app.exception_handler(ChainSetUnavailable)
    async def _no_set(_request: Any, error: ChainSetUnavailable):
        response = problem(503, Reason.CHAIN_UNAVAILABLE, "The oracle set cannot be read; retry later",
                           "the OracleHub is not reachable")
        response.headers["Retry-After"] = "5"
        return response

    app.include_router(router)
    install_openapi(app)
