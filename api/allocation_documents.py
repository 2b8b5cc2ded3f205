"""Allocation documents: fetched from the oracles over HTTP, checked against the chain, stored.

After the indexer has seen a request's AllocationPosted, it asks the oracles (those the OracleHub
lists, or the configured URLs) for GET /v1/allocations/{requestId}. An answer is stored only if

    its document matches the posted allocation (protocol.allocation_document: the root recomputed
      from its leaves, acceptedW, the clearing price and the availability price are the chain's), and
    its EIP-712 Allocation signature recovers to the `signer` it names, an oracle the mirror lists
      as active.

So the per-site acceptances a buyer's frontend shows are the ones the chain's root commits to,
whichever oracle served them. A document that fails is logged and the next oracle is tried; a
request whose document no oracle serves yet is retried on a later poll (with back-off).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
from eth_utils import to_checksum_address
from pydantic import ValidationError
from sqlalchemy import and_, insert, select
from sqlalchemy.engine import Engine

from api.models import api_metadata
from protocol import eip712
from protocol.allocation_document import AllocationDocument, AllocationMismatch

log = logging.getLogger(__name__)

REQUESTS = api_metadata.tables["requests"]
ALLOCATIONS = api_metadata.tables["allocation_documents"]
ALLOCATION_UNITS = api_metadata.tables["allocation_units"]
ORACLES = api_metadata.tables["oracles"]
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # an allocation of 200k acceptances is about 30 MB of JSON


def allocation_lines(document: AllocationDocument) -> list[dict[str, Any]]:
    """allocation_units rows of a verified document: one per accepted device (its watts summed, should
    a document list it twice) and one per held-out control site; addresses checksummed."""
    lines: dict[str, dict[str, Any]] = {}
    for entry in document.accepted:
        device = to_checksum_address(entry.device)
        line = lines.setdefault(device, {"device": device, "site": to_checksum_address(entry.site),
                                         "group_name": "treatment", "watts": 0})
        line["watts"] += entry.watts
    for site in document.controlSites:
        site = to_checksum_address(site)
        lines.setdefault(site, {"device": site, "site": site, "group_name": "control", "watts": 0})
    return list(lines.values())


class AllocationRejected(ValueError):
    """An oracle's answer does not match the posted allocation, or its signature does not check."""


def verify_answer(answer: Any, request_id: int, root: str, accepted_w: int, clearing_price: int,
                  availability_price: int, chain_id: int, hub: str,
                  oracles: set[str]) -> tuple[AllocationDocument, str, str]:
    """The document, signature and signer of an oracle's answer, if it matches the posted allocation
    and is signed by a listed oracle (module docstring); AllocationRejected says why not."""
    if not isinstance(answer, dict) or not {"allocation", "signature", "signer"} <= set(answer):
        raise AllocationRejected("the answer is not {allocation, signature, signer}")
    try:
        document = AllocationDocument.model_validate(answer["allocation"])
        document.verify(request_id, root, accepted_w, clearing_price, availability_price)
        signature = bytes.fromhex(str(answer["signature"]).removeprefix("0x"))
    except (ValidationError, AllocationMismatch, ValueError) as error:
        raise AllocationRejected(str(error).splitlines()[0]) from None
    message = {"requestId": request_id, "root": bytes.fromhex(root[2:]), "acceptedW": accepted_w,
               "clearingPrice": clearing_price, "availabilityPrice": availability_price}
    try:
        signer = eip712.recover("Allocation", message, signature, chain_id, hub)
    except (ValueError, TypeError) as error:
        raise AllocationRejected(f"the signature does not recover: {error}") from None
    if signer.lower() != str(answer["signer"]).lower():
        raise AllocationRejected(f"the signature recovers to {signer}, not the named signer {answer['signer']}")
    if signer.lower() not in oracles:
        raise AllocationRejected(f"the signer {signer} is not an active oracle")
    return document, "0x" + signature.hex(), signer


class AllocationFetcher:
    """Finds posted allocations without a stored document and asks each oracle for it, with back-off."""

    def __init__(self, engine: Engine, chain_id: int, hub: str, timeout: float = 10.0, retry_seconds: float = 5.0):
        self.engine = engine
        self.chain_id = chain_id
        self.hub = hub
        self.client = httpx.Client(timeout=timeout)
        self.retry_seconds = retry_seconds
        self._next_try: dict[tuple[int, str], float] = {}

    def close(self) -> None:
        """Release the HTTP client."""
        self.client.close()

    def missing(self) -> list[dict[str, Any]]:
        """Requests whose posted allocation has no stored document yet."""
        joined = REQUESTS.outerjoin(ALLOCATIONS, and_(ALLOCATIONS.c.request_id == REQUESTS.c.id,
                                                      ALLOCATIONS.c.root == REQUESTS.c.allocation_root))
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(REQUESTS.c.id, REQUESTS.c.allocation_root, REQUESTS.c.accepted_w, REQUESTS.c.clearing_price,
                       REQUESTS.c.availability_price)
                .select_from(joined)
                .where(REQUESTS.c.allocation_root.is_not(None), ALLOCATIONS.c.request_id.is_(None))
                .order_by(REQUESTS.c.id)
            ).mappings().all()
        return [dict(row) for row in rows]

    def fetch_missing(self, oracle_urls: list[str], budget_seconds: float = 5.0) -> list[int]:
        """Fetch, check and store missing allocation documents; returns the request ids stored.

        Stops starting new fetches after `budget_seconds`, so an unreachable oracle never holds the
        indexer's polling back for long."""
        stored: list[int] = []
        started = time.monotonic()
        oracles = self._active_oracles()
        for row in self.missing():
            now = time.monotonic()
            if now - started > budget_seconds:
                break
            key = (int(row["id"]), row["allocation_root"])
            if self._next_try.get(key, 0) > now:
                continue
            if self.fetch_one(row, oracle_urls, oracles):
                stored.append(key[0])
                self._next_try.pop(key, None)
            else:
                self._next_try[key] = now + self.retry_seconds
        return stored

    def fetch_one(self, row: dict[str, Any], oracle_urls: list[str], oracles: set[str]) -> bool:
        """Try each oracle in turn for request `row`'s allocation; store the first that checks."""
        request_id, root = int(row["id"]), row["allocation_root"]
        for base in oracle_urls:
            url = f"{base}/v1/allocations/{request_id}"
            try:
                response = self.client.get(url)
            except httpx.HTTPError as error:
                log.info("oracle %s unreachable for allocation %s: %s", base, request_id, error)
                continue
            if response.status_code != 200:
                continue
            if len(response.content) > MAX_ANSWER_BYTES:
                log.warning("rejected allocation %s from %s: answer larger than %d bytes", request_id, url,
                            MAX_ANSWER_BYTES)
                continue
            try:
                document, signature, signer = verify_answer(
                    response.json(), request_id, root, int(row["accepted_w"]), int(row["clearing_price"]),
                    int(row["availability_price"] or 0), self.chain_id, self.hub, oracles)
            except (AllocationRejected, ValueError) as error:
                log.warning("rejected allocation %s from %s: %s", request_id, url, error)
                continue
            self._store(request_id, root, document, signature, signer, url)
            log.info("stored allocation of request %s (%d acceptances) from %s", request_id,
                     len(document.accepted), url)
            return True
        return False

    def _active_oracles(self) -> set[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(ORACLES.c.address).where(ORACLES.c.active.is_(True))).all()
        return {row.address.lower() for row in rows}

    def _store(self, request_id: int, root: str, document: AllocationDocument, signature: str, signer: str,
               source: str) -> None:
        with self.engine.begin() as connection:
            exists = connection.execute(select(ALLOCATIONS.c.request_id).where(
                ALLOCATIONS.c.request_id == request_id, ALLOCATIONS.c.root == root)).first()
            if exists is None:
                connection.execute(insert(ALLOCATIONS).values(
                    request_id=request_id, root=root, body=json.dumps(document.as_json(), separators=(",", ":")),
                    signature=signature, signer=signer, source=source, fetched_at=int(time.time())))
                lines = allocation_lines(document)
                if lines:
                    connection.execute(insert(ALLOCATION_UNITS), [{"request_id": request_id, "root": root, **line}
                                                                  for line in lines])
