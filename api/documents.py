"""Oracle report documents: fetched from the oracles over HTTP, verified against the chain, stored.

A document is accepted only if its digest is the report's, the Merkle root this module recomputes
from its ledger (protocol.merkle) equals the rewardsRoot the OracleHub recorded, and its payouts
hash to the on-chain requestsHash. Proofs are computed here, never copied from the oracle.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from eth_utils import to_checksum_address
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from api.models import api_metadata
from protocol.merkle import RewardLeaf, RewardsTree
from protocol.report import ZERO_ROOT, RequestPayout, SettlementReport

log = logging.getLogger(__name__)

REPORTS = api_metadata.tables["reports"]
DOCUMENTS = api_metadata.tables["report_documents"]
REPORT_REQUESTS = api_metadata.tables["report_requests"]
LEAVES = api_metadata.tables["reward_leaves"]

DEVICE_FIELDS = ("device", "owner", "committedWh", "deliveredWh", "ratioBps", "factorBps", "payableWh", "payout",
                 "ownerPayout", "fee", "emission", "penalty", "eligible", "reasons", "flags")


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


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def verify_document(body: dict[str, Any], digest: str, rewards_root: str, requests_hash: str) -> VerifiedDocument:
    """Check an oracle's report body against the on-chain digest, root and requestsHash."""
    try:
        if str(body.get("digest", "")).lower() != digest.lower():
            raise DocumentRejected(f"document digest {body.get('digest')!r} is not {digest}")
        entries = body.get("ledger")
        if entries is None:
            entries = body.get("leaves", [])
        leaves = [RewardLeaf(to_checksum_address(e["account"]), to_checksum_address(e["token"]), int(e["amount"]))
                  for e in entries]
        if leaves:
            tree = RewardsTree(leaves)
            root = tree.root
        else:
            tree, root = None, ZERO_ROOT
        if _hex(root) != rewards_root.lower():
            raise DocumentRejected(f"recomputed root {_hex(root)} differs from the on-chain root {rewards_root}")
        payouts = tuple(RequestPayout(int(p["requestId"]), int(p["payout"])) for p in body.get("payouts", []))
        computed = SettlementReport(epoch=0, previous_root=ZERO_ROOT, rewards_root=ZERO_ROOT, payouts=payouts)
        if _hex(computed.requests_hash) != requests_hash.lower():
            raise DocumentRejected("the document's payouts do not hash to the on-chain requestsHash")
        requests = []
        for r in body.get("requests", []):
            devices = [{name: d.get(name) for name in DEVICE_FIELDS} for d in r.get("devices", [])]
            requests.append({"request_id": int(r["requestId"]), "delivered_wh": int(r.get("deliveredWh", 0)),
                             "payout": str(int(r.get("payout", 0))), "refund": str(int(r.get("refund", 0))),
                             "devices": json.dumps(devices, sort_keys=True)})
        proofs = [{"account": leaf.account, "token": leaf.token, "amount": str(leaf.amount),
                   "proof": json.dumps([_hex(node) for node in tree.proof(leaf)])} for leaf in leaves] if tree else []
        return VerifiedDocument(digest.lower(), int(body["epoch"]), rewards_root.lower(), proofs, requests)
    except DocumentRejected:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DocumentRejected(f"malformed report document: {error!r}") from None


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
                    payload = response.json()
                    body = payload.get("report", payload) if isinstance(payload, dict) else None
                    if not isinstance(body, dict):
                        raise DocumentRejected("the answer is not a JSON object")
                    document = verify_document(body, digest, report["rewards_root"], report["requests_hash"])
                except (DocumentRejected, ValueError) as error:
                    log.warning("rejected report %s from %s: %s", digest, url, error)
                    continue
                if store_document(self.engine, document, url):
                    log.info("stored verified report %s (epoch %s, %d leaves) from %s", digest, document.epoch,
                             len(document.leaves), url)
                return True
        return False
