"""Agreeing a settlement with the other oracles and getting it final on-chain.

Each tick: follow the chain; if a report is pending and its challenge window has passed, finalize
it; otherwise, once requests have ended (plus a grace period for late meter data), the oracle
whose turn it is proposes the next epoch: it computes the report, asks every other oracle (at the
URL each published in the OracleHub) to compute the same epoch over the same requests and sign
it, and submits as soon as it holds `threshold` signatures of the identical digest. Turns rotate
with the epoch, and each later oracle in the rotation waits `stagger` seconds longer, so one oracle
being down only delays settlement.

Nothing here trusts a peer: a follower recomputes the report from its own verified data (after
pulling, from its peers, device-signed meter batches it is missing) and signs only its own result;
a proposer keeps only signatures over its own digest; a report learned from a peer is checked
against its digest and the on-chain root. A restarted oracle reads the chain before acting, so it
never submits twice (the contract would refuse a second pending report anyway).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx
from eth_account import Account
from sqlalchemy.engine import Engine
from pydantic import ValidationError

from oracle import db
from oracle.chain_view import ChainView, RequestStatus
from oracle.epoch import HISTORY_DAYS, SECONDS_PER_DAY, OracleEconomics, compute_epoch, event_window
from oracle.ingest import Ingestor, Rejected
from oracle.report_store import ReportStore, report_document
from oracle.settlement import Ledger
from protocol.chain import ChainError, Transactor
from protocol.fast_verify import recover_digest
from protocol.messages import decode_batch
from protocol.report_document import ReportDocument, ReportMismatch

log = logging.getLogger("negawatt.oracle.attestation")

PENDING, CHALLENGED = 1, 2


class ProposalRejected(Exception):
    """A proposal this oracle will not sign; `code` says why (sent back as a 409 problem)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ChainState:
    """The OracleHub state an attestation decision depends on."""

    epoch: int
    root: bytes
    pending_digest: bytes
    pending_status: int
    pending_deadline: int
    threshold: int
    emission_budget: int
    oracles: tuple[tuple[str, str], ...]
    timestamp: int


class Attestor:
    """One oracle's side of the k-of-n settlement protocol."""

    def __init__(
        self,
        *,
        web3: Any,
        manifest: Any,
        key: bytes,
        engine: Engine,
        chain_view: ChainView,
        ingestor: Ingestor,
        economics: OracleEconomics,
        data_grace_seconds: int = 60,
        stagger_seconds: int = 20,
        http_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ):
        self.web3 = web3
        self.manifest = manifest
        self.key = key
        self.address = Account.from_key(key).address
        self.engine = engine
        self.chain_view = chain_view
        self.ingestor = ingestor
        self.economics = economics
        self.store = ReportStore(engine)
        self.hub = manifest.contract(web3, "OracleHub")
        self.tx = Transactor(web3, key, abis=[entry.abi for entry in manifest.contracts.values()])
        self.data_grace = data_grace_seconds
        self.stagger = stagger_seconds
        self.http = httpx.Client(timeout=http_timeout)
        self.clock = clock

    # ------------------------------------------------------------------ chain

    def chain_state(self) -> ChainState:
        """Read the hub's epoch, root, pending report, threshold, budget and oracle set."""
        hub = self.hub.functions
        digest, status, deadline, _signers, _challenger = hub.pendingReport().call()
        addresses, urls = hub.oracles().call()
        return ChainState(
            epoch=hub.currentEpoch().call(),
            root=bytes(hub.currentRoot().call()),
            pending_digest=bytes(digest),
            pending_status=status,
            pending_deadline=deadline,
            threshold=hub.threshold().call(),
            emission_budget=hub.emissionBudget().call(),
            oracles=tuple(zip(addresses, urls)),
            timestamp=self.web3.eth.get_block("latest")["timestamp"],
        )

    def tick(self) -> str:
        """One step of the protocol; returns what it did (for logs and tests)."""
        self.chain_view.sync()
        state = self.chain_state()
        self.reconcile(state)
        if state.pending_status == PENDING:
            if max(state.timestamp, int(self.clock())) >= state.pending_deadline:
                return self.finalize(state)
            return "waiting for the challenge window"
        if state.pending_status == CHALLENGED:
            return "report challenged; waiting for the guardian"
        now = int(self.clock())
        candidates = self.candidates(now)
        log.debug("tick at %d (chain %d): %d requests known, candidates %s", now, state.timestamp,
                  len(self.chain_view.requests()), candidates)
        if not candidates:
            return "nothing to settle"
        turn = self.turn_time(state, candidates)
        if now < turn:
            return f"not my turn before {turn}"
        return self.propose(state, candidates)

    def candidates(self, now: int) -> list[int]:
        """Open requests whose window ended at least `data_grace` seconds ago."""
        return sorted(r.request_id for r in self.chain_view.requests().values()
                      if r.status == RequestStatus.OPEN and r.end + self.data_grace <= now)

    def turn_time(self, state: ChainState, request_ids: list[int]) -> int:
        """When this oracle may propose: the rotation starts at epoch % n, `stagger` s per place."""
        addresses = [a for a, _ in state.oracles]
        if self.address not in addresses:
            return 2**63
        n = len(addresses)
        rank = (addresses.index(self.address) - (state.epoch + 1)) % n
        ended = max(self.chain_view.request(i).end for i in request_ids)
        return ended + self.data_grace + rank * self.stagger

    def reconcile(self, state: ChainState) -> None:
        """Mark the report the chain finalized as final here (fetching it from a peer if needed)."""
        if state.epoch == 0 or self.store.final(state.epoch) is not None:
            return
        for body, _status in self.store.by_epoch(state.epoch):
            if body.rewardsRoot == "0x" + state.root.hex():
                self.store.set_status(body.digest, "final")
                log.info("epoch %d is final on-chain (report %s)", state.epoch, body.digest)
                return
        for _address, url in self._peers(state):
            body = self._document(self._fetch(f"{url}/v1/reports/{state.epoch}"), url)
            if body is not None and self._valid_final(body, state):
                self.store.save(body, "final")
                log.info("learned final report of epoch %d from %s", state.epoch, url)
                return
        log.warning("epoch %d is final on-chain but no report with its root is known yet", state.epoch)

    def previous(self, state: ChainState) -> tuple[bytes, Ledger]:
        """Root and cumulative ledger the next report builds on."""
        if state.epoch == 0:
            return bytes(32), {}
        body = self.store.final(state.epoch)
        if body is None:
            raise ProposalRejected("previous_report_unknown", f"the final report of epoch {state.epoch} is unknown")
        return state.root, body.ledger_totals()

    # ------------------------------------------------------------------ computing and signing

    def compute(self, state: ChainState, request_ids: list[int]) -> ReportDocument:
        """This oracle's report for the next epoch over `request_ids` (stored as computed)."""
        now = int(self.clock())
        requests = []
        for request_id in sorted(set(request_ids)):
            request = self.chain_view.request(request_id)
            if request is None:
                raise ProposalRejected("unknown_request", f"request {request_id} is unknown")
            if request.status != RequestStatus.OPEN:
                raise ProposalRejected("request_not_open", f"request {request_id} is {request.status.value}")
            if max(now, state.timestamp) < request.end:
                raise ProposalRejected("request_not_ended", f"request {request_id} ends at {request.end}")
            requests.append(request)
        previous_root, previous_ledger = self.previous(state)
        self.pull_missing_data(state, requests)
        settlement, details = compute_epoch(self.engine, requests, self.chain_view.devices(), self.economics,
                                            state.epoch + 1, previous_root, previous_ledger, state.emission_budget)
        digest = settlement.report.digest(self.manifest.chainId, self.hub.address)
        body = report_document(digest, settlement, details)
        self.store.save(body, "computed")
        return body

    def sign(self, body: ReportDocument) -> bytes:
        """This oracle's signature of a report body it computed."""
        return body.settlement_report().sign(self.key, self.manifest.chainId, self.hub.address)

    def answer_proposal(self, epoch: int, previous_root: str, request_ids: list[int]) -> dict[str, Any]:
        """A follower's answer: its own digest and signature for the proposed epoch and requests."""
        self.chain_view.sync()
        state = self.chain_state()
        self.reconcile(state)
        if state.pending_status != 0:
            raise ProposalRejected("report_pending", "a report is already pending on-chain")
        if epoch != state.epoch + 1:
            raise ProposalRejected("wrong_epoch", f"the next epoch is {state.epoch + 1}, not {epoch}")
        if previous_root.lower() != "0x" + state.root.hex():
            raise ProposalRejected("wrong_previous_root", "the proposal does not build on the current root")
        if not request_ids:
            raise ProposalRejected("no_requests", "a proposal settles at least one request")
        body = self.compute(state, request_ids)
        return {"oracle": self.address, "digest": body.digest, "signature": "0x" + self.sign(body).hex()}

    def propose(self, state: ChainState, request_ids: list[int]) -> str:
        """Compute, collect `threshold` matching signatures from the oracles, and submit."""
        try:
            body = self.compute(state, request_ids)
        except ProposalRejected as error:
            return f"cannot propose: {error.detail}"
        digest = bytes.fromhex(body.digest[2:])
        signatures = {self.address: self.sign(body)}
        for address, url in self._peers(state):
            if len(signatures) >= state.threshold:
                break
            answer = self._post(f"{url}/v1/proposals", {
                "epoch": state.epoch + 1, "previousRoot": "0x" + state.root.hex(), "requestIds": request_ids})
            if not answer:
                continue
            if answer.get("digest") != body.digest:
                log.warning("oracle %s computed %s for epoch %d, we computed %s", address, answer.get("digest"),
                            state.epoch + 1, body.digest)
                continue
            try:
                signature = bytes.fromhex(str(answer["signature"])[2:])
                if recover_digest(digest, signature) == address:
                    signatures[address] = signature
            except (KeyError, ValueError) as error:
                log.warning("oracle %s sent an unusable signature: %s", address, error)
        if len(signatures) < state.threshold:
            return f"only {len(signatures)} of {state.threshold} signatures for epoch {state.epoch + 1}"
        return self.submit(body, list(signatures.values()))

    def submit(self, body: ReportDocument, signatures: list[bytes]) -> str:
        """Send the report with its signatures, unless the chain moved on meanwhile."""
        state = self.chain_state()
        if state.pending_status != 0 or state.epoch + 1 != body.epoch:
            return "the chain moved on; not submitting"
        report = body.settlement_report()
        try:
            receipt = self.tx.send(self.hub.functions.submitReport(
                report.as_tuple(), report.payout_tuples(), report.penalty_tuples(), signatures))
        except ChainError as error:
            log.info("report %s not submitted: %s", body.digest, error)
            return f"submission refused: {error.error or error}"
        self.store.set_status(body.digest, "submitted")
        log.info("submitted report %s for epoch %d in block %d", body.digest, body.epoch, receipt.block_number)
        return f"submitted epoch {body.epoch}"

    def finalize(self, state: ChainState) -> str:
        """Finalize the pending report once its window has passed (any oracle may; the first wins)."""
        digest = "0x" + state.pending_digest.hex()
        known = self.store.get(digest)
        body = known[0] if known else None
        if body is None:
            for _address, url in self._peers(state):
                fetched = self._document(self._fetch(f"{url}/v1/reports/by-digest/{digest}"), url)
                if fetched is not None and self._digest_of(fetched) == digest:
                    body = fetched
                    self.store.save(body, "submitted")
                    break
        if body is None:
            return f"pending report {digest} is unknown here"
        report = body.settlement_report()
        try:
            self.tx.send(self.hub.functions.finalize(report.as_tuple(), report.payout_tuples(),
                                                     report.penalty_tuples()))
        except ChainError as error:
            return f"finalize refused: {error.error or error}"
        self.store.set_status(digest, "final")
        log.info("finalized epoch %d (report %s)", body.epoch, digest)
        return f"finalized epoch {body.epoch}"

    # ------------------------------------------------------------------ data from peers

    def pull_missing_data(self, state: ChainState, requests: list[Any]) -> int:
        """Fetch device-signed batches this oracle lacks from its peers; each is verified on ingest."""
        added = 0
        for request in requests:
            devices = [c.device for c in db.commitments_of_request(self.engine, request.request_id)]
            start, end = event_window(request, self.economics.params.interval_seconds)
            window = (start - HISTORY_DAYS * SECONDS_PER_DAY, end)
            for device in devices:
                have = {(b.sequence) for b in db.batches_of_device(self.engine, device, *window, limit=100_000)}
                for _address, url in self._peers(state):
                    listing = self._fetch(f"{url}/v1/meter-batches", {"device": device, "from": window[0],
                                                                      "to": window[1], "limit": 10_000})
                    for item in listing if isinstance(listing, list) else []:
                        if item.get("sequence") in have:
                            continue
                        try:
                            batch = decode_batch(item, ignore_extra=True)
                            self.ingestor.accept_batch(batch, int(self.clock()))
                            have.add(batch.sequence)
                            added += 1
                        except (Rejected, ValidationError, ValueError, TypeError) as error:
                            log.warning("batch from %s not taken: %s", url, error)
        if added:
            log.info("pulled %d missing meter batches from peers", added)
        return added

    # ------------------------------------------------------------------ helpers

    def _peers(self, state: ChainState) -> list[tuple[str, str]]:
        return [(a, u.rstrip("/")) for a, u in state.oracles if a != self.address and u]

    def _fetch(self, url: str, params: dict | None = None) -> Any:
        try:
            response = self.http.get(url, params=params)
        except httpx.HTTPError as error:
            log.info("peer %s unreachable: %s", url, error)
            return None
        return response.json() if response.status_code == 200 else None

    def _post(self, url: str, payload: dict) -> dict | None:
        try:
            response = self.http.post(url, json=payload)
        except httpx.HTTPError as error:
            log.info("peer %s unreachable: %s", url, error)
            return None
        if response.status_code != 200:
            log.info("peer %s declined: %s %s", url, response.status_code, response.text[:300])
            return None
        return response.json()

    def _digest_of(self, body: ReportDocument) -> str:
        return "0x" + body.settlement_report().digest(self.manifest.chainId, self.hub.address).hex()

    @staticmethod
    def _document(answer: Any, url: str) -> ReportDocument | None:
        """The report document in a peer's answer, or None (logged) if there is none or it is malformed."""
        if not answer:
            return None
        try:
            return ReportDocument.from_published(answer)
        except (ValidationError, ValueError) as error:
            log.warning("report from %s not taken: %s", url, str(error)[:300])
            return None

    def _valid_final(self, body: ReportDocument, state: ChainState) -> bool:
        """A peer's report is taken as final only if it is the chain's root and its leaves rebuild it."""
        try:
            body.verify(state.root, digest=self._digest_of(body))
        except ReportMismatch:
            return False
        return body.epoch == state.epoch and body.rewardsRoot == "0x" + state.root.hex()
