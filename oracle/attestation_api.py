"""HTTP routes of the attestation protocol and of the oracle's publications.

    POST /v1/proposals               {"epoch", "previousRoot", "requestIds"} -> {"oracle", "digest", "signature"}
    GET  /v1/reports/{epoch}         the final report of an epoch: signed fields, per-request and
                                     per-device results (with the baseline and why a device earned
                                     nothing), and every leaf of the rewards tree with its proof
    GET  /v1/reports/by-digest/{d}   any report this oracle holds, with its status
    GET  /v1/rewards/{account}       the account's cumulative amounts per token and their proofs,
                                     from the last final report (what a node claims with)

A proposal this oracle will not sign is a 409 problem with the reason code.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from oracle.attestation import Attestor, ProposalRejected
from oracle.ingest_api import problem
from protocol.report_document import ReportDocument
from protocol.statuses import StoredReportStatus

_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class Proposal(BaseModel):
    """Another oracle's request to compute and sign an epoch over a set of requests."""

    epoch: int = Field(ge=1, le=2**32 - 1)
    previousRoot: str = Field(pattern=_HASH.pattern)
    requestIds: list[int] = Field(min_length=1, max_length=1_000)


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


def add_attestation_routes(app: FastAPI, attestor: Attestor) -> None:
    """Mount the attestation and publication routes on the oracle's app."""
    proofs = ProofCache()

    def _published(body: ReportDocument, status: StoredReportStatus) -> dict[str, Any]:
        return {"status": status.value, "report": body.as_json(), "leaves": proofs.leaves(body)}

    @app.exception_handler(ProposalRejected)
    async def _declined(_request: Any, error: ProposalRejected):
        return problem(409, error.code, "Proposal declined", error.detail)

    @app.post("/v1/proposals")
    async def post_proposal(proposal: Proposal) -> dict[str, Any]:
        """Compute the proposed epoch from this oracle's own data and return its signature."""
        return await run_in_threadpool(attestor.answer_proposal, proposal.epoch, proposal.previousRoot,
                                       sorted(set(proposal.requestIds)))

    @app.get("/v1/reports/by-digest/{digest}")
    def report_by_digest(digest: str):
        """A report this oracle holds (computed, submitted, final or discarded)."""
        if not _HASH.match(digest):
            return problem(400, "invalid_digest", "Not a 32-byte hex digest", digest)
        found = attestor.store.get(digest.lower())
        if found is None:
            return problem(404, "unknown_report", "No such report here", digest)
        return _published(*found)

    @app.get("/v1/reports/{epoch}")
    def report_of_epoch(epoch: int):
        """The final report of `epoch` with every leaf and proof; its root is the on-chain one."""
        if epoch < 1:
            return problem(400, "invalid_epoch", "Epochs start at 1", str(epoch))
        body = attestor.store.final(epoch)
        if body is None:
            return problem(404, "unknown_report", "No final report of that epoch here", str(epoch))
        return {**body.as_json(), "leaves": proofs.leaves(body)}

    @app.get("/v1/rewards/{account}")
    def rewards(account: str):
        """Cumulative rewards of `account` per token, with proofs, as of the last final report."""
        if not _ADDRESS.match(account):
            return problem(400, "invalid_address", "Not a 20-byte hex address", account)
        body = attestor.store.latest_final()
        if body is None:
            return {"account": account, "epoch": 0, "root": "0x" + "00" * 32, "rewards": []}
        mine = [leaf for leaf in proofs.leaves(body) if leaf["account"].lower() == account.lower()]
        return {"account": account, "epoch": body.epoch, "root": body.rewardsRoot,
                "rewards": [{"token": leaf["token"], "amount": leaf["amount"], "proof": leaf["proof"]}
                            for leaf in mine]}
