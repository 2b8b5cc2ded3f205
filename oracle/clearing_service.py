"""The oracle's part in clearing a request (issue 14): agree the offer set, clear it, sign, post.

For a request the market clears (protocol.requests.FlexRequest.clears), still open, without an
allocation on chain, once its gate closed `sync_delay_seconds` ago and before its start:

 1. Offer set. The oracle pulls every commitment its peers hold for the request
    (GET /v1/commitments) and ingests each as received at the time the peer says it was: the
    device's signature, registry, zone, capacity and ceiling checks all apply, and one received at
    or after the gate closure is refused. Honest oracles therefore agree on the union of what any
    of them received before the gate.
 2. Clearing. protocol.clearing.clear over those offers (less those of sites an overlapping request
    that cleared first already accepted: oracle.accepted), with the holdout of the gate block's seed
    (protocol.holdout), the sites' delivery records and the zone's margin (oracle.reliability).
    The result is computed once and kept (the key `allocation:{request id}`): it is what this
    oracle signs, publishes at GET /v1/allocations/{id}, and later settles with.
 Capability caps: each site's offers are cut to its tested capability (protocol.capability: the
    latest passed record's testedW, else the probationary cap), from the records of the finalized
    reports (oracle.capability_records), before the walk (protocol.clearing `site_caps`), on a network
    that runs capability tests (its manifest names a test budget account; else nothing is capped).
    A capability test (a request of the network's test budget account) is never cleared: it has
    no offers, and its tested sites come from the draw (protocol.capability).
 3. Posting. The oracle collects the peers' published signatures over the same (root, accepted W,
    clearing price, availability price); with `threshold` of them (its own included) it sends OracleHub.postAllocation.
    Every oracle may post; the first transaction wins and the others are refused (AlreadyAllocated)
    before sending, by gas estimation. An allocation with nothing accepted is not posted: the
    request then pays nothing and the buyer may still cancel it.

What a colluding minority (fewer than `threshold` oracles) can do: delay the allocation (it is
posted by whoever has threshold matching signatures), and claim to have received a device-signed
commitment before the gate that it received later (only real, signed offers: it cannot forge or
change one, nor remove one an honest oracle holds). It cannot post an allocation the honest
oracles did not compute: each honest oracle signs only its own result, so a different root never
gathers threshold signatures. If honest oracles disagree (one missed a peer's listing), no root may
reach threshold; then nothing is posted, nodes curtail nothing, and the escrow is refunded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account import Account
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from oracle import db
from oracle.accepted import clears_before, overlaps, taken_sites
from oracle.chain_view import ChainView, RequestInfo
from oracle.ingest import ChainUnavailable, Ingestor, Rejected
from oracle.logs import RepeatFilter
from oracle.capability_records import capability_records
from oracle.reliability import delivery_records
from protocol.capability import CapabilityRules, cap_of, site_caps
from oracle.report_store import ReportStore
from protocol import eip712
from protocol.allocation_document import AllocationDocument
from protocol.chain import ChainError, Transactor
from protocol.clearing import Allocation, Offer, clear, margin_bps_from_history
from protocol.holdout import GateSeeds, is_held_out
from protocol.messages import decode_commitment
from protocol.statuses import RequestStatus

log = logging.getLogger("negawatt.oracle.clearing")
repeats = RepeatFilter(log)  # retried every tick: INFO once, DEBUG while unchanged

MAX_PEER_COMMITMENTS = 100_000  # a peer's listing longer than this is not read


def offers_of(commitments: list[db.CommitmentRecord], site_of: Callable[[str], str]) -> list[Offer]:
    """The offer tranches of stored commitments (tranche 1 only where extra watts were offered)."""
    offers = []
    for record in commitments:
        site = site_of(record.device)
        availability = int(record.min_availability_price)
        offers.append(Offer(site, record.device, 0, record.watts, int(record.min_price), availability))
        if record.extra_watts:
            offers.append(Offer(site, record.device, 1, record.extra_watts, int(record.extra_min_price),
                                availability))
    return offers


def allocation_to_json(allocation: Allocation, offers: int) -> dict[str, Any]:
    """The published form of an allocation (protocol.allocation_document)."""
    return AllocationDocument.of(allocation, offers).as_json()


def allocation_from_json(data: dict[str, Any]) -> Allocation:
    """The Allocation a published (or stored) form describes, validated, its root recomputed from the
    leaves; ValueError (pydantic's ValidationError included) if the form is malformed or inconsistent."""
    return AllocationDocument.model_validate(data).allocation()


@dataclass
class StoredAllocation:
    """This oracle's allocation of a request, as computed at clearing time, and its signature."""

    allocation: Allocation
    document: dict[str, Any]
    signature: bytes


class Clearer:
    """Computes, signs, publishes and posts allocations (see the module docstring)."""

    def __init__(self, *, web3: Any, manifest: Any, key: bytes, engine: Engine, chain_view: ChainView,
                 ingestor: Ingestor, sync_delay_seconds: int = 20, http_timeout: float = 10.0,
                 clock: Callable[[], float] = time.time):
        self.web3 = web3
        self.manifest = manifest
        self.key = key
        self.address = Account.from_key(key).address
        self.engine = engine
        self.chain_view = chain_view
        self.ingestor = ingestor
        self.sync_delay = sync_delay_seconds
        self.clock = clock
        self.hub = manifest.contract(web3, "OracleHub")
        self.seeds = GateSeeds(web3)
        self.tests = CapabilityRules.from_parameters(manifest.parameters)
        self._caps: tuple[int, list[Any], dict[str, int]] | None = None  # (final epoch, records, caps)
        self.store = ReportStore(engine)
        self.tx = Transactor(web3, key, abis=[entry.abi for entry in manifest.contracts.values()])
        self.http = httpx.Client(timeout=http_timeout)

    # ------------------------------------------------------------------ the loop

    def due(self, now: int) -> list[RequestInfo]:
        """Cleared requests whose gate closed at least sync_delay seconds ago, before their start, still
        open and without an allocation on chain."""
        return sorted((r for r in self.chain_view.requests().values()
                       if r.clears and r.status == RequestStatus.OPEN and r.allocation is None
                       and not self.tests.is_test(r.buyer)
                       and r.gate_time + self.sync_delay <= now < r.start), key=lambda r: r.request_id)

    def tick(self) -> int:
        """Clear and post what is due; returns how many allocations this oracle posted."""
        posted = 0
        now = int(self.clock())
        for request in self.due(now):
            try:
                stored = self.allocation(request)
                if stored is None:
                    continue
                if stored.allocation.accepted_w == 0:
                    continue  # nothing to post (see the module docstring)
                posted += self.post(request, stored)
            except ChainUnavailable as error:
                log.warning("request %d: chain unavailable while clearing: %s", request.request_id, error)
        return posted

    # ------------------------------------------------------------------ clearing

    def allocation(self, request: RequestInfo) -> StoredAllocation | None:
        """This oracle's allocation of `request`: the stored one, or computed now (after pulling the
        peers' commitments) and stored. None while the gate block (the holdout's seed) is unknown."""
        stored = self.stored(request.request_id)
        if stored is not None:
            return stored
        seed = self.seeds.seed(request.gate_time) if request.holdout_bps > 0 else b""
        if seed is None:
            return None
        self.pull_commitments(request)
        allocation, offers = self.compute(request, seed)
        document = allocation_to_json(allocation, offers)
        signature = eip712.sign(self.key, "Allocation", self._message(allocation), self.manifest.chainId,
                                self.hub.address)
        db.put_value(self.engine, f"allocation:{request.request_id}",
                     {"allocation": document, "signature": "0x" + signature.hex()})
        log.info("request %d cleared: %d W accepted of %d W target (cap %d W, margin %d bps) at %d per kWh; "
                 "%d offers, %d devices accepted, %d control sites", request.request_id, allocation.accepted_w,
                 request.target_w, allocation.cap_w, allocation.margin_bps, allocation.clearing_price, offers,
                 len(allocation.accepted), len(allocation.control_sites))
        return StoredAllocation(allocation, document, signature)

    def compute(self, request: RequestInfo, seed: bytes) -> tuple[Allocation, int]:
        """(allocation, number of offer tranches) of `request` from the stored commitments."""
        devices = self.chain_view.devices()

        def site_of(device: str) -> str:
            info = devices.get(device)
            return info.site if info is not None and info.site else device

        requests = self.chain_view.requests()
        earlier = [(r, a) for r in requests.values() if r.allocation is not None and overlaps(r, request)
                   and clears_before(r, request) for a in [self.settled_allocation(r)] if a is not None]
        taken = taken_sites(request, earlier)  # a site already accepted in an overlapping window (oracle.accepted)
        offers = [o for o in offers_of(db.commitments_of_request(self.engine, request.request_id), site_of)
                  if o.site.lower() not in taken]
        latest = self.store.latest_final()
        units, zones = delivery_records(self.store, latest.epoch if latest else 0,
                                        lambda rid: requests[rid].zone if rid in requests else None)
        margin = margin_bps_from_history(zones.get(request.zone, []))
        caps = self.site_caps()
        holdout = request.holdout_bps

        def held_out(site: str) -> bool:
            return holdout > 0 and is_held_out(seed, request.request_id, site, holdout)

        return clear(request.request_id, request.target_w, request.price_per_kwh, offers, units, margin,
                     held_out, availability_ceiling=request.availability_ceiling,
                     site_caps=None if caps is None else lambda site: cap_of(caps, site, self.tests.probation_w)), \
            len(offers)

    def _final_capability(self) -> tuple[list[Any], dict[str, int]]:
        """The capability records of the finalized reports and the caps they set, read again only when
        a newer report is final (the clearing, the ingest and the route all ask for them)."""
        latest = self.store.latest_final()
        epoch = latest.epoch if latest else 0
        if self._caps is None or self._caps[0] != epoch:
            records = capability_records(self.store, epoch)
            self._caps = (epoch, records, site_caps(records))
        return self._caps[1], self._caps[2]

    def site_caps(self) -> dict[str, int] | None:
        """Each proven site's cap (protocol.capability.site_caps) from the finalized reports' records; None
        on a network that runs no capability tests (nothing is capped)."""
        if not self.tests.runs:
            return None
        return self._final_capability()[1]

    def cap_of_site(self, site: str) -> int | None:
        """The most `site` may offer to one request (what the ingest refuses beyond), None when nothing
        is capped."""
        caps = self.site_caps()
        return None if caps is None else cap_of(caps, site, self.tests.probation_w)

    def capability(self, site: str) -> tuple[int | None, list[Any]]:
        """(the cap this oracle clears `site`'s offers with, None when nothing is capped; the site's
        records in the finalized reports, newest first)."""
        if not self.tests.runs:
            return None, []
        records, caps = self._final_capability()
        mine = sorted((r for r in records if r.site.lower() == site.lower()), key=lambda r: (r.tested_at, r.request_id),
                      reverse=True)
        return cap_of(caps, site, self.tests.probation_w), mine

    def stored(self, request_id: int) -> StoredAllocation | None:
        """The allocation this oracle computed for `request_id`, if it did."""
        value = db.get_value(self.engine, f"allocation:{request_id}")
        if value is None:
            return None
        return StoredAllocation(allocation_from_json(value["allocation"]), value["allocation"],
                                bytes.fromhex(value["signature"].removeprefix("0x")))

    def pull_commitments(self, request: RequestInfo) -> int:
        """Ingest the peers' commitments to `request` as received when they say (see the module)."""
        added = 0
        for _address, url in self._peers():
            listing = self._fetch(f"{url}/v1/commitments", {"request_id": request.request_id})
            if not isinstance(listing, list) or len(listing) > MAX_PEER_COMMITMENTS:
                continue
            for item in listing:
                try:
                    received_at = int(item["receivedAt"])
                    fields = {k: item[k] for k in ("requestId", "device", "watts", "minPricePerKWh", "extraWatts",
                                                   "extraMinPricePerKWh", "minAvailabilityPricePerKWh",
                                                   "signature") if k in item}
                    ack = self.ingestor.accept_commitment(decode_commitment(fields), received_at)
                    added += 0 if ack.replay else 1
                except Rejected as error:
                    if error.code != "commitment_conflict":
                        log.info("commitment from %s not taken: %s", url, error)
                except (KeyError, TypeError, ValueError, ValidationError) as error:
                    log.warning("malformed commitment from %s: %s", url, error)
        if added:
            log.info("request %d: %d commitments pulled from peers", request.request_id, added)
        return added

    def settled_allocation(self, request: RequestInfo) -> Allocation | None:
        """The allocation whose root is `request`'s on-chain root, for settlement: this oracle's own,
        or else a peer's published one whose leaves give that root (the root pins every acceptance;
        the control sites are then the peer's word). None if none matches."""
        if request.allocation is None:
            return None
        posted = request.allocation
        stored = self.stored(request.request_id)
        if stored is not None and self._matches(stored.allocation, posted):
            return stored.allocation
        for _address, url in self._peers():
            answer = self._fetch(f"{url}/v1/allocations/{request.request_id}")
            try:
                candidate = allocation_from_json(answer["allocation"])
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            if candidate.request_id == request.request_id and self._matches(candidate, posted):
                db.put_value(self.engine, f"allocation:{request.request_id}:settled",
                             {"allocation": allocation_to_json(candidate, int(answer["allocation"].get("offers", 0)))})
                return candidate
        return None

    @staticmethod
    def _matches(allocation: Allocation, posted: Any) -> bool:
        return (allocation.root() == posted.root and allocation.accepted_w == posted.accepted_w
                and allocation.clearing_price == posted.clearing_price
                and allocation.availability_price == posted.availability_price)

    # ------------------------------------------------------------------ posting

    def post(self, request: RequestInfo, stored: StoredAllocation) -> int:
        """Gather threshold signatures over this oracle's allocation and post it; 1 if this oracle did."""
        message = self._message(stored.allocation)
        signatures = {self.address: stored.signature}
        for address, url in self._peers():
            answer = self._fetch(f"{url}/v1/allocations/{request.request_id}")
            if not isinstance(answer, dict):
                continue
            try:
                theirs = answer["allocation"]
                same = (theirs["root"].lower() == stored.document["root"].lower()
                        and int(theirs["acceptedW"]) == stored.allocation.accepted_w
                        and int(theirs["clearingPrice"]) == stored.allocation.clearing_price
                        and int(theirs.get("availabilityPrice", 0)) == stored.allocation.availability_price)
                signature = bytes.fromhex(answer["signature"].removeprefix("0x"))
                if same and eip712.recover("Allocation", message, signature, self.manifest.chainId,
                                           self.hub.address) == address:
                    signatures[address] = signature
                elif not same:
                    log.warning("request %d: oracle %s cleared differently (root %s, ours %s)", request.request_id,
                                address, theirs.get("root"), stored.document["root"])
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                log.warning("malformed allocation from %s: %s", url, error)
        threshold = self.hub.functions.threshold().call()
        if len(signatures) < threshold:
            repeats.info(("post", request.request_id), "request %d: %d of %d signatures for the allocation so far",
                         request.request_id, len(signatures), threshold)
            return 0
        ordered = [signatures[a] for a in sorted(signatures, key=str.lower)][:threshold]
        try:
            self.tx.send(self.hub.functions.postAllocation(request.request_id, stored.allocation.root(),
                                                           stored.allocation.accepted_w,
                                                           stored.allocation.clearing_price,
                                                           stored.allocation.availability_price, ordered))
        except ChainError as error:
            repeats.info(("post", request.request_id), "request %d: allocation not posted by this oracle: %s",
                         request.request_id, error.error or error)
            return 0
        log.info("request %d: allocation posted (%d W at %d per kWh)", request.request_id,
                 stored.allocation.accepted_w, stored.allocation.clearing_price)
        return 1

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _message(allocation: Allocation) -> dict[str, Any]:
        return {"requestId": allocation.request_id, "root": allocation.root(), "acceptedW": allocation.accepted_w,
                "clearingPrice": allocation.clearing_price, "availabilityPrice": allocation.availability_price}

    def _peers(self) -> list[tuple[str, str]]:
        addresses, urls = self.hub.functions.oracles().call()
        return [(a, u.rstrip("/")) for a, u in zip(addresses, urls) if a != self.address and u]

    def _fetch(self, url: str, params: dict | None = None) -> Any:
        try:
            response = self.http.get(url, params=params)
        except httpx.HTTPError as error:
            log.info("peer %s unreachable: %s", url, error)
            return None
        return response.json() if response.status_code == 200 else None
