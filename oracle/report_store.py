"""Reports this oracle computed, signed or learned, kept in its database.

A report is stored as canonical JSON (amounts as decimal strings, so JavaScript clients keep
precision) under its EIP-712 digest, with a status that only moves forward:
computed -> submitted -> final (or discarded). The cumulative ledger of the last final report is
the starting point of the next epoch, and its leaves with proofs are what the oracle publishes.
"""

from __future__ import annotations

import json
import time
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import BigInteger, Column, Text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from oracle.settlement import EpochSettlement, Ledger
from protocol.merkle import RewardLeaf, RewardsTree
from protocol.report import Penalty, RequestPayout, SettlementReport

STATUSES = ("computed", "submitted", "final", "discarded")


class ReportRecord(SQLModel, table=True):
    """One settlement report, by digest."""

    __tablename__ = "reports"

    digest: str = Field(primary_key=True, max_length=66)
    epoch: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    status: str = Field(max_length=16)
    body: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


def init_reports(engine: Engine) -> None:
    """Create the reports table if it does not exist."""
    ReportRecord.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def report_body(digest: bytes, settlement: EpochSettlement, details: dict[int, list[dict]]) -> dict[str, Any]:
    """The JSON document of a computed report: the signed fields, arrays, ledger and per-device results."""
    report = settlement.report
    return {
        "digest": _hex(digest),
        "epoch": report.epoch,
        "previousRoot": _hex(report.previous_root),
        "rewardsRoot": _hex(report.rewards_root),
        "requestsHash": _hex(report.requests_hash),
        "penaltiesHash": _hex(report.penalties_hash),
        "emission": str(report.emission),
        "payouts": [{"requestId": p.request_id, "payout": str(p.payout)} for p in report.payouts],
        "penalties": [{"account": p.account, "amount": str(p.amount)} for p in report.penalties],
        "ledger": [{"account": leaf.account, "token": leaf.token, "amount": str(leaf.amount)}
                   for leaf in settlement.leaves()],
        "requests": [
            {
                "requestId": r.request_id, "paymentToken": r.payment_token, "escrow": str(r.escrow),
                "payout": str(r.payout), "refund": str(r.refund), "scaledToEscrow": r.scaled_to_escrow,
                "deliveredWh": r.delivered_wh,
                "devices": [
                    {
                        "device": d.device, "owner": d.owner, "committedWh": d.committed_wh,
                        "deliveredWh": d.delivered_wh, "ratioBps": d.ratio_bps, "factorBps": d.factor_bps,
                        "payableWh": d.payable_wh, "payout": str(d.payout), "ownerPayout": str(d.owner_payout),
                        "fee": str(d.fee), "emission": str(d.emission), "penalty": str(d.penalty),
                        "eligible": d.eligible, "reasons": list(d.reasons), "flags": list(d.flags),
                    }
                    for d in r.devices
                ],
                "baselines": details.get(r.request_id, []),
            }
            for r in settlement.requests
        ],
        "emissionScaled": settlement.emission_scaled,
    }


def report_from_body(body: dict[str, Any]) -> SettlementReport:
    """The signed report (with its arrays) described by a stored or fetched body."""
    return SettlementReport(
        epoch=int(body["epoch"]),
        previous_root=bytes.fromhex(body["previousRoot"][2:]),
        rewards_root=bytes.fromhex(body["rewardsRoot"][2:]),
        payouts=tuple(RequestPayout(int(p["requestId"]), int(p["payout"])) for p in body["payouts"]),
        penalties=tuple(Penalty(to_checksum_address(p["account"]), int(p["amount"])) for p in body["penalties"]),
        emission=int(body["emission"]),
    )


def ledger_from_body(body: dict[str, Any]) -> Ledger:
    """The cumulative ledger a report body carries."""
    return {(to_checksum_address(e["account"]), to_checksum_address(e["token"])): int(e["amount"])
            for e in body["ledger"]}


def leaves_with_proofs(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every leaf of the report's tree with its proof (what nodes claim with)."""
    leaves = [RewardLeaf(e["account"], e["token"], int(e["amount"])) for e in body["ledger"]]
    if not leaves:
        return []
    tree = RewardsTree(leaves)
    return [{"account": leaf.account, "token": leaf.token, "amount": str(leaf.amount),
             "proof": [_hex(node) for node in tree.proof(leaf)]} for leaf in leaves]


class ReportStore:
    """Reads and writes report records."""

    def __init__(self, engine: Engine):
        self.engine = engine
        init_reports(engine)

    def save(self, body: dict[str, Any], status: str) -> None:
        """Store a report body (idempotent by digest); an existing record keeps the later status."""
        if status not in STATUSES:
            raise ValueError(f"unknown report status {status!r}")
        with Session(self.engine) as session:
            record = session.get(ReportRecord, body["digest"])
            if record is None:
                session.add(ReportRecord(digest=body["digest"], epoch=int(body["epoch"]), status=status,
                                         body=json.dumps(body, sort_keys=True), updated_at=int(time.time())))
            elif STATUSES.index(status) > STATUSES.index(record.status):
                record.status = status
                record.updated_at = int(time.time())
                session.add(record)
            session.commit()

    def set_status(self, digest: str, status: str) -> None:
        """Move a stored report forward to `status` (no-op if unknown or already past it)."""
        with Session(self.engine) as session:
            record = session.get(ReportRecord, digest)
            if record is not None and STATUSES.index(status) > STATUSES.index(record.status):
                record.status = status
                record.updated_at = int(time.time())
                session.add(record)
                session.commit()

    def get(self, digest: str) -> tuple[dict[str, Any], str] | None:
        """(body, status) of the report with `digest`, or None."""
        with Session(self.engine) as session:
            record = session.get(ReportRecord, digest.lower() if digest.startswith("0X") else digest)
            return (json.loads(record.body), record.status) if record else None

    def final(self, epoch: int) -> dict[str, Any] | None:
        """The final report of `epoch`, or None."""
        with Session(self.engine) as session:
            record = session.exec(select(ReportRecord).where(ReportRecord.epoch == epoch,
                                                             ReportRecord.status == "final")).first()
            return json.loads(record.body) if record else None

    def latest_final(self) -> dict[str, Any] | None:
        """The final report of the highest epoch, or None."""
        with Session(self.engine) as session:
            record = session.exec(select(ReportRecord).where(ReportRecord.status == "final")
                                  .order_by(ReportRecord.epoch.desc())).first()  # type: ignore[attr-defined]
            return json.loads(record.body) if record else None

    def by_epoch(self, epoch: int) -> list[tuple[dict[str, Any], str]]:
        """Every stored report of `epoch` with its status."""
        with Session(self.engine) as session:
            rows = session.exec(select(ReportRecord).where(ReportRecord.epoch == epoch)).all()
            return [(json.loads(r.body), r.status) for r in rows]
