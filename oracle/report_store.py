"""Reports this oracle computed, signed or learned, kept in its database.

A report is the protocol's ReportDocument (protocol/report_document.py), stored as its canonical
JSON under its EIP-712 digest, with a status (protocol.statuses.StoredReportStatus) that only moves
forward: computed -> submitted -> final (or discarded). The cumulative ledger of the last final
report is the starting point of the next epoch, and its leaves with proofs are what the oracle
publishes.

Every write goes through `oracle.db.write_transaction` (never a read-then-`commit()` session), so a
report stored while the ingest writes cannot meet SQLite's `database is locked` (see oracle/db.py).
"""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, Column, Text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, func, select

from oracle import db
from oracle.settlement import EpochSettlement
from protocol.report_document import ReportDocument
from protocol.statuses import StoredReportStatus


class ReportRecord(SQLModel, table=True):
    """One settlement report, by digest."""

    __tablename__ = "reports"

    digest: str = Field(primary_key=True, max_length=66)
    epoch: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    status: str = Field(max_length=16)
    body: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))


def init_reports(engine: Engine) -> None:
    """Create the reports table if it does not exist (in a write transaction: see oracle.db)."""
    with db.write_transaction(engine, "schema") as session:
        ReportRecord.__table__.create(session.connection(), checkfirst=True)  # type: ignore[attr-defined]


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def report_document(digest: bytes, settlement: EpochSettlement, details: dict[int, list[dict]]) -> ReportDocument:
    """The document of a computed report: the signed fields, arrays, ledger and per-device results."""
    report = settlement.report
    return ReportDocument.model_validate({
        "digest": _hex(digest),
        "epoch": report.epoch,
        "previousRoot": _hex(report.previous_root),
        "rewardsRoot": _hex(report.rewards_root),
        "requestsHash": _hex(report.requests_hash),
        "penaltiesHash": _hex(report.penalties_hash),
        "emission": report.emission,
        "payouts": [{"requestId": p.request_id, "payout": p.payout} for p in report.payouts],
        "penalties": [{"account": p.account, "amount": p.amount} for p in report.penalties],
        "ledger": [{"account": leaf.account, "token": leaf.token, "amount": leaf.amount}
                   for leaf in settlement.leaves()],
        "requests": [
            {
                "requestId": r.request_id, "paymentToken": r.payment_token, "escrow": r.escrow,
                "payout": r.payout, "refund": r.refund, "scaledToEscrow": r.scaled_to_escrow,
                "deliveredWh": r.delivered_wh,
                "devices": [
                    {
                        "device": d.device, "owner": d.owner, "committedWh": d.committed_wh,
                        "deliveredWh": d.delivered_wh, "ratioBps": d.ratio_bps, "factorBps": d.factor_bps,
                        "payableWh": d.payable_wh, "payout": d.payout, "ownerPayout": d.owner_payout,
                        "fee": d.fee, "emission": d.emission, "penalty": d.penalty,
                        "eligible": d.eligible, "reasons": list(d.reasons), "flags": list(d.flags),
                    }
                    for d in r.devices
                ],
                "baselines": details.get(r.request_id, []),
                "verification": settlement.verifications.get(r.request_id),
            }
            for r in settlement.requests
        ],
        "emissionScaled": settlement.emission_scaled,
    })


class ReportStore:
    """Reads and writes report records."""

    def __init__(self, engine: Engine):
        self.engine = engine
        init_reports(engine)

    def save(self, document: ReportDocument, status: StoredReportStatus | str) -> None:
        """Store a report (idempotent by digest); an existing record keeps the later status."""
        status = StoredReportStatus(status)
        with db.write_transaction(self.engine, f"report:{document.digest}") as session:
            record = session.get(ReportRecord, document.digest)
            if record is None:
                session.add(ReportRecord(digest=document.digest, epoch=document.epoch, status=status.value,
                                         body=document.canonical_json(), updated_at=int(time.time())))
            elif status.rank > StoredReportStatus(record.status).rank:
                record.status = status.value
                record.updated_at = int(time.time())
                session.add(record)

    def set_status(self, digest: str, status: StoredReportStatus | str) -> None:
        """Move a stored report forward to `status` (no-op if unknown or already past it)."""
        status = StoredReportStatus(status)
        with db.write_transaction(self.engine, f"report:{digest}") as session:
            record = session.get(ReportRecord, digest)
            if record is not None and status.rank > StoredReportStatus(record.status).rank:
                record.status = status.value
                record.updated_at = int(time.time())
                session.add(record)

    def counts(self) -> dict[str, int]:
        """How many stored reports are in each state (every StoredReportStatus, zero included)."""
        with Session(self.engine) as session:
            rows = session.exec(select(ReportRecord.status, func.count()).group_by(ReportRecord.status)).all()
        found = {status: int(count) for status, count in rows}
        return {status.value: found.get(status.value, 0) for status in StoredReportStatus}

    def get(self, digest: str) -> tuple[ReportDocument, StoredReportStatus] | None:
        """(document, status) of the report with `digest`, or None."""
        with Session(self.engine) as session:
            record = session.get(ReportRecord, digest.lower() if digest.startswith("0X") else digest)
            return (ReportDocument.parse(record.body), StoredReportStatus(record.status)) if record else None

    def final(self, epoch: int) -> ReportDocument | None:
        """The final report of `epoch`, or None."""
        with Session(self.engine) as session:
            record = session.exec(select(ReportRecord).where(ReportRecord.epoch == epoch,
                                                             ReportRecord.status == StoredReportStatus.FINAL.value)
                                  ).first()
            return ReportDocument.parse(record.body) if record else None

    def latest_final(self) -> ReportDocument | None:
        """The final report of the highest epoch, or None."""
        with Session(self.engine) as session:
            record = session.exec(select(ReportRecord).where(ReportRecord.status == StoredReportStatus.FINAL.value)
                                  .order_by(ReportRecord.epoch.desc())).first()  # type: ignore[attr-defined]
            return ReportDocument.parse(record.body) if record else None

    def by_epoch(self, epoch: int) -> list[tuple[ReportDocument, StoredReportStatus]]:
        """Every stored report of `epoch` with its status."""
        with Session(self.engine) as session:
            rows = session.exec(select(ReportRecord).where(ReportRecord.epoch == epoch)).all()
            return [(ReportDocument.parse(r.body), StoredReportStatus(r.status)) for r in rows]
