"""Contract events -> mirror tables. One handler per event that changes state the API serves; every
event (handled or not) is also kept in `chain_events`. Writes go through the Journal so they can
be rolled back; applying the same events to the same starting state always gives the same rows.

Sites follow the DeviceRegistry: a site meter (kind SITE_METER) never counts in its zone's totals
(the chain's zoneStats is flexible capacity only); a device registered at a site (DeviceSited right
after its DeviceRegistered) records the site, and since its owner is always the site's owner, the
one DeviceTransferred of a site moves every registered device at it to the new owner too. A
request's market rules (RequestRules, right after RequestOpened) are kept on the request row, and so is
its availability ceiling (RequestAvailability, for a request that pays availability) and its clearing
result (AllocationPosted, once per request before its start: the accepted watts, the uniform clearing
and availability prices and the allocation's Merkle root, which live only in that event)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from api.events import ChainLog, json_safe
from api.journal import Journal
from api.models import api_metadata
from protocol.kinds import DeviceKind
from protocol.statuses import IndexedReportStatus, RequestStatus

EVENTS = api_metadata.tables["chain_events"]
DEVICES = api_metadata.tables["devices"]
SITE_METER = int(DeviceKind.SITE_METER)

REQUEST_EVENTS = {"RequestOpened", "RequestRules", "RequestAvailability", "AllocationPosted", "RequestCancelled", "RequestSettling", "RequestReleased",
                  "RequestSettled", "RequestExpired"}
REPORT_EVENTS = {"ReportSubmitted", "ReportChallenged", "ChallengeResolved", "ReportDiscarded", "ReportFinalized",
                 "ChallengeWindowExtended", "ChallengeTimedOut", "ReportAbandoned", "SignersRecorded"}


def event_kind(log: ChainLog) -> str:
    """The stream an event belongs to: request, report, claim or other."""
    if log.contract == "FlexMarket" and log.name in REQUEST_EVENTS:
        return "request"
    if log.contract == "OracleHub" and log.name in REPORT_EVENTS:
        return "report"
    if log.contract == "RewardDistributor" and log.name == "Claimed":
        return "claim"
    return "other"


class Projection:
    """Applies decoded events, in chain order, on one connection inside the caller's transaction."""

    def __init__(self, connection: Connection, journal: bool = True):
        self.connection = connection
        self.journal = Journal(connection, enabled=journal)
        self._tx_digest: dict[str, str] = {}
        self._handlers: dict[tuple[str, str], Callable[[ChainLog], None]] = {
            ("DeviceRegistry", "DeviceRegistered"): self._device_registered,
            ("DeviceRegistry", "DeviceSited"): self._device_sited,
            ("DeviceRegistry", "DeviceActiveChanged"): self._device_active,
            ("DeviceRegistry", "DeviceTransferred"): self._device_transferred,
            ("DeviceRegistry", "DeviceUnregistered"): self._device_unregistered,
            ("FlexMarket", "RequestOpened"): self._request_opened,
            ("FlexMarket", "RequestRules"): self._request_rules,
            ("FlexMarket", "RequestAvailability"): self._request_availability,
            ("FlexMarket", "AllocationPosted"): self._allocation_posted,
            ("FlexMarket", "RequestCancelled"): self._request_refunded(RequestStatus.CANCELLED.value),
            ("FlexMarket", "RequestExpired"): self._request_refunded(RequestStatus.EXPIRED.value),
            ("FlexMarket", "RequestSettling"): self._request_settling,
            ("FlexMarket", "RequestReleased"): self._request_released,
            ("FlexMarket", "RequestSettled"): self._request_settled,
            ("OracleHub", "OracleAdded"): self._oracle_active(True),
            ("OracleHub", "OracleRemoved"): self._oracle_active(False),
            ("OracleHub", "OracleUrlSet"): self._oracle_url,
            ("OracleHub", "ReportSubmitted"): self._report_submitted,
            ("OracleHub", "ReportChallenged"): self._report_challenged,
            ("OracleHub", "ChallengeResolved"): self._challenge_resolved,
            ("OracleHub", "ReportDiscarded"): self._report_status(IndexedReportStatus.DISCARDED.value),
            # Abandoned after the finalize grace: gone like a discarded report, its requests open again.
            ("OracleHub", "ReportAbandoned"): self._report_status(IndexedReportStatus.DISCARDED.value),
            ("OracleHub", "ReportFinalized"): self._report_finalized,
            ("OracleHub", "ChallengeWindowExtended"): self._window_extended,
            ("RewardDistributor", "Claimed"): self._claimed,
            ("Staking", "Staked"): self._staked,
            ("Staking", "UnstakeRequested"): self._unstake_requested,
            ("Staking", "Withdrawn"): self._withdrawn,
            ("Staking", "Slashed"): self._slashed,
            ("Staking", "LockSet"): self._lock_set,
        }

    def apply(self, logs: Iterable[ChainLog]) -> list[dict[str, Any]]:
        """Apply `logs` (chain order) and record them; returns the stored event rows (for the stream)."""
        rows = []
        for log in logs:
            handler = self._handlers.get((log.contract, log.name))
            if handler is not None:
                handler(log)
            rows.append({"block": log.block, "log_index": log.log_index, "tx_hash": log.tx_hash,
                         "contract": log.contract, "name": log.name, "kind": event_kind(log),
                         "args": json.dumps(json_safe(log.args), sort_keys=True)})
        if rows:
            self.connection.execute(insert(EVENTS), rows)
        self.journal.flush()
        return rows

    # ------------------------------------------------------------------ devices and zones

    def _zone(self, zone: int, block: int, **deltas: int) -> None:
        key = {"zone": zone}
        old = self.journal.get("zone_totals", key)
        base = old or {"devices": 0, "active_devices": 0, "active_capacity_w": 0, "requests": 0,
                       "settled_requests": 0}
        values = {name: base[name] + deltas.get(name, 0) for name in
                  ("devices", "active_devices", "active_capacity_w", "requests", "settled_requests")}
        self.journal.put("zone_totals", key, values, block, previous=old)

    def _device_registered(self, log: ChainLog) -> None:
        a = log.args
        key = {"address": a["device"]}
        old = self.journal.get("devices", key)
        self.journal.put("devices", key, {
            "owner": a["owner"], "kind": int(a["kind"]), "capacity_w": int(a["capacityW"]), "zone": int(a["zone"]),
            "active": True, "registered": True, "registered_block": log.block, "updated_block": log.block,
            "site": None,  # DeviceSited follows in the same transaction for a device registered at a site
        }, log.block, previous=old)
        if int(a["kind"]) != SITE_METER:
            self._zone(int(a["zone"]), log.block, devices=1, active_devices=1,
                       active_capacity_w=int(a["capacityW"]))

    def _device_sited(self, log: ChainLog) -> None:
        key = {"address": log.args["device"]}
        old = self.journal.get("devices", key)
        if old is not None:
            self.journal.put("devices", key, {"site": log.args["site"], "updated_block": log.block}, log.block,
                             previous=old)

    def _device_active(self, log: ChainLog) -> None:
        key = {"address": log.args["device"]}
        old = self.journal.get("devices", key)
        if old is None:
            return
        active = bool(log.args["active"])
        self.journal.put("devices", key, {"active": active, "updated_block": log.block}, log.block, previous=old)
        if active != old["active"]:
            sign = 1 if active else -1
            self._zone(old["zone"], log.block, active_devices=sign, active_capacity_w=sign * old["capacity_w"])

    def _device_transferred(self, log: ChainLog) -> None:
        key = {"address": log.args["device"]}
        old = self.journal.get("devices", key)
        if old is None:
            return
        self.journal.put("devices", key, {"owner": log.args["to"], "updated_block": log.block}, log.block,
                         previous=old)
        if old["kind"] == SITE_METER:
            for address in self._devices_at(log.args["device"]):
                member = {"address": address}
                self.journal.put("devices", member, {"owner": log.args["to"], "updated_block": log.block},
                                 log.block)

    def _devices_at(self, site: str) -> list[str]:
        """The registered devices at `site` (at most the registry's MAX_DEVICES_PER_SITE)."""
        self.journal.flush()  # rows written earlier in this range are in the database from here on
        rows = self.connection.execute(select(DEVICES.c.address).where(
            DEVICES.c.site == site, DEVICES.c.registered.is_(True)).order_by(DEVICES.c.address)).all()
        return [row.address for row in rows]

    def _device_unregistered(self, log: ChainLog) -> None:
        key = {"address": log.args["device"]}
        old = self.journal.get("devices", key)
        if old is None or not old["registered"]:
            return
        self.journal.put("devices", key, {"active": False, "registered": False, "updated_block": log.block},
                         log.block, previous=old)
        if old["kind"] == SITE_METER:
            return
        if old["active"]:
            self._zone(old["zone"], log.block, devices=-1, active_devices=-1, active_capacity_w=-old["capacity_w"])
        else:
            self._zone(old["zone"], log.block, devices=-1)

    # ------------------------------------------------------------------ requests

    def _request_opened(self, log: ChainLog) -> None:
        a = log.args
        self.journal.put("requests", {"id": int(a["requestId"])}, {
            "buyer": a["buyer"], "zone": int(a["zone"]), "start": int(a["start"]), "end": int(a["end"]),
            "target_w": int(a["targetW"]), "price_per_kwh": str(a["pricePerKWh"]),
            "payment_token": a["paymentToken"], "max_budget": str(a["maxBudget"]), "status": RequestStatus.OPEN.value,
            "payout": None, "refund": None, "report_digest": None, "opened_block": log.block,
            "opened_tx": log.tx_hash, "updated_block": log.block, "holdout_bps": None, "gate_closure": None,
            "accepted_w": None, "clearing_price": None, "allocation_root": None,
            "availability_price_per_kwh": None, "availability_price": None,
        }, log.block)
        self._zone(int(a["zone"]), log.block, requests=1)

    def _request_rules(self, log: ChainLog) -> None:
        """The holdout and gate closure the request was opened under (FlexMarket RequestRules)."""
        self._update_request(log, {"holdout_bps": int(log.args["holdoutBps"]),
                                   "gate_closure": int(log.args["gateClosure"])})

    def _request_availability(self, log: ChainLog) -> None:
        """The availability ceiling of a request that pays availability (FlexMarket RequestAvailability)."""
        self._update_request(log, {"availability_price_per_kwh": str(log.args["availabilityPricePerKWh"])})

    def _allocation_posted(self, log: ChainLog) -> None:
        """The request's clearing result (FlexMarket AllocationPosted): accepted watts, price and root."""
        self._update_request(log, {"accepted_w": int(log.args["acceptedW"]),
                                   "clearing_price": str(log.args["clearingPrice"]),
                                   "availability_price": str(log.args["availabilityPrice"]),
                                   "allocation_root": str(log.args["root"]).lower()})

    def _update_request(self, log: ChainLog, values: dict[str, Any]) -> dict[str, Any] | None:
        key = {"id": int(log.args["requestId"])}
        old = self.journal.get("requests", key)
        if old is not None:
            self.journal.put("requests", key, {**values, "updated_block": log.block}, log.block, previous=old)
        return old

    def _request_refunded(self, status: str) -> Callable[[ChainLog], None]:
        def handle(log: ChainLog) -> None:
            self._update_request(log, {"status": status, "refund": str(log.args["refund"])})
        return handle

    def _request_settling(self, log: ChainLog) -> None:
        digest = self._tx_digest.get(log.tx_hash)
        self._update_request(log, {"status": RequestStatus.SETTLING.value, "payout": str(log.args["payout"]), "report_digest": digest})
        if digest is not None:
            key = {"digest": digest}
            report = self.journal.get("reports", key)
            if report is not None:
                ids = json.loads(report["request_ids"]) + [int(log.args["requestId"])]
                self.journal.put("reports", key, {"request_ids": json.dumps(ids)}, log.block, previous=report)

    def _request_released(self, log: ChainLog) -> None:
        self._update_request(log, {"status": RequestStatus.OPEN.value, "payout": None, "report_digest": None})

    def _request_settled(self, log: ChainLog) -> None:
        values = {"status": RequestStatus.SETTLED.value, "payout": str(log.args["payout"]), "refund": str(log.args["refund"])}
        digest = self._tx_digest.get(log.tx_hash)
        if digest is not None:
            values["report_digest"] = digest
        old = self._update_request(log, values)
        if old is not None and old["status"] != RequestStatus.SETTLED.value:
            self._zone(old["zone"], log.block, settled_requests=1)

    # ------------------------------------------------------------------ oracles and reports

    def _oracle_active(self, active: bool) -> Callable[[ChainLog], None]:
        def handle(log: ChainLog) -> None:
            key = {"address": log.args["oracle"]}
            old = self.journal.get("oracles", key)
            values = {"active": active, "updated_block": log.block}
            if old is None:
                values["url"] = ""
            self.journal.put("oracles", key, values, log.block, previous=old)
        return handle

    def _oracle_url(self, log: ChainLog) -> None:
        key = {"address": log.args["oracle"]}
        old = self.journal.get("oracles", key)
        values = {"url": log.args["url"], "updated_block": log.block}
        if old is None:
            values["active"] = True
        self.journal.put("oracles", key, values, log.block, previous=old)

    def _report_submitted(self, log: ChainLog) -> None:
        a = log.args
        report = a["report"]
        digest = a["digest"]
        self._tx_digest[log.tx_hash] = digest
        penalties = [{"account": p["account"], "amount": str(p["amount"])} for p in a["penalties"]]
        self.journal.put("reports", {"digest": digest}, {
            "epoch": int(a["epoch"]), "status": IndexedReportStatus.PENDING.value, "previous_root": report["previousRoot"],
            "rewards_root": report["rewardsRoot"], "requests_hash": report["requestsHash"],
            "penalties_hash": report["penaltiesHash"], "emission": str(report["emission"]),
            "submitter": a["submitter"], "signers": json.dumps(list(a["signers"])),
            "penalties": json.dumps(penalties), "request_ids": "[]", "challenge_deadline": int(a["challengeDeadline"]),
            "challenger": None, "challenge_reason": None, "submitted_block": log.block,
            "submitted_tx": log.tx_hash, "finalized_block": None, "updated_block": log.block,
        }, log.block)

    def _update_report(self, log: ChainLog, values: dict[str, Any]) -> None:
        key = {"digest": log.args["digest"]}
        old = self.journal.get("reports", key)
        if old is not None:
            self.journal.put("reports", key, {**values, "updated_block": log.block}, log.block, previous=old)

    def _report_status(self, status: str) -> Callable[[ChainLog], None]:
        def handle(log: ChainLog) -> None:
            self._update_report(log, {"status": status})
        return handle

    def _report_challenged(self, log: ChainLog) -> None:
        self._update_report(log, {"status": IndexedReportStatus.CHALLENGED.value, "challenger": log.args["challenger"],
                                  "challenge_reason": log.args["reason"]})

    def _challenge_resolved(self, log: ChainLog) -> None:
        if not log.args["upheld"]:
            self._update_report(log, {"status": IndexedReportStatus.PENDING.value})

    def _window_extended(self, log: ChainLog) -> None:
        """A pause moved the pending report's challenge deadline (OracleHub freezes the window)."""
        self._update_report(log, {"challenge_deadline": int(log.args["deadline"])})

    def _report_finalized(self, log: ChainLog) -> None:
        self._tx_digest[log.tx_hash] = log.args["digest"]
        self._update_report(log, {"status": IndexedReportStatus.FINAL.value, "finalized_block": log.block})

    # ------------------------------------------------------------------ rewards and stake

    def _claimed(self, log: ChainLog) -> None:
        a = log.args
        key = {"account": a["account"], "token": a["token"]}
        old = self.journal.get("claims", key)
        self.journal.put("claims", key, {"claimed": str(a["cumulativeClaimed"]),
                                         "claims": (old["claims"] if old else 0) + 1,
                                         "updated_block": log.block}, log.block, previous=old)

    def _stake(self, log: ChainLog, change: Callable[[dict[str, int]], None]) -> None:
        key = {"account": log.args["account"]}
        old = self.journal.get("stakes", key)
        state = {name: int(old[name]) if old else 0 for name in ("bonded", "unbonding", "locked", "slashed")}
        state["release_at"] = old["release_at"] if old else 0
        change(state)
        values = {name: str(state[name]) for name in ("bonded", "unbonding", "locked", "slashed")}
        self.journal.put("stakes", key, {**values, "release_at": state["release_at"], "updated_block": log.block},
                         log.block, previous=old)

    def _staked(self, log: ChainLog) -> None:
        self._stake(log, lambda s: s.update(bonded=int(log.args["bonded"])))

    def _unstake_requested(self, log: ChainLog) -> None:
        def change(s: dict[str, int]) -> None:
            s["bonded"] = max(0, s["bonded"] - int(log.args["amount"]))
            s["unbonding"] = int(log.args["unbonding"])
            s["release_at"] = int(log.args["releaseAt"])
        self._stake(log, change)

    def _withdrawn(self, log: ChainLog) -> None:
        def change(s: dict[str, int]) -> None:
            s["unbonding"] = max(0, s["unbonding"] - int(log.args["amount"]))
            s["release_at"] = 0
        self._stake(log, change)

    def _slashed(self, log: ChainLog) -> None:
        def change(s: dict[str, int]) -> None:
            # The event carries what is left: a penalty spares the lock, a bond slash does not.
            s["bonded"] = int(log.args["bonded"])
            s["unbonding"] = int(log.args["unbonding"])
            s["slashed"] += int(log.args["amount"])
        self._stake(log, change)

    def _lock_set(self, log: ChainLog) -> None:
        self._stake(log, lambda s: s.update(locked=int(log.args["amount"])))
