"""oracle.attestation, directly: one Attestor on anvil with the negawatt contracts, its chain state
read from the real OracleHub, and its decisions driven by a chosen `ChainState`, a fake chain view
and fake peers. Checks what each step returns (the outcome enums) and what it does or refuses to
do: wait for the challenge window, respect the rotation, drop signatures it cannot use, stop
short of the threshold, not submit once the chain has moved on, learn a final report."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from eth_account import Account

from oracle import db
from oracle.attestation import (
    Attestor,
    ChainState,
    ProposalRejected,
    ProposeOutcome,
    SubmitOutcome,
    TickOutcome,
)
from oracle.baselines import HIGH_X_OF_Y, BaselineSpec
from oracle.chain_view import RequestInfo, RequestStatus
from oracle.epoch import OracleEconomics, request_input
from oracle.report_store import report_document
from oracle.settlement import SettlementParams, settle_epoch
from protocol.statuses import ReportStatus, StoredReportStatus

INTERVAL = 900
DAY = 86_400
END = 1_700_000_000 // DAY * DAY + 40 * DAY + 19 * 3_600
GRACE, STAGGER = 60, 20
TOKEN = "0x" + "bb" * 20
PEER_KEYS = [Account.create() for _ in range(3)]


class FakeView:
    """The chain view an Attestor reads requests and devices from."""

    def __init__(self, *requests: RequestInfo):
        self.by_id = {r.request_id: r for r in requests}
        self.synced = 0

    def sync(self) -> None:
        self.synced += 1

    def requests(self) -> dict[int, RequestInfo]:
        return dict(self.by_id)

    def request(self, request_id: int) -> RequestInfo | None:
        return self.by_id.get(request_id)

    def devices(self) -> dict:
        return {}


def flex_request(request_id: int = 1, end: int = END, status: RequestStatus = RequestStatus.OPEN) -> RequestInfo:
    return RequestInfo(request_id=request_id, zone=1, start=end - 3_600, end=end, target_w=4_000,
                       price_per_kwh=250_000, payment_token=TOKEN, buyer="0x" + "b0" * 20, max_budget=10**9,
                       status=status)


class Clock:
    def __init__(self, now: int):
        self.now = now

    def __call__(self) -> float:
        return self.now


ECONOMICS = OracleEconomics(
    params=SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20,
                            interval_seconds=INTERVAL),
    baseline=BaselineSpec(HIGH_X_OF_Y),
)


@pytest.fixture
def attestor(shared_devnet, tmp_path):
    engine = db.make_engine(str(tmp_path / "oracle.sqlite"))
    db.init_db(engine)
    view = FakeView(flex_request())
    out = Attestor(web3=shared_devnet.web3(), manifest=shared_devnet.manifest(), key=shared_devnet.keys[5],
                   engine=engine, chain_view=view, ingestor=None, economics=ECONOMICS,  # type: ignore[arg-type]
                   data_grace_seconds=GRACE, stagger_seconds=STAGGER, clock=Clock(END + GRACE))
    yield out
    out.http.close()
    engine.dispose()


def state_of(attestor: Attestor, **changes) -> ChainState:
    """A chain state with no pending report at epoch 0, this oracle first in the rotation."""
    base = ChainState(epoch=0, root=bytes(32), pending_digest=bytes(32), pending_status=ReportStatus.NONE,
                      pending_deadline=0, threshold=2, emission_budget=10**24,
                      oracles=((PEER_KEYS[0].address, "http://peer-0"), (attestor.address, "http://me"),
                               (PEER_KEYS[1].address, "http://peer-1")),
                      timestamp=END + GRACE)
    return replace(base, **changes)


def document(attestor: Attestor, epoch: int = 1):
    """A real report document over one request with one (ineligible) device, digest for this hub."""
    device = "0x" + "11" * 20
    request_in, records = request_input(flex_request(), [SimpleNamespace(device=device, watts=1_000)], {},
                                        {}, ECONOMICS)
    settlement = settle_epoch(epoch, bytes(32), {}, [request_in], ECONOMICS.params, emission_budget=10**24)
    digest = settlement.report.digest(attestor.manifest.chainId, attestor.hub.address)
    return report_document(digest, settlement, {1: records})


def peer_answer(attestor: Attestor, body, key) -> dict:
    signature = body.settlement_report().sign(key.key, attestor.manifest.chainId, attestor.hub.address)
    return {"oracle": key.address, "digest": body.digest, "signature": "0x" + signature.hex()}


def forbid(*_args, **_kwargs):
    raise AssertionError("must not be called")


# ---------------------------------------------------------------- the chain as it is


def test_the_fresh_hub_has_no_epoch_and_no_pending_report(attestor):
    state = attestor.chain_state()
    assert state.epoch == 0 and state.root == bytes(32)
    assert state.pending_status is ReportStatus.NONE
    assert state.threshold >= 1 and state.timestamp > 0


# ---------------------------------------------------------------- tick


def test_a_pending_report_waits_for_its_challenge_window(attestor, monkeypatch):
    monkeypatch.setattr(attestor, "chain_state", lambda: state_of(
        attestor, pending_status=ReportStatus.PENDING, pending_deadline=END + GRACE + 1))
    monkeypatch.setattr(attestor, "finalize", forbid)
    monkeypatch.setattr(attestor, "propose", forbid)
    assert attestor.tick() is TickOutcome.WAITING_FOR_CHALLENGE_WINDOW
    assert attestor.chain_view.synced == 1


def test_a_pending_report_is_finalized_once_its_window_has_passed(attestor, monkeypatch):
    monkeypatch.setattr(attestor, "chain_state", lambda: state_of(
        attestor, pending_status=ReportStatus.PENDING, pending_deadline=END + GRACE))
    monkeypatch.setattr(attestor, "finalize", lambda state: TickOutcome.FINALIZED)
    assert attestor.tick() is TickOutcome.FINALIZED


def test_a_challenged_report_blocks_new_proposals(attestor, monkeypatch):
    monkeypatch.setattr(attestor, "chain_state", lambda: state_of(attestor, pending_status=ReportStatus.CHALLENGED))
    monkeypatch.setattr(attestor, "propose", forbid)
    assert attestor.tick() is TickOutcome.REPORT_CHALLENGED


def test_nothing_is_settled_before_the_data_grace_period_ends(attestor, monkeypatch):
    monkeypatch.setattr(attestor, "chain_state", lambda: state_of(attestor))
    monkeypatch.setattr(attestor, "propose", forbid)
    attestor.clock.now = END + GRACE - 1
    assert attestor.candidates(attestor.clock.now) == []
    assert attestor.tick() is TickOutcome.NOTHING_TO_SETTLE
    assert attestor.candidates(END + GRACE) == [1]


def test_only_open_requests_are_candidates(attestor):
    attestor.chain_view.by_id[2] = flex_request(2, status=RequestStatus.CANCELLED)
    attestor.chain_view.by_id[3] = flex_request(3, end=END - 900)
    assert attestor.candidates(END + GRACE) == [1, 3]


def test_the_rotation_starts_at_the_next_epoch_and_staggers_each_place(attestor):
    state = state_of(attestor)  # me at index 1; epoch 0 -> the rotation starts at index 1
    assert attestor.turn_time(state, [1]) == END + GRACE
    assert attestor.turn_time(replace(state, epoch=1), [1]) == END + GRACE + 2 * STAGGER
    assert attestor.turn_time(replace(state, epoch=2), [1]) == END + GRACE + STAGGER
    outsider = replace(state, oracles=state.oracles[:1])
    assert attestor.turn_time(outsider, [1]) == 2**63


def test_a_later_oracle_in_the_rotation_waits_its_turn(attestor, monkeypatch):
    monkeypatch.setattr(attestor, "chain_state", lambda: state_of(attestor, epoch=2))  # I am second
    proposed = []
    monkeypatch.setattr(attestor, "propose", lambda state, ids: proposed.append(ids) or SubmitOutcome.SUBMITTED)
    attestor.clock.now = END + GRACE + STAGGER - 1
    assert attestor.tick() is TickOutcome.NOT_MY_TURN and proposed == []
    attestor.clock.now = END + GRACE + STAGGER
    assert attestor.tick() is SubmitOutcome.SUBMITTED and proposed == [[1]]


# ---------------------------------------------------------------- propose


def test_a_proposal_this_oracle_cannot_compute_is_not_sent(attestor, monkeypatch):
    def reject(state, ids):
        raise ProposalRejected("previous_report_unknown", "no final report")

    monkeypatch.setattr(attestor, "compute", reject)
    monkeypatch.setattr(attestor, "_post", forbid)
    assert attestor.propose(state_of(attestor), [1]) is ProposeOutcome.CANNOT_PROPOSE


def test_too_few_matching_signatures_are_not_submitted(attestor, monkeypatch):
    body = document(attestor)
    other = document(attestor, epoch=2)  # a different digest
    answers = {"http://peer-0/v1/proposals": peer_answer(attestor, other, PEER_KEYS[0]),
               # the right digest, but signed by a key that is not this peer's
               "http://peer-1/v1/proposals": peer_answer(attestor, body, PEER_KEYS[2])}
    monkeypatch.setattr(attestor, "compute", lambda state, ids: body)
    monkeypatch.setattr(attestor, "_post", lambda url, payload: answers[url])
    monkeypatch.setattr(attestor, "submit", forbid)
    assert attestor.propose(state_of(attestor), [1]) is ProposeOutcome.TOO_FEW_SIGNATURES


def test_an_unreachable_peer_leaves_the_proposal_short(attestor, monkeypatch):
    body = document(attestor)
    monkeypatch.setattr(attestor, "compute", lambda state, ids: body)
    monkeypatch.setattr(attestor, "_post", lambda url, payload: None)
    monkeypatch.setattr(attestor, "submit", forbid)
    assert attestor.propose(state_of(attestor), [1]) is ProposeOutcome.TOO_FEW_SIGNATURES


def test_the_threshold_of_matching_signatures_is_submitted_and_no_more_asked(attestor, monkeypatch):
    body = document(attestor)
    asked, submitted = [], []

    def post(url, payload):
        asked.append((url, payload))
        return peer_answer(attestor, body, PEER_KEYS[0])

    monkeypatch.setattr(attestor, "compute", lambda state, ids: body)
    monkeypatch.setattr(attestor, "_post", post)
    monkeypatch.setattr(attestor, "submit", lambda b, sigs: submitted.append((b, sigs)) or SubmitOutcome.SUBMITTED)
    assert attestor.propose(state_of(attestor), [1]) is SubmitOutcome.SUBMITTED
    assert [url for url, _ in asked] == ["http://peer-0/v1/proposals"]  # threshold 2 reached after one peer
    assert asked[0][1] == {"epoch": 1, "previousRoot": "0x" + "00" * 32, "requestIds": [1]}
    (sent, signatures), = submitted
    assert sent is body and len(signatures) == 2 and signatures[0] == attestor.sign(body)


# ---------------------------------------------------------------- submit


def test_a_report_is_not_submitted_when_one_is_already_pending_on_chain(attestor, monkeypatch):
    body = document(attestor)
    monkeypatch.setattr(attestor, "chain_state", lambda: state_of(attestor, pending_status=ReportStatus.PENDING))
    monkeypatch.setattr(attestor.tx, "send", forbid)
    assert attestor.submit(body, [attestor.sign(body)]) is SubmitOutcome.CHAIN_MOVED_ON


def test_a_report_is_not_submitted_when_its_epoch_is_already_settled(attestor, monkeypatch):
    body = document(attestor)
    monkeypatch.setattr(attestor, "chain_state", lambda: state_of(attestor, epoch=1))
    monkeypatch.setattr(attestor.tx, "send", forbid)
    assert attestor.submit(body, [attestor.sign(body)]) is SubmitOutcome.CHAIN_MOVED_ON


def test_a_report_the_hub_refuses_stays_computed(attestor):
    body = document(attestor)
    attestor.store.save(body, StoredReportStatus.COMPUTED)
    # the real hub: this key is not a bonded oracle, so the submission reverts
    assert attestor.submit(body, [attestor.sign(body)]) is SubmitOutcome.REFUSED
    assert attestor.store.get(body.digest)[1] is StoredReportStatus.COMPUTED


# ---------------------------------------------------------------- finalize and reconcile


def test_an_unknown_pending_report_is_not_finalized(attestor, monkeypatch):
    monkeypatch.setattr(attestor, "_fetch", lambda url, params=None: None)  # no peer has it
    monkeypatch.setattr(attestor.tx, "send", forbid)
    state = state_of(attestor, pending_status=ReportStatus.PENDING, pending_digest=b"\x42" * 32)
    assert attestor.finalize(state) is TickOutcome.PENDING_REPORT_UNKNOWN


def test_a_finalize_the_hub_refuses_does_not_mark_the_report_final(attestor):
    body = document(attestor)
    attestor.store.save(body, StoredReportStatus.SUBMITTED)
    state = state_of(attestor, pending_status=ReportStatus.PENDING, pending_digest=bytes.fromhex(body.digest[2:]))
    assert attestor.finalize(state) is TickOutcome.FINALIZE_REFUSED  # nothing is pending on the real hub
    assert attestor.store.get(body.digest)[1] is StoredReportStatus.SUBMITTED


def test_a_stored_report_whose_root_the_chain_installed_becomes_final(attestor, monkeypatch):
    body = document(attestor)
    attestor.store.save(body, StoredReportStatus.COMPUTED)
    monkeypatch.setattr(attestor, "_fetch", forbid)  # known locally: no peer is asked
    attestor.reconcile(state_of(attestor, epoch=1, root=bytes.fromhex(body.rewardsRoot[2:])))
    assert attestor.store.get(body.digest)[1] is StoredReportStatus.FINAL
    assert attestor.store.final(1).digest == body.digest


def test_a_report_with_another_root_is_not_taken_as_final(attestor, monkeypatch):
    body = document(attestor)
    attestor.store.save(body, StoredReportStatus.COMPUTED)
    monkeypatch.setattr(attestor, "_fetch", lambda url, params=None: None)
    attestor.reconcile(state_of(attestor, epoch=1, root=b"\x99" * 32))
    assert attestor.store.get(body.digest)[1] is StoredReportStatus.COMPUTED
    assert attestor.store.final(1) is None


# ---------------------------------------------------------------- answering a proposal


@pytest.mark.parametrize(("changes", "args", "code"), [
    ({"pending_status": ReportStatus.PENDING}, (1, "0x" + "00" * 32, [1]), "report_pending"),
    ({}, (2, "0x" + "00" * 32, [1]), "wrong_epoch"),
    ({}, (1, "0x" + "11" * 32, [1]), "wrong_previous_root"),
    ({}, (1, "0x" + "00" * 32, []), "no_requests"),
])
def test_a_follower_refuses_a_proposal_that_does_not_fit_the_chain(attestor, monkeypatch, changes, args, code):
    monkeypatch.setattr(attestor, "chain_state", lambda: state_of(attestor, **changes))
    monkeypatch.setattr(attestor, "compute", forbid)
    with pytest.raises(ProposalRejected) as error:
        attestor.answer_proposal(*args)
    assert error.value.code == code


@pytest.mark.parametrize(("requests", "code"), [
    ([9], "unknown_request"),
    ([2], "request_not_open"),
    ([3], "request_not_ended"),
])
def test_a_report_is_computed_only_over_open_ended_requests(attestor, requests, code):
    attestor.chain_view.by_id[2] = flex_request(2, status=RequestStatus.SETTLED)
    attestor.chain_view.by_id[3] = flex_request(3, end=END + GRACE + 1)
    with pytest.raises(ProposalRejected) as error:
        attestor.compute(state_of(attestor), requests)
    assert error.value.code == code


def test_l1_a_request_near_its_settlement_timeout_is_left_out(attestor, monkeypatch):
    """The attack: anyone expires one overdue request of a report in the mempool, and the whole submitReport
    reverts. Requests within EXPIRY_MARGIN_SECONDS of their timeout are no longer proposed nor signed."""
    from oracle.attestation import EXPIRY_MARGIN_SECONDS, ProposalRejected

    timeout = attestor.settlement_timeout()
    assert timeout == attestor.market.functions.settlementTimeout().call() > 0
    cutoff = END + timeout - EXPIRY_MARGIN_SECONDS  # from this time on, request 1 is too close to expiry
    assert attestor.candidates(cutoff - 1) == [1]
    assert attestor.candidates(cutoff) == []
    attestor.clock.now = cutoff
    monkeypatch.setattr(attestor, "previous", forbid)
    try:
        attestor.compute(state_of(attestor, timestamp=cutoff), [1])
    except ProposalRejected as refused:
        assert refused.code == "request_near_expiry"
    else:
        raise AssertionError("a request about to expire was computed")
