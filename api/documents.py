"""Oracle report documents: fetched from the oracles over HTTP, verified against the chain, stored.

A document is the protocol's ReportDocument. It is accepted only if its digest is the report's, the
Merkle root recomputed from its ledger equals the rewardsRoot the OracleHub recorded, and its
payouts hash to the on-chain requestsHash (ReportDocument.verify). Proofs are computed here, never
copied from the oracle. A per-site request's `verification` (not covered by the root) is read by
api.verification; one the API cannot read is left out and the document is stored without it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_utils import to_checksum_address
from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from api.capability import capability_rows
from api.models import api_metadata
from api.verification import TREATMENT, UnreadableVerification, read_verification
from protocol.report_document import ReportDocument, ReportMismatch, RequestOutcome

log = logging.getLogger(__name__)

REPORTS = api_metadata.tables["reports"]
DOCUMENTS = api_metadata.tables["report_documents"]
REPORT_REQUESTS = api_metadata.tables["report_requests"]
LEAVES = api_metadata.tables["reward_leaves"]
REPORT_SITES = api_metadata.tables["report_sites"]
REPORT_UNITS = api_metadata.tables["report_units"]
REPORT_SERIES = api_metadata.tables["report_series"]
CAPABILITY = api_metadata.tables["capability_records"]


class DocumentRejected(ValueError):
    """A fetched document does not match the on-chain report; the message says how."""


@dataclass(frozen=True)
class VerifiedDocument:
    """A report document whose root and payouts match the chain, with proofs computed here."""

    digest: str
    epoch: int
    rewards_root: str
    leaves: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    sites: list[dict[str, Any]] = field(default_factory=list)  # rows of report_sites (per-site requests)
    units: list[dict[str, Any]] = field(default_factory=list)  # rows of report_units (every request)
    series: list[dict[str, Any]] = field(default_factory=list)  # rows of report_series (every request)
    capability: list[dict[str, Any]] = field(default_factory=list)  # rows of capability_records (tests)


def _unit_rows(outcome: RequestOutcome) -> list[dict[str, Any]]:
    """report_units rows: each settlement unit's outcome, addresses checksummed for owner lookups."""
    return [{"request_id": outcome.requestId, "unit": to_checksum_address(d.device),
             "owner": to_checksum_address(d.owner), "committed_wh": d.committedWh, "delivered_wh": d.deliveredWh,
             "owner_payout": str(d.ownerPayout), "eligible": d.eligible, "reasons": json.dumps(d.reasons)}
            for d in outcome.devices]


def _series_rows(outcome: RequestOutcome, groups: dict[str, str]) -> list[dict[str, Any]]:
    """report_series rows: the baseline records summed per interval over each holdout group (a unit
    without a group, as in a request settled per device, counts as dispatched). Records of unequal
    length (a unit with missing intervals) add into the leading intervals they have."""
    sums: dict[str, tuple[list[int], list[int], list[int]]] = {}
    for record in outcome.baselines:
        group = groups.get(record.device.lower(), TREATMENT)
        baseline, actual, count = sums.setdefault(group, ([], [], [0]))
        for values, into in ((record.baseline_wh, baseline), (record.actual_wh, actual)):
            if len(into) < len(values):
                into.extend([0] * (len(values) - len(into)))
            for t, wh in enumerate(values):
                into[t] += wh
        count[0] += 1
    return [{"request_id": outcome.requestId, "group_name": group, "units": count[0],
             "baseline_wh": json.dumps(baseline), "actual_wh": json.dumps(actual)}
            for group, (baseline, actual, count) in sorted(sums.items())]


def verify_document(body: dict[str, Any] | ReportDocument, digest: str, rewards_root: str,
                    requests_hash: str) -> VerifiedDocument:
    """Check an oracle's report document against the on-chain digest, root and requestsHash."""
    try:
        document = body if isinstance(body, ReportDocument) else ReportDocument.parse(body)
        document.verify(rewards_root, digest=digest, requests_hash=requests_hash)
    except ReportMismatch as error:
        raise DocumentRejected(str(error)) from None
    except (ValidationError, ValueError, TypeError) as error:
        raise DocumentRejected(f"malformed report document: {str(error)[:500]}") from None
    requests, sites, units, series, capability = [], [], [], [], []
    for r in document.requests:
        capability.extend(capability_rows(r.requestId, r.verification))
        summary = None
        groups: dict[str, str] = {}
        if r.verification is not None:
            try:
                read = read_verification(r.verification)
            except UnreadableVerification as error:
                log.warning("report %s, request %d: verification left out: %s", digest, r.requestId, error)
            else:
                summary = json.dumps(read.summary, sort_keys=True)
                sites.extend({"request_id": r.requestId, **row} for row in read.sites)
                groups = {row["site"].lower(): row["group_name"] for row in read.sites}
        units.extend(_unit_rows(r))
        series.extend(_series_rows(r, groups))
        requests.append({"request_id": r.requestId, "delivered_wh": r.deliveredWh, "payout": str(r.payout),
                         "refund": str(r.refund),
                         "devices": json.dumps([d.model_dump(mode="json") for d in r.devices], sort_keys=True),
                         "verification": summary})
    proofs = [{"account": p.account, "token": p.token, "amount": str(p.amount), "proof": json.dumps(p.proof)}
              for p in document.proofs()]
    return VerifiedDocument(digest.lower(), document.epoch, rewards_root.lower(), proofs, requests, sites, units,
                            series, capability)


def store_document(engine: Engine, document: VerifiedDocument, source: str) -> bool:
    """Store a verified document (idempotent by digest); returns False if it was already there."""
    with engine.begin() as connection:
        if connection.execute(select(DOCUMENTS.c.digest).where(DOCUMENTS.c.digest == document.digest)).first():
            return False
        connection.execute(insert(DOCUMENTS).values(digest=document.digest, epoch=document.epoch,
                                                    rewards_root=document.rewards_root, source=source,
                                                    leaves=len(document.leaves), fetched_at=int(time.time())))
        if document.requests:
            connection.execute(insert(REPORT_REQUESTS), [{"digest": document.digest, **r} for r in document.requests])
        if document.sites:
            connection.execute(insert(REPORT_SITES), [{"digest": document.digest, **s} for s in document.sites])
        for table, rows in ((REPORT_UNITS, document.units), (REPORT_SERIES, document.series),
                            (CAPABILITY, document.capability)):
            if rows:
                connection.execute(insert(table), [{"digest": document.digest, **row} for row in rows])
        if document.leaves:
            connection.execute(insert(LEAVES), [{"digest": document.digest, **leaf} for leaf in document.leaves])
    return True


class DocumentFetcher:
    """Finds reports without a verified document and asks each oracle for it, with back-off per digest."""

    def __init__(self, engine: Engine, timeout: float = 10.0, retry_seconds: float = 5.0):
        self.engine = engine
        self.client = httpx.Client(timeout=timeout)
        self.retry_seconds = retry_seconds
        self._next_try: dict[str, float] = {}

    def close(self) -> None:
        """Release the HTTP client."""
        self.client.close()

    def missing(self) -> list[dict[str, Any]]:
        """Reports (not discarded) whose document is not stored yet."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(REPORTS.c.digest, REPORTS.c.epoch, REPORTS.c.status, REPORTS.c.rewards_root,
                       REPORTS.c.requests_hash)
                .select_from(REPORTS.outerjoin(DOCUMENTS, DOCUMENTS.c.digest == REPORTS.c.digest))
                .where(DOCUMENTS.c.digest.is_(None), REPORTS.c.status != "discarded")
                .order_by(REPORTS.c.epoch)
            ).mappings().all()
        return [dict(row) for row in rows]

    def fetch_missing(self, oracle_urls: list[str], budget_seconds: float = 5.0) -> list[str]:
        """Fetch, verify and store missing documents that some oracle serves; returns stored digests.

        Stops starting new fetches after `budget_seconds`, so an unreachable oracle never holds the
        indexer's polling (and readiness) back for long; the rest is tried on the next poll."""
        stored = []
        now = time.monotonic()
        for report in self.missing():
            if time.monotonic() - now > budget_seconds:
                break
            digest = report["digest"]
            if self._next_try.get(digest, 0) > now:
                continue
            if self.fetch_one(report, oracle_urls):
                stored.append(digest)
                self._next_try.pop(digest, None)
            else:
                self._next_try[digest] = now + self.retry_seconds
        return stored

    def fetch_one(self, report: dict[str, Any], oracle_urls: list[str]) -> bool:
        """Try each oracle in turn for `report`'s document; store the first one that verifies."""
        digest = report["digest"]
        for base in oracle_urls:
            for url in (f"{base}/v1/reports/by-digest/{digest}", f"{base}/v1/reports/{report['epoch']}"):
                try:
                    response = self.client.get(url)
                except httpx.HTTPError as error:
                    log.info("oracle %s unreachable for report %s: %s", base, digest, error)
                    break
                if response.status_code != 200:
                    continue
                try:
                    body = ReportDocument.from_published(response.json())
                    document = verify_document(body, digest, report["rewards_root"], report["requests_hash"])
                except (DocumentRejected, ValidationError, ValueError) as error:
                    log.warning("rejected report %s from %s: %s", digest, url, error)
                    continue
                if store_document(self.engine, document, url):
                    log.info("stored verified report %s (epoch %s, %d leaves) from %s", digest, document.epoch,
                             len(document.leaves), url)
                return True
        return False
