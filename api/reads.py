"""The queries behind the REST routes: SQL (SQLAlchemy Core, no ORM objects) to the JSON shapes of
api.schemas. Lists use keyset (cursor) pagination on an indexed column, so a page costs the same
at any depth. Aggregates that only change when the indexer commits are cached per mirror version.
Kind names and statuses are protocol's (protocol.kinds, protocol.statuses). A site meter (kind
SITE_METER) is listed with the devices, but, as in the chain's zoneStats, never counted in an
owner's or a zone's device numbers and capacity; its detail lists the devices registered at it."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.capability import latest_capabilities

from protocol.kinds import KIND_NAMES, DeviceKind
from protocol.statuses import IndexedReportStatus, RequestStatus

ZERO_HASH = "0x" + "00" * 32
_FINAL = IndexedReportStatus.FINAL.value  # SQL literals of the statuses the aggregates select
_SETTLED = RequestStatus.SETTLED.value
_FALLBACK_KIND = DeviceKind.HOUSEHOLD.label  # the registry's "other load" (no number outside 0..6 is stored)
_SITE_METER = int(DeviceKind.SITE_METER)
SITES_IN_REQUEST = 50  # settlement units shown in a request's detail; /v1/requests/{id}/sites pages the rest
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,200}")


MAX_ZONES = 1_000  # zones GET /v1/zones lists (a network has tens)


class BadCursor(ValueError):
    """A cursor this API did not hand out."""


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor for the row after which the next page starts."""
    return base64.urlsafe_b64encode(json.dumps(list(parts), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> list[Any]:
    """The parts of a cursor, checked against `types`; raises BadCursor."""
    if not _CURSOR.fullmatch(cursor):  # base64url without padding only (b64decode would skip other characters)
        raise BadCursor("not a cursor this API returned")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadCursor("not a cursor this API returned") from None
    if not isinstance(parts, list) or len(parts) != len(types) or not all(
            isinstance(part, kind) and not isinstance(part, bool) for part, kind in zip(parts, types)):
        raise BadCursor("not a cursor this API returned")
    for part in parts:
        if isinstance(part, int) and not 0 <= part < 2**63:
            raise BadCursor("cursor out of range")
        if isinstance(part, str) and len(part) > 80:
            raise BadCursor("cursor too long")
    return parts


class VersionCache:
    """Values computed from the mirror, valid until the mirror changes (`bump`). Small LRU."""

    def __init__(self, size: int = 4_096):
        self.size = size
        self.version = 0
        self._items: OrderedDict[Any, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def bump(self) -> None:
        """The mirror changed: every cached value is stale."""
        with self._lock:
            self.version += 1
            self._items.clear()

    def get(self, key: Any) -> Any:
        """The cached value, or None."""
        found = self._items.get(key)
        if found is not None and found[0] == self.version:
            return found[1]
        return None

    def put(self, key: Any, value: Any, version: int) -> None:
        """Cache `value` computed at mirror `version` (ignored if the mirror moved on meanwhile)."""
        with self._lock:
            if version != self.version:
                return
            self._items[key] = (version, value)
            if len(self._items) > self.size:
                self._items.popitem(last=False)


@dataclass(frozen=True)
class DeviceFilter:
    """Filters of the device list (None: any)."""

    zone: int | None = None
    kind: int | None = None
    owner: str | None = None
    active: bool | None = None
    site: str | None = None


def _device(row: Any) -> dict[str, Any]:
    profile = None
    if row.p_updated is not None:
        profile = {"name": row.p_name, "locationLabel": row.p_location, "updatedAt": row.p_updated}
    return {"address": row.address, "owner": row.owner, "kind": row.kind,
            "kindName": KIND_NAMES.get(row.kind, _FALLBACK_KIND),
            "capacityW": row.capacity_w, "zone": row.zone, "active": bool(row.active),
            "registered": bool(row.registered), "registeredBlock": row.registered_block,
            "updatedBlock": row.updated_block, "site": row.site, "siteDevices": None, "profile": profile,
            "capability": None}


_DEVICE_COLUMNS = ("d.address, d.owner, d.kind, d.capacity_w, d.zone, d.active, d.registered, d.registered_block, "
                   "d.updated_block, d.site, p.name AS p_name, p.location_label AS p_location, "
                   "p.updated_at AS p_updated "
                   "FROM devices d LEFT JOIN device_profiles p ON p.device = d.address AND p.written_by = d.owner")

_REQUEST_COLUMNS = ("r.id, r.buyer, r.zone, r.start, r.\"end\", r.target_w, r.price_per_kwh, r.payment_token, "
                    "r.max_budget, r.status, r.payout, r.refund, r.report_digest, r.opened_block, r.opened_tx, "
                    "r.holdout_bps, r.gate_closure, r.accepted_w, r.clearing_price, r.allocation_root, "
                    "r.availability_price_per_kwh, r.availability_price, rep.epoch AS epoch, rr.delivered_wh AS delivered_wh, "
                    "rr.devices AS devices, rr.verification AS verification "
                    "FROM requests r LEFT JOIN reports rep ON rep.digest = r.report_digest "
                    "LEFT JOIN report_requests rr ON rr.digest = r.report_digest AND rr.request_id = r.id")


def _request(row: Any, with_devices: bool) -> dict[str, Any]:
    out = {"id": row.id, "buyer": row.buyer, "zone": row.zone, "start": row.start, "end": row.end,
           "targetW": row.target_w, "pricePerKWh": row.price_per_kwh, "paymentToken": row.payment_token,
           "maxBudget": row.max_budget, "status": row.status, "payout": row.payout, "refund": row.refund,
           "reportDigest": row.report_digest, "epoch": row.epoch, "openedBlock": row.opened_block,
           "openedTx": row.opened_tx, "holdoutBps": row.holdout_bps, "gateClosure": row.gate_closure,
           "acceptedW": row.accepted_w, "clearingPrice": row.clearing_price, "allocationRoot": row.allocation_root,
           "availabilityPricePerKWh": row.availability_price_per_kwh, "availabilityPrice": row.availability_price,
           "deliveredWh": row.delivered_wh, "devices": None, "verification": None}
    if with_devices and row.devices is not None:
        out["devices"] = json.loads(row.devices)
    if with_devices and row.verification is not None:
        out["verification"] = json.loads(row.verification)
    return out


def _site_result(row: Any) -> dict[str, Any]:
    return {"site": row.site, "group": row.group_name, "committedW": row.committed_w, "paidWh": row.paid_wh,
            "weightWh": row.weight_wh, "devices": json.loads(row.devices)}


def _report(row: Any) -> dict[str, Any]:
    return {"digest": row.digest, "epoch": row.epoch, "status": row.status, "previousRoot": row.previous_root,
            "rewardsRoot": row.rewards_root, "requestsHash": row.requests_hash, "penaltiesHash": row.penalties_hash,
            "emission": row.emission, "submitter": row.submitter, "signers": json.loads(row.signers),
            "challengeDeadline": row.challenge_deadline, "challenger": row.challenger,
            "challengeReason": row.challenge_reason, "submittedBlock": row.submitted_block,
            "submittedTx": row.submitted_tx, "finalizedBlock": row.finalized_block,
            "verified": row.verified is not None, "requestIds": json.loads(row.request_ids)}


class Reads:
    """Read queries on the mirror."""

    def __init__(self, engine: Engine, cache: VersionCache | None = None):
        self.engine = engine
        self.cache = cache or VersionCache()

    def _all(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).all()

    def _one(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).first()

    # ------------------------------------------------------------------ devices

    def devices(self, where: DeviceFilter, cursor: str | None, limit: int) -> dict[str, Any]:
        """A page of registered devices ordered by address."""
        clauses, params = ["d.registered = :registered"], {"registered": True, "limit": limit + 1}
        if where.zone is not None:
            clauses.append("d.zone = :zone")
            params["zone"] = where.zone
        if where.kind is not None:
            clauses.append("d.kind = :kind")
            params["kind"] = where.kind
        if where.owner is not None:
            clauses.append("d.owner = :owner")
            params["owner"] = where.owner
        if where.active is not None:
            clauses.append("d.active = :active")
            params["active"] = where.active
        if where.site is not None:
            clauses.append("d.site = :site")
            params["site"] = where.site
        if cursor is not None:
            (after,) = decode_cursor(cursor, (str,))
            if not _ADDRESS.fullmatch(after):
                raise BadCursor("not a cursor this API returned")
            clauses.append("d.address > :after")
            params["after"] = after
        rows = self._all(f"SELECT {_DEVICE_COLUMNS} WHERE {' AND '.join(clauses)} ORDER BY d.address LIMIT :limit",
                         **params)
        items = [_device(row) for row in rows[:limit]]
        latest = latest_capabilities(self.engine, [i["address"] for i in items if i["kind"] == _SITE_METER])
        for item in items:
            item["capability"] = latest.get(item["address"])
        return {"items": items, "next": encode_cursor(items[-1]["address"]) if len(rows) > limit else None}

    def device(self, address: str) -> dict[str, Any] | None:
        """One device (registered or not) by checksummed address; a site meter with the addresses of
        its registered devices (at most the registry's MAX_DEVICES_PER_SITE)."""
        row = self._one(f"SELECT {_DEVICE_COLUMNS} WHERE d.address = :address", address=address)
        if row is None:
            return None
        out = _device(row)
        if row.kind == _SITE_METER:
            out["siteDevices"] = [r.address for r in self._all(
                "SELECT address FROM devices WHERE site = :site AND registered = :yes ORDER BY address",
                site=address, yes=True)] if row.registered else []
            out["capability"] = latest_capabilities(self.engine, [address]).get(address)
        return out

    def device_owner(self, address: str) -> str | None:
        """The current owner of a registered device."""
        row = self._one("SELECT owner FROM devices WHERE address = :address AND registered = :yes",
                        address=address, yes=True)
        return row.owner if row else None

    # ------------------------------------------------------------------ owners, stake, rewards

    def stake(self, account: str) -> dict[str, Any]:
        """An account's stake (zeros if it never staked)."""
        row = self._one("SELECT bonded, unbonding, release_at, locked, slashed FROM stakes WHERE account = :a",
                        a=account)
        if row is None:
            return {"bonded": "0", "unbonding": "0", "releaseAt": 0, "locked": "0", "slashed": "0"}
        return {"bonded": row.bonded, "unbonding": row.unbonding, "releaseAt": row.release_at, "locked": row.locked,
                "slashed": row.slashed}

    def latest_final(self) -> Any:
        """(digest, epoch, rewards_root, verified) of the latest final report, cached per mirror version."""
        version = self.cache.version
        found = self.cache.get("latest_final")
        if found is not None:
            return found
        row = self._one("SELECT rep.digest, rep.epoch, rep.rewards_root, doc.digest AS verified FROM reports rep "
                        "LEFT JOIN report_documents doc ON doc.digest = rep.digest "
                        f"WHERE rep.status = '{_FINAL}' ORDER BY rep.epoch DESC LIMIT 1")
        value = (row.digest, row.epoch, row.rewards_root, row.verified is not None) if row else ("", 0, ZERO_HASH, True)
        self.cache.put("latest_final", value, version)
        return value

    def rewards(self, account: str) -> dict[str, Any]:
        """Cumulative, claimed and claimable per token with the proof, as of the latest final report."""
        digest, epoch, root, verified = self.latest_final()
        claimed = {row.token: int(row.claimed) for row in
                   self._all("SELECT token, claimed FROM claims WHERE account = :a", a=account)}
        tokens = []
        if digest and verified:
            for row in self._all("SELECT token, amount, proof FROM reward_leaves WHERE digest = :d AND account = :a "
                                 "ORDER BY token", d=digest, a=account):
                cumulative = int(row.amount)
                done = claimed.get(row.token, 0)
                tokens.append({"token": row.token, "cumulative": row.amount, "claimed": str(done),
                               "claimable": str(max(0, cumulative - done)), "proof": json.loads(row.proof)})
        return {"account": account, "epoch": epoch, "root": root, "verified": verified, "tokens": tokens}

    def owner(self, address: str) -> dict[str, Any]:
        """An owner's device counts (controllable devices; site meters are counted as `sites`), stake and
        rewards."""
        row = self._one("SELECT COALESCE(SUM(CASE WHEN kind = :site THEN 0 ELSE 1 END), 0) AS n, "
                        "COALESCE(SUM(CASE WHEN active AND kind <> :site THEN 1 ELSE 0 END), 0) AS active, "
                        "COALESCE(SUM(CASE WHEN active AND kind <> :site THEN capacity_w ELSE 0 END), 0) "
                        "AS capacity, COALESCE(SUM(CASE WHEN kind = :site THEN 1 ELSE 0 END), 0) AS sites "
                        "FROM devices WHERE owner = :o AND registered = :yes", o=address, yes=True,
                        site=_SITE_METER)
        return {"address": address, "devices": int(row.n), "activeDevices": int(row.active),
                "capacityW": int(row.capacity), "sites": int(row.sites), "stake": self.stake(address),
                "rewards": self.rewards(address)}

    # ------------------------------------------------------------------ requests

    def requests(self, zone: int | None, status: str | None, buyer: str | None, time_from: int | None,
                 time_to: int | None, cursor: str | None, limit: int) -> dict[str, Any]:
        """A page of requests, newest first; time filters select windows overlapping [from, to)."""
        clauses, params = ["1 = 1"], {"limit": limit + 1}
        for name, value in (("zone", zone), ("status", status), ("buyer", buyer)):
            if value is not None:
                clauses.append(f"r.{name} = :{name}")
                params[name] = value
        if time_from is not None:
            clauses.append('r."end" > :time_from')
            params["time_from"] = time_from
        if time_to is not None:
            clauses.append("r.start < :time_to")
            params["time_to"] = time_to
        if cursor is not None:
            (before,) = decode_cursor(cursor, (int,))
            clauses.append("r.id < :before")
            params["before"] = before
        rows = self._all(f"SELECT {_REQUEST_COLUMNS} WHERE {' AND '.join(clauses)} ORDER BY r.id DESC LIMIT :limit",
                         **params)
        items = [_request(row, False) for row in rows[:limit]]
        return {"items": items, "next": encode_cursor(items[-1]["id"]) if len(rows) > limit else None}

    def request(self, request_id: int) -> dict[str, Any] | None:
        """One request with per-device results once its report's document is verified, and for a
        per-site request the verification summary with its first SITES_IN_REQUEST settlement units."""
        row = self._one(f"SELECT {_REQUEST_COLUMNS} WHERE r.id = :id", id=request_id)
        if row is None:
            return None
        out = _request(row, True)
        if out["verification"] is not None:
            page = self._sites_page(row.report_digest, request_id, None, None, SITES_IN_REQUEST)
            out["verification"].update(sites=page["items"], sitesNext=page["next"])
        return out

    def allocation(self, request_id: int) -> dict[str, Any] | str | None:
        """A request's clearing as the oracles published it and the chain's root confirms
        (api.allocation_documents): None for an unknown request, "not_posted" before its allocation
        is posted, "not_fetched" while no oracle has served a matching document yet."""
        row = self._one("SELECT r.allocation_root, a.body, a.signature, a.signer, a.source FROM requests r "
                        "LEFT JOIN allocation_documents a ON a.request_id = r.id AND a.root = r.allocation_root "
                        "WHERE r.id = :id", id=request_id)
        if row is None:
            return None
        if row.allocation_root is None:
            return "not_posted"
        if row.body is None:
            return "not_fetched"
        document = json.loads(row.body)
        return {**document, "clearingPrice": str(document["clearingPrice"]),
                "availabilityPrice": str(document.get("availabilityPrice", 0)), "signature": row.signature,
                "signer": row.signer, "source": row.source}

    def request_sites(self, request_id: int, group: str | None, cursor: str | None,
                      limit: int) -> dict[str, Any] | None:
        """A page of a per-site request's settlement units by address (empty until its report's document
        is verified, and for a request settled per device); None for an unknown request."""
        row = self._one("SELECT r.report_digest, rr.verification FROM requests r LEFT JOIN report_requests rr "
                        "ON rr.digest = r.report_digest AND rr.request_id = r.id WHERE r.id = :id", id=request_id)
        if row is None:
            return None
        after = None
        if cursor is not None:
            (after,) = decode_cursor(cursor, (str,))
            if not _ADDRESS.fullmatch(after):
                raise BadCursor("not a cursor this API returned")
        if row.verification is None:
            return {"items": [], "next": None}
        return self._sites_page(row.report_digest, request_id, group, after, limit)

    def _sites_page(self, digest: str, request_id: int, group: str | None, after: str | None,
                    limit: int) -> dict[str, Any]:
        clauses = ["digest = :digest", "request_id = :id"]
        params: dict[str, Any] = {"digest": digest, "id": request_id, "limit": limit + 1}
        if group is not None:
            clauses.append("group_name = :group")
            params["group"] = group
        if after is not None:
            clauses.append("site > :after")
            params["after"] = after
        rows = self._all("SELECT site, group_name, committed_w, paid_wh, weight_wh, devices FROM report_sites "
                         f"WHERE {' AND '.join(clauses)} ORDER BY site LIMIT :limit", **params)
        items = [_site_result(r) for r in rows[:limit]]
        return {"items": items, "next": encode_cursor(items[-1]["site"]) if len(rows) > limit else None}

    # ------------------------------------------------------------------ reports

    def reports(self, status: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
        """A page of reports, newest epoch first (a discarded report and its successor share an epoch)."""
        clauses, params = ["1 = 1"], {"limit": limit + 1}
        if status is not None:
            clauses.append("rep.status = :status")
            params["status"] = status
        if cursor is not None:
            epoch, block = decode_cursor(cursor, (int, int))
            clauses.append("(rep.epoch < :epoch OR (rep.epoch = :epoch AND rep.submitted_block < :block))")
            params.update(epoch=epoch, block=block)
        rows = self._all("SELECT rep.*, doc.digest AS verified FROM reports rep "
                         "LEFT JOIN report_documents doc ON doc.digest = rep.digest "
                         f"WHERE {' AND '.join(clauses)} ORDER BY rep.epoch DESC, rep.submitted_block DESC "
                         "LIMIT :limit", **params)
        items = [_report(row) for row in rows[:limit]]
        more = len(rows) > limit
        return {"items": items,
                "next": encode_cursor(items[-1]["epoch"], items[-1]["submittedBlock"]) if more else None}

    def report(self, digest: str) -> dict[str, Any] | None:
        """One report by digest."""
        row = self._one("SELECT rep.*, doc.digest AS verified FROM reports rep "
                        "LEFT JOIN report_documents doc ON doc.digest = rep.digest WHERE rep.digest = :d", d=digest)
        return _report(row) if row is not None else None

    # ------------------------------------------------------------------ stats

    def _settled_totals(self, zone: int | None) -> tuple[int, list[dict[str, str]]]:
        sql = ("SELECT r.payment_token, r.payout, rr.delivered_wh FROM requests r LEFT JOIN report_requests rr "
               f"ON rr.digest = r.report_digest AND rr.request_id = r.id WHERE r.status = '{_SETTLED}'")
        rows = self._all(sql + (" AND r.zone = :zone" if zone is not None else ""),
                         **({"zone": zone} if zone is not None else {}))
        delivered, paid = 0, {}
        for row in rows:
            delivered += row.delivered_wh or 0
            paid[row.payment_token] = paid.get(row.payment_token, 0) + int(row.payout or 0)
        return delivered, [{"token": token, "amount": str(amount)} for token, amount in sorted(paid.items())]

    def zone_stats(self, zone: int) -> dict[str, Any]:
        """Devices, capacity, requests, delivered energy and payouts of one zone (cached per mirror version)."""
        version = self.cache.version
        found = self.cache.get(("zone", zone))
        if found is not None:
            return found
        row = self._one("SELECT * FROM zone_totals WHERE zone = :zone", zone=zone)
        registered = self._one("SELECT COALESCE(SUM(capacity_w), 0) AS w FROM devices WHERE zone = :zone AND "
                               "registered = :yes AND kind != :meter", zone=zone, yes=True,
                               meter=int(DeviceKind.SITE_METER))
        delivered, paid = self._settled_totals(zone)
        value = {"zone": zone, "devices": row.devices if row else 0, "activeDevices": row.active_devices if row else 0,
                 "registeredCapacityW": int(registered.w),
                 "activeCapacityW": row.active_capacity_w if row else 0, "requests": row.requests if row else 0,
                 "settledRequests": row.settled_requests if row else 0, "deliveredWh": delivered,
                 "deliveredKWh": delivered / 1000, "paid": paid}
        self.cache.put(("zone", zone), value, version)
        return value

    def zones(self) -> list[dict[str, Any]]:
        """Every zone with a registered device or a request (at most MAX_ZONES), each as zone_stats."""
        return [self.zone_stats(row.zone) for row in
                self._all("SELECT zone FROM zone_totals ORDER BY zone LIMIT :n", n=MAX_ZONES)]

    def network_stats(self, indexed_block: int, head_block: int) -> dict[str, Any]:
        """Totals over every zone (cached per mirror version)."""
        version = self.cache.version
        found = self.cache.get("network")
        if found is None:
            totals = self._one("SELECT COALESCE(SUM(devices), 0) AS devices, COALESCE(SUM(active_devices), 0) AS active, "
                               "COALESCE(SUM(active_capacity_w), 0) AS capacity, COALESCE(SUM(requests), 0) AS requests, "
                               "COALESCE(SUM(settled_requests), 0) AS settled, COUNT(*) AS zones FROM zone_totals")
            owners = self._one("SELECT COUNT(DISTINCT owner) AS n FROM devices WHERE registered = :yes", yes=True)
            reports = self._one(f"SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN status = '{_FINAL}' THEN 1 ELSE 0 END), 0) "
                                f"AS final, COALESCE(MAX(CASE WHEN status = '{_FINAL}' THEN epoch ELSE 0 END), 0) AS epoch "
                                "FROM reports")
            delivered, paid = self._settled_totals(None)
            found = {"devices": int(totals.devices), "activeDevices": int(totals.active),
                     "activeCapacityW": int(totals.capacity), "owners": int(owners.n), "zones": int(totals.zones),
                     "requests": int(totals.requests), "settledRequests": int(totals.settled),
                     "reports": int(reports.n), "finalReports": int(reports.final), "currentEpoch": int(reports.epoch),
                     "deliveredWh": delivered, "paid": paid}
            self.cache.put("network", found, version)
        return {**found, "indexedBlock": indexed_block, "headBlock": head_block}

    # ------------------------------------------------------------------ stream

    def events_after(self, block: int, log_index: int, kinds: tuple[str, ...], limit: int = 500) -> list[Any]:
        """Stored events of `kinds` after position (block, log_index), in chain order."""
        placeholders = ", ".join(f":k{i}" for i in range(len(kinds)))
        params = {f"k{i}": kind for i, kind in enumerate(kinds)}
        return self._all("SELECT block, log_index, tx_hash, contract, name, kind, args FROM chain_events "
                         f"WHERE kind IN ({placeholders}) AND (block > :b OR (block = :b AND log_index > :i)) "
                         "ORDER BY block, log_index LIMIT :limit", b=block, i=log_index, limit=limit, **params)

    def has_event(self, block: int, log_index: int, tx_tag: str | None = None) -> bool:
        """Whether the mirror holds the event at (block, log_index) (a stream's resume point), of a
        transaction whose hash starts with `tx_tag` (hex digits) when one is given."""
        row = self._one("SELECT tx_hash FROM chain_events WHERE block = :b AND log_index = :i", b=block, i=log_index)
        if row is None:
            return False
        return tx_tag is None or row.tx_hash.lower().removeprefix("0x").startswith(tx_tag)

    def last_event_position(self) -> tuple[int, int]:
        """(block, log_index) of the newest stored event, or (-1, -1)."""
        row = self._one("SELECT block, log_index FROM chain_events ORDER BY block DESC, log_index DESC LIMIT 1")
        return (row.block, row.log_index) if row else (-1, -1)
