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

Each decision is one INFO line (a report proposed, signed for a peer, submitted, finalized) and is
counted in `metrics` (oracle.metrics: the hub's epoch and pending status, peers' replication lag
and errors, the last report's ineligible devices by reason).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

import httpx
from eth_account import Account
from sqlalchemy.engine import Engine
from pydantic import ValidationError

from oracle.chain_view import ChainView, RequestStatus
from oracle.bonds import bond_book_from_view
from oracle.accepted import AllocationUnknown, overlaps
from oracle.site_settlement import HoldoutSeedUnknown
from oracle.epoch import HISTORY_DAYS, OracleEconomics, compute_epoch, event_window
from oracle.ingest import Ingestor
from oracle.logs import RepeatFilter
from oracle.metrics import OracleMetrics
from oracle.peer_sync import pull_range
from oracle.report_store import ReportStore, report_document
from oracle.settlement import Ledger
from protocol.chain import ChainError, Transactor
from protocol.fast_verify import recover_digest
from protocol.holdout import GateSeeds
from protocol.proposals import sign_proposal
from protocol.report import MAX_REPORT_ITEMS
from protocol.report_document import ReportDocument, ReportMismatch
from protocol.statuses import ReportStatus, StoredReportStatus
from protocol.units import SECONDS_PER_DAY

log = logging.getLogger("negawatt.oracle.attestation")
repeats = RepeatFilter(log)  # decisions retried every tick: INFO once, DEBUG while unchanged


class TickOutcome(str, Enum):
    """What a tick did when it neither proposed nor submitted (see ProposeOutcome, SubmitOutcome)."""

    WAITING_FOR_CHALLENGE_WINDOW = "waiting_for_challenge_window"
    REPORT_CHALLENGED = "report_challenged"
    NOTHING_TO_SETTLE = "nothing_to_settle"
    NOT_MY_TURN = "not_my_turn"
    FINALIZED = "finalized"
    FINALIZE_REFUSED = "finalize_refused"
    PENDING_REPORT_UNKNOWN = "pending_report_unknown"


class ProposeOutcome(str, Enum):
    """Why a proposal stopped before submitting (a proposal that submits ends in a SubmitOutcome)."""

    CANNOT_PROPOSE = "cannot_propose"
    TOO_FEW_SIGNATURES = "too_few_signatures"


class SubmitOutcome(str, Enum):
    """The result of sending a signed report to the OracleHub."""

    SUBMITTED = "submitted"
    CHAIN_MOVED_ON = "chain_moved_on"
    REFUSED = "refused"


Outcome = TickOutcome | ProposeOutcome | SubmitOutcome


class ProposalRejected(Exception):
    """A proposal this oracle will not sign; `code` says why (sent back as a 409 problem)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


# A request this close to its settlement timeout is not put in a report (audit L-1).
EXPIRY_MARGIN_SECONDS = 3_600


@dataclass(frozen=True)
class ChainState:
    """The OracleHub state an attestation decision depends on."""

    epoch: int
    root: bytes
    pending_digest: bytes
    pending_status: ReportStatus
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
        block_meters: int | None = None,
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
        self.staking = manifest.contract(web3, "Staking")
        self.market = manifest.contract(web3, "FlexMarket")
        self.seeds = GateSeeds(web3)
        self._settlement_timeout = 0
        self._timeout_read_at: float | None = None
        self.tx = Transactor(web3, key, abis=[entry.abi for entry in manifest.contracts.values()])
        self.data_grace = data_grace_seconds
        self.stagger = stagger_seconds
        self.block_meters = block_meters  # compute_epoch's block of meters (None: each request loaded whole)
        self.http = httpx.Client(timeout=http_timeout)
        self.clock = clock
        # A cleared request's verified allocation (oracle.clearing_service.Clearer.settled_allocation,
        # wired by the service); without it a posted allocation cannot be verified (AllocationUnknown).
        self.allocation_reader: Callable[[Any], Any] = lambda request: None
        self.metrics = OracleMetrics()  # the service passes its own, served at /metrics

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
            pending_status=ReportStatus.from_number(status),
            pending_deadline=deadline,
            threshold=hub.threshold().call(),
            emission_budget=hub.emissionBudget().call(),
            oracles=tuple(zip(addresses, urls)),
            timestamp=self.web3.eth.get_block("latest")["timestamp"],
        )

    def tick(self) -> Outcome:
        """One step of the protocol; returns what it did (an enum member, for logs and tests)."""
        self.chain_view.sync()
        state = self.chain_state()
        self.metrics.chain_state(state.epoch, state.pending_status)
        self.reconcile(state)
        if state.pending_status is ReportStatus.PENDING:
            if max(state.timestamp, int(self.clock())) >= state.pending_deadline:
                return self.finalize(state)
            return TickOutcome.WAITING_FOR_CHALLENGE_WINDOW
        if state.pending_status is ReportStatus.CHALLENGED:
            return TickOutcome.REPORT_CHALLENGED  # waiting for the guardian
        now = int(self.clock())
        candidates = self.candidates(now)
        log.debug("tick at %d (chain %d): %d requests known, candidates %s", now, state.timestamp,
                  len(self.chain_view.requests()), candidates)
        if not candidates:
            return TickOutcome.NOTHING_TO_SETTLE
        turn = self.turn_time(state, candidates)
        if now < turn:
            log.debug("not my turn before %d", turn)
            return TickOutcome.NOT_MY_TURN
        return self.propose(state, candidates)

    def candidates(self, now: int) -> list[int]:
        """Open requests whose window ended at least `data_grace` seconds ago, oldest first, at most
        the MAX_REPORT_ITEMS one report may carry (the rest go in the next epochs). A request within
        EXPIRY_MARGIN_SECONDS of its settlement timeout is left out: anyone may `expire` it then, and
        one expired request would make the whole submitReport revert (audit L-1); it is refunded."""
        timeout = self.settlement_timeout()
        return sorted(r.request_id for r in self.chain_view.requests().values()
                      if r.status == RequestStatus.OPEN and r.end + self.data_grace <= now
                      and r.end + timeout > now + EXPIRY_MARGIN_SECONDS)[:MAX_REPORT_ITEMS]

    def settlement_timeout(self) -> int:
        """FlexMarket.settlementTimeout, read at most once a minute (an admin may change it)."""
        now = time.monotonic()
        if self._timeout_read_at is None or now - self._timeout_read_at > 60:
            self._settlement_timeout = int(self.market.functions.settlementTimeout().call())
            self._timeout_read_at = now
        return self._settlement_timeout

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
                self.store.set_status(body.digest, StoredReportStatus.FINAL)
                log.info("epoch %d is final on-chain (report %s)", state.epoch, body.digest)
                return
        for _address, url in self._peers(state):
            body = self._document(self._fetch(f"{url}/v1/reports/{state.epoch}"), url)
            if body is not None and self._valid_final(body, state):
                self.store.save(body, StoredReportStatus.FINAL)
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
            if request.end + self.settlement_timeout() <= max(now, state.timestamp) + EXPIRY_MARGIN_SECONDS:
                raise ProposalRejected("request_near_expiry",
                                       f"request {request_id} may expire before the report lands (L-1)")
            requests.append(request)
        previous_root, previous_ledger = self.previous(state)
        self.pull_missing_data(state, requests)
        try:
            settlement, details = compute_epoch(
                self.engine, requests, self.chain_view.devices(), self.economics, state.epoch + 1, previous_root,
                previous_ledger, state.emission_budget,
                bond_reader=lambda owners: bond_book_from_view(self.chain_view, owners),
                seed_reader=lambda request: self.seeds.seed(request.gate_time), devices_at=self.chain_view.devices_at,
                allocation_reader=self.allocation_reader, block_meters=self.block_meters,
                overlapping=[r for r in self.chain_view.requests().values() if r.allocation is not None
                             and r.request_id not in request_ids and any(overlaps(r, q) for q in requests)])
        except HoldoutSeedUnknown as error:
            raise ProposalRejected("holdout_seed_unknown", str(error)) from None
        except AllocationUnknown as error:
            raise ProposalRejected("allocation_unknown", str(error)) from None
        digest = settlement.report.digest(self.manifest.chainId, self.hub.address)
        body = report_document(digest, settlement, details)
        self.store.save(body, StoredReportStatus.COMPUTED)
        devices = [device for request in body.requests for device in request.devices]
        self.metrics.report_computed(device.reasons for device in devices if not device.eligible)
        log.info("computed report %s for epoch %d over requests %s: %d of %d devices eligible", body.digest,
                 body.epoch, sorted(set(request_ids)), sum(1 for d in devices if d.eligible), len(devices))
        return body

    def sign(self, body: ReportDocument) -> bytes:
        """This oracle's signature of a report body it computed."""
        return body.settlement_report().sign(self.key, self.manifest.chainId, self.hub.address)

    def answer_proposal(self, epoch: int, previous_root: str, request_ids: list[int]) -> dict[str, Any]:
        """A follower's answer: its own digest and signature for the proposed epoch and requests."""
        self.chain_view.sync()
        state = self.chain_state()
        self.reconcile(state)
        if state.pending_status is not ReportStatus.NONE:
            raise ProposalRejected("report_pending", "a report is already pending on-chain")
        if epoch != state.epoch + 1:
            raise ProposalRejected("wrong_epoch", f"the next epoch is {state.epoch + 1}, not {epoch}")
        if previous_root.lower() != "0x" + state.root.hex():
            raise ProposalRejected("wrong_previous_root", "the proposal does not build on the current root")
        if not request_ids:
            raise ProposalRejected("no_requests", "a proposal settles at least one request")
        body = self.compute(state, request_ids)
        signature = self.sign(body)
        log.info("signed report %s of epoch %d for the proposer", body.digest, epoch)
        return {"oracle": self.address, "digest": body.digest, "signature": "0x" + signature.hex()}

    def propose(self, state: ChainState, request_ids: list[int]) -> ProposeOutcome | SubmitOutcome:
        """Compute, collect `threshold` matching signatures from the oracles, and submit."""
        try:
            body = self.compute(state, request_ids)
        except ProposalRejected as error:
            repeats.info("propose", "cannot propose epoch %d: %s", state.epoch + 1, error.detail)
            return ProposeOutcome.CANNOT_PROPOSE
        digest = bytes.fromhex(body.digest[2:])
        signatures = {self.address: self.sign(body)}
        log.info("proposing report %s for epoch %d over requests %s: %d more signatures needed, %d peers asked",
                 body.digest, state.epoch + 1, request_ids, max(0, state.threshold - 1), len(self._peers(state)))
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
            repeats.info("propose", "only %d of %d signatures for epoch %d", len(signatures), state.threshold,
                         state.epoch + 1)
            return ProposeOutcome.TOO_FEW_SIGNATURES
        return self.submit(body, list(signatures.values()))

    def submit(self, body: ReportDocument, signatures: list[bytes]) -> SubmitOutcome:
        """Send the report with its signatures, unless the chain moved on meanwhile."""
        state = self.chain_state()
        if state.pending_status is not ReportStatus.NONE or state.epoch + 1 != body.epoch:
            log.info("the chain moved on; not submitting report %s", body.digest)
            return SubmitOutcome.CHAIN_MOVED_ON
        report = body.settlement_report()
        try:
            receipt = self.tx.send(self.hub.functions.submitReport(
                report.as_tuple(), report.payout_tuples(), report.penalty_tuples(), signatures))
        except ChainError as error:
            log.info("report %s not submitted: %s", body.digest, error.error or error)
            return SubmitOutcome.REFUSED
        self.store.set_status(body.digest, StoredReportStatus.SUBMITTED)
        log.info("submitted report %s for epoch %d in block %d", body.digest, body.epoch, receipt.block_number)
        return SubmitOutcome.SUBMITTED

    def finalize(self, state: ChainState) -> TickOutcome:
        """Finalize the pending report once its window has passed (any oracle may; the first wins)."""
        digest = "0x" + state.pending_digest.hex()
        known = self.store.get(digest)
        body = known[0] if known else None
        if body is None:
            for _address, url in self._peers(state):
                fetched = self._document(self._fetch(f"{url}/v1/reports/by-digest/{digest}"), url)
                if fetched is not None and self._digest_of(fetched) == digest:
                    body = fetched
                    self.store.save(body, StoredReportStatus.SUBMITTED)
                    break
        if body is None:
            repeats.info("finalize", "pending report %s is unknown here", digest)
            return TickOutcome.PENDING_REPORT_UNKNOWN
        report = body.settlement_report()
        try:
            self.tx.send(self.hub.functions.finalize(report.as_tuple(), report.payout_tuples(),
                                                     report.penalty_tuples()))
        except ChainError as error:
            repeats.info("finalize", "finalize of report %s refused: %s", digest, error.error or error)
            return TickOutcome.FINALIZE_REFUSED
        self.store.set_status(digest, StoredReportStatus.FINAL)
        log.info("finalized epoch %d (report %s)", body.epoch, digest)
        return TickOutcome.FINALIZED

    # ------------------------------------------------------------------ data from peers

    def pull_missing_data(self, state: ChainState, requests: list[Any]) -> int:
        """Fetch device-signed batches this oracle lacks from its peers: one time range per peer (the
        requests' windows with their history, widened to whole days so the pulls of one day share a
        resumable cursor), paged, every signature verified, stored by the ingest (oracle.peer_sync).
        Per peer, how many it held that were missing here is the replication lag in the metrics."""
        if not requests:
            return 0
        windows = [event_window(request, self.economics.params.interval_seconds) for request in requests]
        from_ts = max(0, min(start for start, _ in windows) - HISTORY_DAYS * SECONDS_PER_DAY)
        to_ts = max(end for _, end in windows)
        from_ts, to_ts = from_ts // SECONDS_PER_DAY * SECONDS_PER_DAY, -(-to_ts // SECONDS_PER_DAY) * SECONDS_PER_DAY
        added = 0
        for _address, url in self._peers(state):
            result = pull_range(self.engine, self.ingestor, url, from_ts, to_ts, self.http, clock=self.clock)
            if result.stopped is None:
                self.metrics.peer_answered(url)
            else:
                self.metrics.peer_failed(url)
            missing = result.received - result.skipped - result.replays
            self.metrics.peer_pull(url, missing, result.stored)
            added += result.stored
        if added:
            log.info("pulled %d missing meter batches from peers", added)
        return added

    # ------------------------------------------------------------------ helpers

    def _peers(self, state: ChainState) -> list[tuple[str, str]]:
        return [(a, u.rstrip("/")) for a, u in state.oracles if a != self.address and u]

    def _fetch(self, url: str, params: dict | None = None) -> Any:
        peer = _peer_of(url)
        try:
            response = self.http.get(url, params=params)
        except httpx.HTTPError as error:
            repeats.info(("fetch", peer), "peer %s unreachable: %s", peer, error)
            self.metrics.peer_failed(peer)
            return None
        self.metrics.peer_answered(peer)
        repeats.clear(("fetch", peer))
        if response.status_code != 200:
            if response.status_code != 404:  # a report the peer does not have (yet) is an answer, not an error
                self.metrics.peer_failed(peer)
            return None
        try:
            return response.json()
        except ValueError:
            log.warning("peer %s answered %s with something that is not JSON", peer, url)
            self.metrics.peer_failed(peer)
            return None

    def _post(self, url: str, payload: dict) -> dict | None:
        """POST a proposal to a peer, signed by this oracle's key now (protocol.proposals); its JSON answer."""
        headers = sign_proposal(self.key, self.manifest.chainId, self.hub.address, payload["epoch"],
                                payload["previousRoot"], payload["requestIds"], int(self.clock()))
        peer = _peer_of(url)
        try:
            response = self.http.post(url, json=payload, headers=headers)
        except httpx.HTTPError as error:
            repeats.info(("post", peer), "peer %s unreachable: %s", peer, error)
            self.metrics.peer_failed(peer)
            return None
        self.metrics.peer_answered(peer)
        if response.status_code != 200:
            repeats.info(("post", peer), "peer %s declined %s: %s %s", peer, httpx.URL(url).path,
                         response.status_code, response.text[:300])
            self.metrics.peer_failed(peer)
            return None
        repeats.clear(("post", peer))
        try:
            return response.json()
        except ValueError:
            log.warning("peer %s answered the proposal with something that is not JSON", peer)
            return None

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


def _peer_of(url: str) -> str:
    """The peer's base URL (scheme://host:port) of a call to it: the label of its metrics."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode()}"
