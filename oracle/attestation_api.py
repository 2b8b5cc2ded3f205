"""HTTP routes of the attestation protocol and of the oracle's publications.

    POST /v1/proposals               {"epoch", "previousRoot", "requestIds"} -> {"oracle", "digest", "signature"}
    GET  /v1/reports/{epoch}         the final report of an epoch: signed fields, per-request and
                                     per-device results (with the baseline and why a device earned
                                     nothing), and every leaf of the rewards tree with its proof
    GET  /v1/reports/by-digest/{d}   any report this oracle holds, with its status
    GET  /v1/rewards/{account}       the account's cumulative amounts per token and their proofs,
                                     from the last final report (what a node claims with)

A proposal this oracle will not sign is a 409 problem with the reason code. The routes are a
module-level `router`; they reach the Attestor through dependencies (`app.state`), which
`add_attestation_routes` sets on the oracle's app.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from oracle.attestation import Attestor, ProposalRejected
from oracle.ingest_api import problem
from protocol.problems import Problem, Reason
from protocol.report import MAX_REPORT_ITEMS
from protocol.report_document import LeafProof, ReportDocument
from protocol.statuses import StoredReportStatus

_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


MAX_EPOCH = 2**32 - 1  # OracleHub stores the epoch as uint32
RequestId = Annotated[int, Field(ge=1, le=2**63 - 1)]  # FlexMarket ids start at 1; stored as BIGINT


class Proposal(BaseModel):
    """Another oracle's request to compute and sign an epoch over a set of requests (strict: JSON
    integers only, no unknown fields)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    epoch: int = Field(ge=1, le=2**32 - 1)
    previousRoot: str = Field(pattern=_HASH.pattern, max_length=66)
    requestIds: list[RequestId] = Field(min_length=1, max_length=MAX_REPORT_ITEMS)  # what one report may carry


class ProposalAnswer(BaseModel):
    """This oracle's signature over the proposed epoch's report."""

    oracle: str
    digest: str
    signature: str


class PublishedReport(BaseModel):
    """A report this oracle holds: its status, the signed document and every leaf with its proof."""

    status: str = Field(description="computed, submitted, final or discarded")
    report: dict[str, Any] = Field(description="the report document (protocol.report_document)")
    leaves: list[LeafProof]


class FinalReport(BaseModel):
    """An epoch's final report document with every leaf and proof beside its fields."""

    model_config = ConfigDict(extra="allow")

    digest: str
    epoch: int
    rewardsRoot: str
    leaves: list[LeafProof]


class RewardProof(BaseModel):
    """One token of an account's cumulative rewards and the proof of its leaf."""

    token: str
    amount: str
    proof: list[str]


class AccountRewards(BaseModel):
    """An account's cumulative rewards per token as of the last final report (epoch 0: none yet)."""

    account: str
    epoch: int
    root: str
    rewards: list[RewardProof]


PROBLEMS: dict[int | str, dict[str, Any]] = {status: {"model": Problem} for status in (400, 404, 409)}
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


AttestorDep = Annotated[Attestor, Depends(get_attestor)]
Proofs = Annotated[ProofCache, Depends(get_proofs)]

router = APIRouter(prefix="/v1", responses=PROBLEMS)


def _published(proofs: ProofCache, body: ReportDocument, status: StoredReportStatus) -> dict[str, Any]:
    return {"status": status.value, "report": body.as_json(), "leaves": proofs.leaves(body)}


@router.post("/proposals", response_model=ProposalAnswer)
async def post_proposal(attestor: AttestorDep, proposal: Proposal):
    """Compute the proposed epoch from this oracle's own data and return its signature."""
    return _json(await run_in_threadpool(attestor.answer_proposal, proposal.epoch, proposal.previousRoot,
                                         sorted(set(proposal.requestIds))))


@router.get("/reports/by-digest/{digest}", response_model=PublishedReport)
def report_by_digest(attestor: AttestorDep, proofs: Proofs, digest: str):
    """A report this oracle holds (computed, submitted, final or discarded)."""
    if not _HASH.fullmatch(digest):
        return problem(400, Reason.INVALID_DIGEST, "Not a 32-byte hex digest", digest)
    found = attestor.store.get(digest.lower())
    if found is None:
        return problem(404, Reason.UNKNOWN_REPORT, "No such report here", digest)
    return _json(_published(proofs, *found))


@router.get("/reports/{epoch}", response_model=FinalReport)
def report_of_epoch(attestor: AttestorDep, proofs: Proofs, epoch: int):
    """The final report of `epoch` with every leaf and proof; its root is the on-chain one."""
    if not 1 <= epoch <= MAX_EPOCH:
        return problem(400, Reason.INVALID_EPOCH, "Epochs run from 1 to 2^32 - 1", str(epoch)[:40])
    body = attestor.store.final(epoch)
    if body is None:
        return problem(404, Reason.UNKNOWN_REPORT, "No final report of that epoch here", str(epoch))
    return _json({**body.as_json(), "leaves": proofs.leaves(body)})


@router.get("/rewards/{account}", response_model=AccountRewards)
def rewards(attestor: AttestorDep, proofs: Proofs, account: str):
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


def add_attestation_routes(app: FastAPI, attestor: Attestor) -> None:
    """Mount the attestation and publication routes on the oracle's app (its state: the attestor, a proof cache)."""
    app.state.attestor = attestor
    app.state.proofs = ProofCache()

    @app.exception_handler(ProposalRejected)
    async def _declined(_request: Any, error: ProposalRejected):
        return problem(409, error.code, "Proposal declined", error.detail)

    app.include_router(router)
