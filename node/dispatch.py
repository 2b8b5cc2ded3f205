"""Dispatch: follow FlexMarket requests for the node's zones, decide, commit, curtail, restore.

Requests are read from FlexMarket's RequestOpened / RequestCancelled events by the shared chain
follower (protocol.follower: bounded block ranges, `confirmations` blocks deep, a cursor kept in
the node's database so a restarted node resumes where it stopped, reorg detection by block hash).
A commitment made for a request whose block is later reorganised away is withdrawn: its
participation is marked `withdrawn` (restoring the device if its window had started) and it is
never applied. For each new request a policy decides, per device,
whether and how much to commit (price, the device's current flexibility, a cap per device, an EV's
departure needs); the node signs a Commitment per participating device and queues it for every
oracle. At the window's start it applies the setpoints, at its end it restores; every decision is
logged with its reason and kept in the database.

A device that does not answer when a request arrives (a real driver still connecting after a
start, or gone for a while) is declined for now and kept in the `reconsider` table: each `step`
decides for it again (every `retry_seconds`) while commitments are still accepted (`min_lead_seconds`
before the gate closure); once it answers it is committed or declined for good, and it is dropped
when the gate is too close. A device is committed at most once per request (the participation row).

A commitment is an offer (issue 14): the owner's minimum price per kWh for the confident part and,
with `extra_share_bps`, a less certain tranche at `extra_premium_bps` above it (never above the
buyer's ceiling); for a request that pays availability (RequestAvailability) it also asks the owner's
`min_availability_price_per_kwh` per kW per hour, and declines a request whose availability ceiling
is below it. For a request the market clears (its gate closes before its start), the node
curtails ONLY what the request's on-chain allocation accepted for each device: after the
AllocationPosted event it fetches the device's leaf and proof from an oracle and checks them against
the event's root (protocol.clearing.verify_acceptance); a device without a verified acceptance by
the window's start is not curtailed ("not_accepted"), whatever an oracle says.

The site's offers to one request add up to at most its tested capability (node.capability: what the
oracles say they will cap it at when they clear), the devices decided first keeping theirs.

A capability test (a request opened by the manifest's test budget account, protocol.capability) is
not an offer: the node signs no commitment and asks no price. A node with a site meter records each
of its devices in the test's zone as a participation for the whole capacity (so its setpoint is
0 W); once the gate block exists it computes the test draw for its site alone
(protocol.capability.is_tested): a tested site's devices are dispatched to 0 W at the start and
restored at the end by the same code as any commitment, the others are marked `not_tested` and
never touched. A node without a site meter is not enrolled and sits tests out.

A utility's OpenADR event (node.ven, the node as a VEN of an external VTN) is planned here too, as
`utility_windows` (per event interval and device), and applied and restored by `step` through the
same `curtail` as a commitment. **Counted once:** a device has one setpoint at a time. Where a
negawatt request and a utility event both take a device in overlapping windows, the node applies
the larger of the two reductions once (from the same reference draw) and the overlap belongs to
whichever held the device first: a window the utility's event already takes is not offered to a
negawatt request (declined, "the utility's event ... already takes the device"; with a site meter,
any device of the site, since the oracles count a site's reduction once), and a utility window that
arrives on a device already committed keeps the request's id in `overlap_request`. What the oracles
see: they settle negawatt requests from the signed meter readings alone, so the node never commits
for a window the utility holds, and for an overlap recorded with `overlap_request` the Wh are the
request's; the usage the node reports to the VTN is the same metered energy, not a second claim.
"""

from __future__ import annotations

import logging
import sqlite3

import httpx
import threading
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from node.devices.interface import Device, DeviceUnavailable
from node.outbox import Outbox
from node.own_baseline import recent_window_w
from protocol.events import EventDecoder
from protocol.follower import Batch, Cursor, Follower, Rollback
from protocol.capability import CapabilityRules, is_tested
from protocol.clearing import verify_acceptance
from protocol.holdout import is_held_out
from protocol.meter import Commitment
from protocol.requests import FlexRequest, as_bytes32

log = logging.getLogger("negawatt.node.dispatch")

DISPATCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participations (
    request_id INTEGER NOT NULL,
    device TEXT NOT NULL,
    watts INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    state TEXT NOT NULL,            -- committed | accepted | not_accepted | applied | restored | cancelled
                                    -- | withdrawn | held_out | not_tested
    applied_at REAL,
    latency_ms REAL,
    recent_w INTEGER,               -- the device's recent use in the window (node.own_baseline), if known
    opened_block INTEGER,           -- the block of the request's RequestOpened event, if known
    reference_w INTEGER,            -- the draw the commitment was shed from when applied
    PRIMARY KEY (request_id, device)
);
CREATE TABLE IF NOT EXISTS request_rules (
    request_id INTEGER PRIMARY KEY,
    holdout_bps INTEGER NOT NULL,
    gate_closure INTEGER NOT NULL,
    drawn INTEGER NOT NULL DEFAULT 0,  -- 1 once the holdout draw of this request is known
    clears INTEGER NOT NULL DEFAULT 0,  -- 1: the market clears it; curtail only verified acceptances
    root TEXT,                          -- its AllocationPosted root (hex), once posted
    clearing_price TEXT,                -- and its clearing price
    test INTEGER NOT NULL DEFAULT 0     -- 1: a capability test (holdout_bps is then the test's share drawn)
);
CREATE TABLE IF NOT EXISTS reconsider (  -- declined because the device did not answer: decided again once it does
    request_id INTEGER NOT NULL,
    device TEXT NOT NULL,
    request TEXT NOT NULL,              -- the request (JSON, request_to_json), for deciding again
    PRIMARY KEY (request_id, device)
);
CREATE TABLE IF NOT EXISTS utility_windows (  -- a utility's OpenADR event, per interval and device (node.ven)
    event_id TEXT NOT NULL,
    interval_id INTEGER NOT NULL,
    device TEXT NOT NULL,
    program TEXT NOT NULL,
    watts INTEGER NOT NULL,             -- the reduction asked of this device
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    state TEXT NOT NULL,                -- planned | applied | restored | withdrawing | cancelled
    reference_w INTEGER,                -- the draw the reduction is measured from (set when applied)
    overlap_request INTEGER,            -- the negawatt request that holds the device in this window, if any:
                                        -- the overlap's Wh are that request's (the module's "counted once" rule)
    note TEXT,
    PRIMARY KEY (event_id, interval_id, device)
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    request_id INTEGER NOT NULL,
    device TEXT,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


Request = FlexRequest  # the node's name for the shared request type (protocol.requests)


UNAVAILABLE = "device unavailable"  # the reason prefix of a decline the node reconsiders (Dispatcher)


def request_to_json(request: FlexRequest) -> str:
    """A request as JSON, kept with a device to reconsider (the fields decide and commit read)."""
    return json.dumps({"request_id": request.request_id, "zone": request.zone, "start": request.start,
                       "end": request.end, "target_w": request.target_w, "price_per_kwh": request.price_per_kwh,
                       "payment_token": request.payment_token, "buyer": request.buyer,
                       "max_budget": str(request.max_budget), "opened_block": request.opened_block,
                       "holdout_bps": request.holdout_bps, "gate_closure": request.gate_closure,
                       "availability_ceiling": str(request.availability_ceiling)})


def request_from_json(text: str) -> FlexRequest:
    """The request `request_to_json` wrote."""
    data = json.loads(text)
    return FlexRequest(**{**data, "max_budget": int(data["max_budget"]),
                          "availability_ceiling": int(data["availability_ceiling"])})


@dataclass(frozen=True)
class Policy:
    """When and how much the owner lets the node curtail."""

    min_price_per_kwh: int = 0
    max_share_bps: int = 8_000  # at most this share of a device's capacity
    min_commit_w: int = 100
    min_lead_seconds: int = 5  # commitments must reach the oracles before the start
    extra_share_bps: int = 0  # share of each commitment offered as the less certain tranche
    extra_premium_bps: int = 5_000  # that tranche's price above min_price_per_kwh (capped at the ceiling)
    min_availability_price_per_kwh: int = 0  # per kW per hour, for a request that pays availability


def offer_tranches(policy: Policy, request: FlexRequest, watts: int) -> tuple[int, int, int, int]:
    """(watts, min price, extra watts, extra min price) of the offer for `watts` committed: the
    confident part at the owner's minimum price, the rest (extra_share_bps of it) at the premium,
    capped at the request's ceiling. The node's minimum is already known to be within the ceiling."""
    extra = watts * policy.extra_share_bps // 10_000
    if extra == 0 or extra == watts:
        return watts, policy.min_price_per_kwh, 0, 0
    premium = policy.min_price_per_kwh * (10_000 + policy.extra_premium_bps) // 10_000
    return watts - extra, policy.min_price_per_kwh, extra, min(request.price_per_kwh, premium)


def policy_availability(policy: Policy, request: FlexRequest) -> int:
    """The availability price the offer asks (per kW per hour): the owner's minimum for a request
    that pays availability, 0 for one that does not (the owner then sells on utilisation alone)."""
    return policy.min_availability_price_per_kwh if request.availability_ceiling > 0 else 0


@dataclass
class NodeDevice:
    """A registered device the node controls: its driver, key and on-chain identity."""

    address: str
    key: bytes
    driver: Device
    zone: int
    capacity_w: int


def setpoint_w(power_now_w: int, committed_w: int, recent_w: int | None) -> int:
    """The most a device may draw in the window to deliver `committed_w`.

    The oracles measure curtailment against the device's use on recent days, so with that estimate
    (node.own_baseline) the limit is `recent_w - committed_w`: a heat pump that happens to be running
    at the window's start must still come down to it. Without history, the node can only shed the
    commitment from what the device draws at the start."""
    reference = power_now_w if recent_w is None else recent_w
    return max(0, reference - committed_w)


ASK_THE_DEVICE: Any = object()  # decide(): no forecast given, ask the device's driver for one


def decide(policy: Policy, request: Request, device: NodeDevice, now: float,
           recent_w: int | None = None, forecast_w: int | None = ASK_THE_DEVICE) -> tuple[int, str]:
    """(watts to commit, reason). 0 watts means the device sits this request out, for that reason.

    `recent_w`, the device's average draw in this window on recent days (node.own_baseline), caps
    the commitment: the oracles measure curtailment against those days, so promising more than
    them would only be paid less and risk a penalty. `forecast_w` is the driver's
    `forecast_flexibility_w` of the window when the caller already has it (a day-ahead forecast
    asks for all its hours in one pass); by default the driver is asked."""
    if request.price_per_kwh < policy.min_price_per_kwh:
        return 0, f"price {request.price_per_kwh} below the minimum {policy.min_price_per_kwh}"
    if 0 < request.availability_ceiling < policy.min_availability_price_per_kwh:
        return 0, (f"availability price {request.availability_ceiling} below the minimum "
                   f"{policy.min_availability_price_per_kwh}")
    if request.gate_time - now < policy.min_lead_seconds:
        return 0, "too close to the gate closure to commit" if request.gate_time < request.start \
            else "too close to the start to commit"
    if device.zone != request.zone:
        return 0, "other zone"
    try:  # a device that does not answer makes no commitment
        device.driver.advance(now)
        cap = device.capacity_w * policy.max_share_bps // 10_000
        forecast = device.driver.forecast_flexibility_w(request.start, request.end) \
            if forecast_w is ASK_THE_DEVICE else forecast_w
        if forecast is not None:  # a simulator can play the window forward (constraints included)
            flexible = forecast
            watts = min(flexible, cap)
        else:  # a real device: what it could shed now, within its departure needs
            flexible = device.driver.flexibility_w(now)
            watts = min(flexible, cap)
            keep = device.driver.minimum_power_to_meet_departure(now)
            if keep is not None:
                watts = min(watts, max(0, device.driver.power_w() - keep))
    except DeviceUnavailable as error:
        return 0, f"{UNAVAILABLE}: {error}"
    history = ""
    if recent_w is not None:
        history = f", recent use in this window {recent_w} W"
        watts = min(watts, recent_w)
    if watts < policy.min_commit_w:
        return 0, f"only {watts} W flexible in the window (minimum {policy.min_commit_w} W{history})"
    return watts, f"commits {watts} W (flexible {flexible} W, cap {cap} W{history})"


def fetch_json(url: str, timeout: float = 3.0) -> tuple[int, Any]:
    """(HTTP status, JSON body or None) of a GET; (0, None) when the peer is unreachable. The body is
    read only up to MAX_ACCEPTANCE_BYTES (a proof has at most 64 siblings)."""
    try:
        with httpx.stream("GET", url, timeout=timeout) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ACCEPTANCE_BYTES:
                    return 0, None
        return response.status_code, json.loads(body) if body else None
    except (httpx.HTTPError, ValueError):
        return 0, None


MAX_ACCEPTANCE_BYTES = 16_384


class _CursorInKv:
    """The follower's cursor in the dispatch database's kv table (block and recent hashes)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def load(self) -> Cursor | None:
        """The stored cursor; a cursor from before hashes were kept has none (checked from the next range)."""
        row = self.db.execute("SELECT value FROM kv WHERE key = 'dispatch.cursor'").fetchone()
        if row is None:
            return None
        hashes = self.db.execute("SELECT value FROM kv WHERE key = 'dispatch.hashes'").fetchone()
        return Cursor(int(row[0]), {int(n): h for n, h in json.loads(hashes[0]).items()} if hashes else {})

    def save(self, cursor: Cursor) -> None:
        """Store the cursor and its hashes in one transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES ('dispatch.cursor', ?)",
                            (str(cursor.block),))
            self.db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES ('dispatch.hashes', ?)",
                            (json.dumps({str(n): h for n, h in sorted(cursor.hashes.items())}),))


class RequestWatcher:
    """New FlexMarket requests (and cancellations) from the chain, resuming from a stored cursor.

    A reorg that abandons blocks the watcher had read calls `on_rollback(fork_block)` (the
    dispatcher withdraws the commitments made for requests opened after the fork)."""

    def __init__(self, web3: Any, market: Any, db: sqlite3.Connection, start_block: int, confirmations: int = 2,
                 block_range: int = 2_000, on_rollback: Callable[[int], None] | None = None):
        self.web3 = web3
        self.market = market
        self.db = db
        self.on_rollback = on_rollback
        decoder = EventDecoder.for_contract(market, "FlexMarket",
                                            events=("RequestOpened", "RequestRules", "RequestAvailability",
                                                    "AllocationPosted", "RequestCancelled"))
        self.follower = Follower(web3, decoder, _CursorInKv(db), start_block, confirmations=confirmations,
                                 max_range=block_range)
        self._opened: list[FlexRequest] = []
        self._cancelled: list[tuple[int, int]] = []  # (block, request id)
        self._allocated: list[tuple[int, int, bytes, int]] = []  # (block, request id, root, clearing price)

    def cursor(self) -> int:
        """The last block whose events were processed."""
        return self.follower.cursor().block

    def poll(self) -> tuple[list[FlexRequest], list[int]]:
        """(opened requests, cancelled request ids) in confirmed blocks after the cursor; the posted
        allocations read are collected for `allocations()`.

        What was read before an RPC failure is kept for the next poll (the cursor already moved)."""
        self.follower.poll(self)
        opened, cancelled = self._opened, [request_id for _block, request_id in self._cancelled]
        self._opened, self._cancelled = [], []
        return opened, cancelled

    def allocations(self) -> list[tuple[int, bytes, int]]:
        """(request id, root, clearing price) of the AllocationPosted events read since the last call."""
        allocated, self._allocated = self._allocated, []
        return [(request_id, root, price) for _block, request_id, root, price in allocated]

    # the follower's projection: collect what this poll found, hand rollbacks to the dispatcher

    def apply(self, batch: Batch) -> None:
        """Collect the opened and cancelled requests of a confirmed range."""
        for event in batch.events:
            if event.name == "RequestOpened":
                self._opened.append(FlexRequest.from_event(event.args, event.block))
            elif event.name == "RequestRules":  # emitted right after its RequestOpened, in the same transaction
                request_id = int(event.args["requestId"])
                self._opened = [r.with_rules(event.args) if r.request_id == request_id else r for r in self._opened]
            elif event.name == "RequestAvailability":  # likewise, for a request that pays availability
                request_id = int(event.args["requestId"])
                self._opened = [r.with_availability(event.args) if r.request_id == request_id else r
                                for r in self._opened]
            elif event.name == "RequestCancelled":
                self._cancelled.append((event.block, int(event.args["requestId"])))
            elif event.name == "AllocationPosted":
                self._allocated.append((event.block, int(event.args["requestId"]), as_bytes32(event.args["root"]),
                                        int(event.args["clearingPrice"])))

    def rollback(self, rollback: Rollback) -> None:
        """Blocks after `rollback.fork` were reorganised away: withdraw what was made from them."""
        log.warning("reorg: blocks after %d abandoned (the watcher had read up to %d)", rollback.fork,
                    rollback.abandoned)
        self._opened = [r for r in self._opened if (r.opened_block or 0) <= rollback.fork]
        self._cancelled = [(block, request_id) for block, request_id in self._cancelled if block <= rollback.fork]
        self._allocated = [item for item in self._allocated if item[0] <= rollback.fork]
        if self.on_rollback is not None:
            self.on_rollback(rollback.fork)


@dataclass
class Dispatcher:
    """Commits, applies and restores curtailment for the node's devices."""

    db: sqlite3.Connection
    outbox: Outbox
    devices: list[NodeDevice]
    policy: Policy
    chain_id: int
    registry: str
    oracles: Callable[[], list[str]]
    clock: Callable[[], float] = time.time
    site: str | None = None  # the node's site meter: the unit the holdout draws (else each device is its own)
    seed_of: Callable[[int], bytes | None] = lambda gate_closure: None  # protocol.holdout.GateSeeds.seed
    tests: CapabilityRules = field(default_factory=CapabilityRules)  # who opens capability tests (manifest)
    capability: Callable[[], int | None] = lambda: None  # the site's cap on offers (node.capability), None: none
    fetch: Callable[[str], tuple[int, Any]] = field(default_factory=lambda: fetch_json)  # GET -> (status, JSON)
    latencies_ms: list[float] = field(default_factory=list)
    retry_seconds: float = 2.0  # between attempts to apply a setpoint on a device that does not answer
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _retry_at: dict = field(default_factory=dict)  # (request, device) -> monotonic time of the next attempt

    def _record(self, request_id: int, device: str | None, decision: str, reason: str) -> None:
        self.db.execute("INSERT INTO decisions (at, request_id, device, decision, reason) VALUES (?, ?, ?, ?, ?)",
                        (self.clock(), request_id, device, decision, reason))
        log.info("request %d, device %s: %s (%s)", request_id, device or "-", decision, reason)

    def on_request(self, request: Request) -> int:
        """Decide for every device; sign and queue the commitments. Returns the watts committed."""
        now = self.clock()
        committed = 0
        if self.tests.is_test(request.buyer):
            self.on_test(request)
            return 0
        with self._lock:
            if request.holdout_bps > 0 or request.clears:
                self.db.execute("INSERT OR IGNORE INTO request_rules (request_id, holdout_bps, gate_closure, drawn, "
                                "clears) VALUES (?, ?, ?, ?, ?)", (request.request_id, request.holdout_bps,
                                                                   request.gate_time, int(request.holdout_bps == 0),
                                                                   int(request.clears)))
            for device in self.devices:
                if device.zone != request.zone:
                    continue
                committed += self._consider(request, device, now)
        return committed

    def on_test(self, request: Request) -> int:
        """A capability test (see the module): every device of the zone takes part for its whole
        capacity if the draw tests the site; nothing is signed. Returns how many devices take part."""
        with self._lock:
            if self.site is None:
                self._record(request.request_id, None, "not_enrolled", "capability test: this node has no site meter")
                return 0
            self.db.execute("INSERT OR IGNORE INTO request_rules (request_id, holdout_bps, gate_closure, drawn, clears, "
                            "test) VALUES (?, ?, ?, 0, 0, 1)", (request.request_id, self.tests.test_bps,
                                                               request.gate_time))
            devices = [d for d in self.devices if d.zone == request.zone]
            for device in devices:
                self.db.execute("INSERT OR IGNORE INTO participations (request_id, device, watts, start, end, state, "
                                "opened_block) VALUES (?, ?, ?, ?, ?, 'committed', ?)",
                                (request.request_id, device.address, device.capacity_w, request.start, request.end,
                                 request.opened_block))
                self._record(request.request_id, device.address, "capability_test",
                             f"site {self.site} enrolled: curtailed to 0 W from {request.start} to {request.end} "
                             f"if the draw tests it ({self.tests.test_bps} bps)")
            return len(devices)

    def _consider(self, request: Request, device: NodeDevice, now: float) -> int:
        """Decide for one device (under the lock): commit it (signed, queued for the oracles) or
        decline it with the reason; a device that does not answer is kept for reconsideration.
        Returns the watts committed."""
        known = self.db.execute("SELECT 1 FROM participations WHERE request_id = ? AND device = ?"
                                " AND state != 'withdrawn'", (request.request_id, device.address)).fetchone()
        if known:  # committed once already: never offered twice
            self.db.execute("DELETE FROM reconsider WHERE request_id = ? AND device = ?",
                            (request.request_id, device.address))
            return 0
        recent = recent_window_w(self.outbox, device.address, request.start, request.end)
        watts, reason = decide(self.policy, request, device, now, recent)
        # one request per window: per device, or with a site meter per site (the site meter
        # verifies the whole premises, so the oracles count its reduction once: oracle.accepted)
        busy = self.db.execute(
            "SELECT request_id FROM participations WHERE (device = ? OR ?) AND request_id != ? AND state IN "
            "('committed', 'accepted', 'applied') AND start < ? AND end > ?",
            (device.address, self.site is not None, request.request_id, request.end,
             request.start)).fetchone()
        if watts and busy:
            watts, reason = 0, f"already committed to request {busy[0]} in an overlapping window"
        utility = self.db.execute(  # counted once: a window a utility's event already takes is not offered
            "SELECT event_id, program FROM utility_windows WHERE (device = ? OR ?) AND state IN ('planned', "
            "'applied') AND start < ? AND end > ?",
            (device.address, self.site is not None, request.end, request.start)).fetchone()
        if watts and utility:
            watts, reason = 0, (f"the utility's event {utility[0]} (programme {utility[1]}) already takes the "
                                f"device in an overlapping window")
        if watts and self.site is not None:
            watts, reason = self._capped(request, device, watts, reason)
        if not watts:
            waiting = self.db.execute("SELECT 1 FROM reconsider WHERE request_id = ? AND device = ?",
                                      (request.request_id, device.address)).fetchone()
            if reason.startswith(UNAVAILABLE):
                if not waiting:  # recorded once; decided again at each step while the gate is open
                    self.db.execute("INSERT INTO reconsider (request_id, device, request) VALUES (?, ?, ?)",
                                    (request.request_id, device.address, request_to_json(request)))
                    self._record(request.request_id, device.address, "declined",
                                 reason + "; reconsidered once it answers, until the gate closure")
                return 0
            if waiting:
                self.db.execute("DELETE FROM reconsider WHERE request_id = ? AND device = ?",
                                (request.request_id, device.address))
            self._record(request.request_id, device.address, "declined", reason)
            return 0
        self.db.execute("DELETE FROM reconsider WHERE request_id = ? AND device = ?",
                        (request.request_id, device.address))
        first, price, extra, extra_price = offer_tranches(self.policy, request, watts)
        availability = policy_availability(self.policy, request)
        commitment = Commitment(request.request_id, device.address, first, price, extra, extra_price,
                                availability).signed(device.key, self.chain_id, self.registry)
        self.outbox.add_commitment(commitment, self.oracles())
        self.db.execute("INSERT OR REPLACE INTO participations (request_id, device, watts, start, end, "
                        "state, recent_w, opened_block) VALUES (?, ?, ?, ?, ?, 'committed', ?, ?)",
                        (request.request_id, device.address, watts, request.start, request.end, recent,
                         request.opened_block))
        self._record(request.request_id, device.address, "committed",
                     reason + (f"; offered {first} W at {price} and {extra} W at {extra_price} per kWh"
                               if extra else f"; offered at {price} per kWh"))
        return watts

    def _capped(self, request: Request, device: NodeDevice, watts: int, reason: str) -> tuple[int, str]:
        """`watts` within what the site's tested capability leaves after the site's other devices'
        offers to this request (node.capability; the clearing applies the same cap)."""
        cap = self.capability()
        if cap is None:
            return watts, reason
        (used,) = self.db.execute("SELECT COALESCE(SUM(watts), 0) FROM participations WHERE request_id = ? AND "
                                  "device != ? AND state != 'withdrawn'", (request.request_id,
                                                                           device.address)).fetchone()
        left = max(0, cap - int(used))
        if watts <= left:
            return watts, reason
        if left < self.policy.min_commit_w:
            return 0, f"the site's tested capability ({cap} W) is taken by its other offers ({used} W)"
        return left, f"{reason}; capped at {left} W by the site's tested capability ({cap} W, {used} W offered)"

    def _reconsider(self, now: float) -> int:
        """Decide again for the devices declined because they did not answer, while commitments
        are still accepted; drop those whose gate is too close. Returns the watts committed."""
        committed = 0
        for request_id, address, text in self.db.execute(
                "SELECT request_id, device, request FROM reconsider ORDER BY request_id, device").fetchall():
            request = request_from_json(text)
            if request.gate_time - now < self.policy.min_lead_seconds:
                self.db.execute("DELETE FROM reconsider WHERE request_id = ? AND device = ?", (request_id, address))
                self._retry_at.pop(("reconsider", request_id, address), None)
                self._record(request_id, address, "declined",
                             "the device did not answer before the gate closure; no longer reconsidered")
                continue
            if time.monotonic() < self._retry_at.get(("reconsider", request_id, address), 0):
                continue
            device = next((d for d in self.devices if d.address == address), None)
            if device is None:  # no longer one of the node's devices
                self.db.execute("DELETE FROM reconsider WHERE request_id = ? AND device = ?", (request_id, address))
                continue
            watts = self._consider(request, device, now)
            committed += watts
            self._retry_at[("reconsider", request_id, address)] = time.monotonic() + self.retry_seconds
            if watts:
                log.info("request %d, device %s: reconsidered once it answered", request_id, address)
        return committed

    def reconsidering(self) -> list[tuple[int, str]]:
        """(request id, device) of the declined-for-unavailability devices still reconsidered."""
        return self.db.execute("SELECT request_id, device FROM reconsider ORDER BY request_id, device").fetchall()

    def on_cancelled(self, request_id: int) -> None:
        """Forget a cancelled request (restoring devices if it had started)."""
        with self._lock:
            self.db.execute("DELETE FROM reconsider WHERE request_id = ?", (request_id,))
            rows = self.db.execute("SELECT device, state FROM participations WHERE request_id = ?",
                                   (request_id,)).fetchall()
            for address, state in rows:
                if state == "applied":
                    self._restore(request_id, address)
                self.db.execute("UPDATE participations SET state = 'cancelled' WHERE request_id = ? AND device = ?",
                                (request_id, address))
                self._record(request_id, address, "cancelled", "the buyer cancelled the request")

    def on_rollback(self, fork_block: int) -> int:
        """Withdraw the commitments made for requests opened after `fork_block` (reorganised away):
        restore a device whose window had started, mark the participation `withdrawn` so it is never
        applied. Returns how many were withdrawn."""
        with self._lock:
            for request_id, address, text in self.db.execute("SELECT request_id, device, request FROM reconsider"
                                                             ).fetchall():
                if (request_from_json(text).opened_block or 0) > fork_block:
                    self.db.execute("DELETE FROM reconsider WHERE request_id = ? AND device = ?",
                                    (request_id, address))
            rows = self.db.execute("SELECT request_id, device, state FROM participations WHERE opened_block > ?"
                                   " AND state IN ('committed', 'accepted', 'applied')", (fork_block,)).fetchall()
            for request_id, address, state in rows:
                self._retry_at.pop((request_id, address), None)
                if state == "applied":
                    self._restore(request_id, address)
                self.db.execute("UPDATE participations SET state = 'withdrawn' WHERE request_id = ? AND device = ?",
                                (request_id, address))
                self._record(request_id, address, "withdrawn",
                             f"the request's block was reorganised away (fork at block {fork_block})")
        return len(rows)

    def resume_applied(self) -> int:
        """After a restart: apply again the setpoints of windows still running (the device driver was
        rebuilt and may have lost them); returns how many."""
        now = self.clock()
        with self._lock:
            rows = self.db.execute("SELECT request_id, device, watts, recent_w FROM participations "
                                   "WHERE state = 'applied' AND start <= ? AND end > ?", (now, now)).fetchall()
            for request_id, address, watts, recent in rows:
                device = self._device(address)
                try:
                    device.driver.advance(now)
                except DeviceUnavailable as error:  # a real device not connected yet: apply once it answers
                    self.db.execute("UPDATE participations SET state = 'committed' WHERE request_id = ? AND device = ?",
                                    (request_id, address))
                    self._record(request_id, address, "unavailable", f"after a restart: {error}")
                    continue
                if device.driver.setpoint_w is not None:
                    continue  # resumed with its setpoint (node.device_state)
                target = setpoint_w(device.driver.power_w(), watts, recent)
                result = device.driver.apply_setpoint(target, f"request {request_id}")
                self._record(request_id, address, "reapplied",
                             f"after a restart: setpoint {target} W, consuming {result.power_w} W")
            utility = self.db.execute("SELECT event_id, device, watts, reference_w FROM utility_windows WHERE state = "
                                      "'applied' AND start <= ? AND end > ? AND reference_w IS NOT NULL",
                                      (now, now)).fetchall()
            for event_id, address, watts, reference in utility:  # a utility event's running windows likewise
                device = self._device(address)
                try:
                    device.driver.advance(now)
                    if device.driver.setpoint_w is None:
                        target, _result = self.curtail(device, watts, reference, f"utility event {event_id}")
                        log.info("utility event %s, device %s: setpoint %d W applied again after a restart",
                                 event_id, address, target)
                except DeviceUnavailable as error:  # not curtailed for the rest of this window
                    log.warning("utility event %s, device %s: not applied again after a restart (%s)", event_id,
                                address, error)
        return len(rows) + len(utility)

    def step(self) -> int:
        """Apply setpoints whose window started and restore those whose window ended; returns how many
        setpoints changed."""
        now = self.clock()
        with self._lock:
            self._reconsider(now)
            self._draw_holdouts(now)
            self._verify_acceptances(now)
            undrawn = {row[0] for row in self.db.execute("SELECT request_id FROM request_rules WHERE drawn = 0")}
            cleared = {row[0] for row in self.db.execute("SELECT request_id FROM request_rules WHERE clears = 1")}
            due = self.db.execute("SELECT request_id, device, watts, start, recent_w, state FROM participations "
                                  "WHERE state IN ('committed', 'accepted') AND start <= ? AND end > ?",
                                  (now, now)).fetchall()
            # not before the node knows it is dispatched; for a cleared request, only a verified acceptance
            due = [row[:5] for row in due if row[0] not in undrawn
                   and (row[5] == "accepted" if row[0] in cleared else row[5] == "committed")]
            for request_id, address, watts, start, recent in due:
                device = self._device(address)
                if time.monotonic() < self._retry_at.get((request_id, address), 0):
                    continue
                try:
                    held = self._utility_hold(address, now)  # a utility window already curtails it: one setpoint
                    reference = held[1] if held else self._utility_reference(address) or \
                        self._reference(device, now, recent)
                    target, result = self.curtail(device, max(watts, held[0] if held else 0), reference,
                                                  f"request {request_id}")
                except DeviceUnavailable as error:  # not curtailing; try again while the window runs
                    if (request_id, address) not in self._retry_at:
                        self._record(request_id, address, "unavailable", f"setpoint not applied: {error}")
                    self._retry_at[(request_id, address)] = time.monotonic() + self.retry_seconds
                    continue
                self._retry_at.pop((request_id, address), None)
                latency = (self.clock() - start) * 1000
                self.latencies_ms.append(latency)
                self.db.execute("UPDATE participations SET state = 'applied', applied_at = ?, latency_ms = ?, "
                                "reference_w = ? WHERE request_id = ? AND device = ?",
                                (self.clock(), latency, reference, request_id, address))
                self._record(request_id, address, "applied",
                             f"setpoint {target} W, consuming {result.power_w} W"
                             + ("" if result.honoured else f"; not honoured: {result.reason}"))
            ended = self.db.execute("SELECT request_id, device, state FROM participations "
                                    "WHERE state IN ('committed', 'accepted', 'applied') AND end <= ?",
                                    (now,)).fetchall()
            for request_id, address, state in ended:
                self._retry_at.pop((request_id, address), None)
                if request_id in cleared and state == "committed":  # never accepted: nothing to restore
                    self.db.execute("UPDATE participations SET state = 'not_accepted' WHERE request_id = ? AND "
                                    "device = ?", (request_id, address))
                    self._record(request_id, address, "not_accepted", "no verified acceptance for this device")
                    continue
                self.db.execute("UPDATE participations SET state = 'restored' WHERE request_id = ? AND device = ?",
                                (request_id, address))
                if self._hand_back(address, now):  # a utility window still runs: its setpoint, not a restore
                    self._record(request_id, address, "restored", "the request window ended; the utility's "
                                                                  "event still curtails the device")
                    continue
                self._restore(request_id, address)
                self._record(request_id, address, "restored", "the request window ended")
            changed = self._step_utility(now)
        return len(due) + len(ended) + changed

    # -- the one curtailment path, and a utility's OpenADR events (node.ven) ---------------------------

    def curtail(self, device: NodeDevice, watts: int, reference_w: int, reason: str) -> tuple[int, Any]:
        """Shed `watts` from `reference_w`: the device's setpoint becomes max(0, reference - watts).
        (setpoint W, SetpointResult). Both a negawatt commitment and a utility's event go through
        here; DeviceUnavailable when the device does not answer."""
        device.driver.advance(self.clock())
        target = max(0, reference_w - watts)
        return target, device.driver.apply_setpoint(target, reason)

    def _reference(self, device: NodeDevice, now: float, recent_w: int | None) -> int:
        """What a reduction is shed from: the device's recent use in the window when known (the
        oracles' baseline, see setpoint_w), else its draw now."""
        if recent_w is not None:
            return recent_w
        device.driver.advance(now)
        return device.driver.power_w()

    def _utility_hold(self, address: str, now: float) -> tuple[int, int] | None:
        """(watts, reference W) of the largest applied utility window on the device at `now`."""
        return self.db.execute("SELECT watts, reference_w FROM utility_windows WHERE device = ? AND state = "
                               "'applied' AND start <= ? AND end > ? AND reference_w IS NOT NULL ORDER BY watts DESC",
                               (address, now, now)).fetchone()

    def _utility_reference(self, address: str) -> int | None:
        """The reference of a utility window still applied on the device (one that ends at this very
        step included): a window taking over from it sheds from the same draw, not the curtailed one."""
        row = self.db.execute("SELECT reference_w FROM utility_windows WHERE device = ? AND state = 'applied' AND "
                              "reference_w IS NOT NULL ORDER BY end DESC", (address,)).fetchone()
        return row[0] if row else None

    def _request_hold(self, address: str, now: float) -> tuple[int, int, int] | None:
        """(request id, watts, reference W) of the negawatt participation applied on the device at `now`."""
        return self.db.execute("SELECT request_id, watts, reference_w FROM participations WHERE device = ? AND "
                               "state = 'applied' AND start <= ? AND end > ? AND reference_w IS NOT NULL",
                               (address, now, now)).fetchone()

    def _hand_back(self, address: str, now: float) -> bool:
        """A window on the device ended: if another (a negawatt request or a utility event) still
        holds it, apply that one's reduction instead of restoring. True when one did."""
        device = self._device(address)
        hold = self._request_hold(address, now)
        held = (hold[1], hold[2], f"request {hold[0]}") if hold else None
        utility = self._utility_hold(address, now)
        if utility and (held is None or utility[0] > held[0]):
            held = (utility[0], held[1] if held else utility[1], "utility event")
        if held is None:
            return False
        try:
            target, _result = self.curtail(device, held[0], held[1], held[2])
        except DeviceUnavailable:
            return False
        log.info("device %s: %s still holds it, setpoint %d W", address, held[2], target)
        return True

    def on_utility_event(self, event_id: str, program: str, windows: list[tuple[int, int, int, int]]) -> int:
        """Plan a utility's event (node.ven): `windows` are (interval id, start, end, reduction W) for the
        whole site; the reduction is shared over the controllable devices in order, each at most its
        capacity's `max_share_bps`. A device a negawatt request already holds in an overlapping window
        keeps it: the window is recorded with `overlap_request` (the module's "counted once" rule). Known
        windows are left as they are (idempotent per poll). Returns how many device windows were new."""
        added = 0
        with self._lock:
            for interval_id, start, end, reduction_w in windows:
                left = reduction_w
                for device in self.devices:
                    if left <= 0 or device.address == self.site:
                        continue
                    watts = min(left, device.capacity_w * self.policy.max_share_bps // 10_000)
                    if watts <= 0:
                        continue
                    left -= watts
                    busy = self.db.execute("SELECT request_id FROM participations WHERE device = ? AND state IN "
                                           "('committed', 'accepted', 'applied') AND start < ? AND end > ?",
                                           (device.address, end, start)).fetchone()
                    note = (f"request {busy[0]} holds the device in this window: the overlap is counted for it "
                            f"once, at the larger reduction" if busy else None)
                    cursor = self.db.execute(
                        "INSERT OR IGNORE INTO utility_windows (event_id, interval_id, device, program, watts, start, "
                        "end, state, overlap_request, note) VALUES (?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?)",
                        (event_id, interval_id, device.address, program, watts, start, end,
                         busy[0] if busy else None, note))
                    if cursor.rowcount:
                        added += 1
                        log.info("utility event %s interval %d, device %s: %d W from %d to %d%s", event_id,
                                 interval_id, device.address, watts, start, end, f" ({note})" if note else "")
                if left > 0:
                    log.warning("utility event %s interval %d: %d W of %d W cannot be shed by this node's devices",
                                event_id, interval_id, left, reduction_w)
        return added

    def on_utility_gone(self, event_id: str) -> int:
        """The VTN no longer serves the event (deleted): its windows are cancelled, and the next
        `step` restores what it curtails (drivers are only touched by the dispatch loop). Returns
        how many windows were cancelled."""
        with self._lock:
            rows = self.db.execute("SELECT interval_id, device, state FROM utility_windows WHERE event_id = ? AND "
                                   "state IN ('planned', 'applied')", (event_id,)).fetchall()
            for interval_id, address, state in rows:
                self.db.execute("UPDATE utility_windows SET state = ? WHERE event_id = ? AND interval_id = ? AND "
                                "device = ?", ("withdrawing" if state == "applied" else "cancelled", event_id,
                                               interval_id, address))
            if rows:
                log.info("utility event %s withdrawn by the VTN: %d window(s) cancelled", event_id, len(rows))
        return len(rows)

    def _step_utility(self, now: float) -> int:
        """Apply the utility windows that started, restore those that ended (under the lock)."""
        changed = 0
        due = self.db.execute("SELECT event_id, interval_id, device, watts FROM utility_windows WHERE state = "
                              "'planned' AND start <= ? AND end > ?", (now, now)).fetchall()
        for event_id, interval_id, address, watts in due:
            device = self._device(address)
            if time.monotonic() < self._retry_at.get(("utility", event_id, interval_id, address), 0):
                continue
            try:
                hold = self._request_hold(address, now)
                reference = hold[2] if hold else self._utility_reference(address) or \
                    self._reference(device, now, None)
                if hold and hold[1] >= watts:  # the request's setpoint already sheds at least this
                    note = f"within request {hold[0]}'s setpoint ({hold[1]} W): applied once"
                else:
                    target, result = self.curtail(device, watts, reference, f"utility event {event_id}")
                    note = (f"setpoint {target} W, consuming {result.power_w} W"
                            + (f"; the larger of it and request {hold[0]}'s {hold[1]} W" if hold else "")
                            + ("" if result.honoured else f"; not honoured: {result.reason}"))
            except DeviceUnavailable as error:
                self._retry_at[("utility", event_id, interval_id, address)] = time.monotonic() + self.retry_seconds
                log.warning("utility event %s, device %s: setpoint not applied (%s)", event_id, address, error)
                continue
            self.db.execute("UPDATE utility_windows SET state = 'applied', reference_w = ?, note = COALESCE(note || "
                            "'; ', '') || ? WHERE event_id = ? AND interval_id = ? AND device = ?",
                            (reference, note, event_id, interval_id, address))
            log.info("utility event %s interval %d, device %s: applied (%s)", event_id, interval_id, address, note)
            changed += 1
        ended = self.db.execute("SELECT event_id, interval_id, device, state FROM utility_windows WHERE (state IN "
                                "('planned', 'applied') AND end <= ?) OR state = 'withdrawing'", (now,)).fetchall()
        for event_id, interval_id, address, state in ended:
            self.db.execute("UPDATE utility_windows SET state = ? WHERE event_id = ? AND interval_id = ? AND device = ?",
                            ("cancelled" if state == "withdrawing" else "restored", event_id, interval_id, address))
            if state != "planned" and not self._hand_back(address, now):  # or another window holds it
                self._restore_device(address)
            changed += 1
        return changed

    def _restore_device(self, address: str) -> None:
        device = self._device(address)
        try:
            device.driver.advance(self.clock())
            device.driver.restore()
        except DeviceUnavailable as error:
            log.warning("device %s: restore pending (%s)", address, error)

    def utility_windows(self, event_id: str | None = None) -> list[dict]:
        """The utility windows planned (all, or one event's), as dicts, for the VEN's reports and status."""
        with self._lock:  # the VEN reads from its own thread
            rows = self.db.execute("SELECT event_id, interval_id, device, program, watts, start, end, state, "
                                   "reference_w, overlap_request, note FROM utility_windows WHERE ? IS NULL OR "
                                   "event_id = ? ORDER BY event_id, interval_id, device",
                                   (event_id, event_id)).fetchall()
        keys = ("event_id", "interval_id", "device", "program", "watts", "start", "end", "state", "reference_w",
                "overlap_request", "note")
        return [dict(zip(keys, row)) for row in rows]

    def on_allocation(self, request_id: int, root: bytes, clearing_price: int) -> None:
        """Record a request's posted allocation (AllocationPosted); its acceptances are verified next."""
        with self._lock:
            self.db.execute("UPDATE request_rules SET root = ?, clearing_price = ? WHERE request_id = ?",
                            ("0x" + root.hex(), str(clearing_price), request_id))
            self._record(request_id, None, "allocation", f"posted: root 0x{root.hex()}, clearing price "
                                                         f"{clearing_price} per kWh")

    def _verify_acceptances(self, now: float) -> None:
        """For each committed device of a cleared request whose allocation is posted, fetch its leaf
        and proof from the oracles and check them against the on-chain root: a valid one makes the
        participation `accepted` with the accepted watts; every oracle answering that the device has
        no leaf makes it `not_accepted`; otherwise it is tried again after retry_seconds."""
        rows = self.db.execute(
            "SELECT p.request_id, p.device, r.root, r.clearing_price FROM participations p JOIN request_rules r "
            "ON p.request_id = r.request_id WHERE r.clears = 1 AND r.root IS NOT NULL AND p.state = 'committed' "
            "AND p.end > ?", (now,)).fetchall()
        for request_id, address, root_hex, price in rows:
            if time.monotonic() < self._retry_at.get(("accept", request_id, address), 0):
                continue
            root = bytes.fromhex(root_hex.removeprefix("0x"))
            answers = [self.fetch(f"{url.rstrip('/')}/v1/allocations/{request_id}/devices/{address}")
                       for url in self.oracles()]
            accepted = None
            for status, body in answers:
                if status == 200 and isinstance(body, dict):
                    try:
                        watts, proof = int(body["acceptedW"]), [bytes.fromhex(p.removeprefix("0x"))
                                                                 for p in body["proof"]]
                    except (KeyError, TypeError, ValueError, AttributeError):
                        continue
                    if 0 < watts and verify_acceptance(root, request_id, address, watts, int(price), proof):
                        accepted = watts
                        break
                    log.warning("request %d, device %s: an oracle served an acceptance that does not verify "
                                "against the on-chain root", request_id, address)
            if accepted is not None:
                self.db.execute("UPDATE participations SET state = 'accepted', watts = ? WHERE request_id = ? "
                                "AND device = ?", (accepted, request_id, address))
                self._record(request_id, address, "accepted",
                             f"{accepted} W accepted at {price} per kWh (proof verified against root {root_hex})")
            elif answers and all(status == 404 for status, _ in answers):
                self.db.execute("UPDATE participations SET state = 'not_accepted' WHERE request_id = ? AND "
                                "device = ?", (request_id, address))
                self._record(request_id, address, "not_accepted", "the allocation does not accept this device")
            else:
                self._retry_at[("accept", request_id, address)] = time.monotonic() + self.retry_seconds

    def _draw_holdouts(self, now: float) -> None:
        """For each request whose gate has closed, learn from the gate block whether this node's site
        (or each device, without a site meter) is held out (protocol.holdout); held-out participations
        are never applied."""
        rows = self.db.execute("SELECT request_id, holdout_bps, gate_closure, test FROM request_rules "
                               "WHERE drawn = 0 AND gate_closure <= ?", (now,)).fetchall()
        for request_id, holdout_bps, gate_closure, test in rows:
            seed = self.seed_of(gate_closure)
            if seed is None:
                continue  # no block at or after the gate yet
            self.db.execute("UPDATE request_rules SET drawn = 1 WHERE request_id = ?", (request_id,))
            for (address,) in self.db.execute("SELECT device FROM participations WHERE request_id = ? AND "
                                              "state = 'committed'", (request_id,)).fetchall():
                unit = self.site or address
                if test:  # a capability test: the test draw, not the holdout's (protocol.capability)
                    if is_tested(seed, request_id, unit, holdout_bps):
                        self._record(request_id, address, "tested", f"the capability test drew site {unit} "
                                                                    f"(seed 0x{seed.hex()})")
                    else:
                        self.db.execute("UPDATE participations SET state = 'not_tested' WHERE request_id = ? AND "
                                        "device = ?", (request_id, address))
                        self._record(request_id, address, "not_tested", f"the capability test did not draw site "
                                                                        f"{unit}: control group")
                    continue
                if is_held_out(seed, request_id, unit, holdout_bps):
                    self.db.execute("UPDATE participations SET state = 'held_out' WHERE request_id = ? AND device = ?",
                                    (request_id, address))
                    self._record(request_id, address, "held_out",
                                 f"the randomized holdout put site {unit} in the control group (seed 0x{seed.hex()})")
                else:
                    self._record(request_id, address, "dispatched", f"site {unit} drawn for dispatch")

    def _restore(self, request_id: int, address: str) -> None:
        """Restore a device; one that does not answer is restored by its driver when it answers again."""
        device = self._device(address)
        try:
            device.driver.advance(self.clock())
        except DeviceUnavailable:
            pass
        try:
            device.driver.restore()
        except DeviceUnavailable as error:
            self._record(request_id, address, "restore pending", str(error))

    def _device(self, address: str) -> NodeDevice:
        return next(d for d in self.devices if d.address == address)

    def decisions(self, request_id: int) -> list[dict]:
        """Every decision logged for a request."""
        rows = self.db.execute("SELECT at, device, decision, reason FROM decisions WHERE request_id = ? ORDER BY id",
                               (request_id,)).fetchall()
        return [{"at": at, "device": d, "decision": dec, "reason": r} for at, d, dec, r in rows]


@dataclass(frozen=True)
class Participation:
    """One device's part in one request, as the dispatch database keeps it."""

    request_id: int
    device: str
    watts: int
    state: str  # committed | applied | restored | cancelled | withdrawn
    latency_ms: float | None


def participations(db: sqlite3.Connection) -> list[Participation]:
    """Every participation in the dispatch database `db` (for status tools and the devnet)."""
    rows = db.execute("SELECT request_id, device, watts, state, latency_ms FROM participations").fetchall()
    return [Participation(*row) for row in rows]


def open_dispatch_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to a dispatch database another process owns; sqlite3.OperationalError
    if it does not exist yet."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)


def open_dispatch_db(path: str) -> sqlite3.Connection:
    """The node's dispatch database (WAL, synchronous=FULL, autocommit statements)."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(DISPATCH_SCHEMA)
    rules = {row[1] for row in db.execute("PRAGMA table_info(request_rules)")}
    for column, ddl in (("clears", "INTEGER NOT NULL DEFAULT 0"), ("root", "TEXT"), ("clearing_price", "TEXT"),
                        ("test", "INTEGER NOT NULL DEFAULT 0")):
        if column not in rules:  # databases from before the market cleared requests
            db.execute(f"ALTER TABLE request_rules ADD COLUMN {column} {ddl}")
    columns = {row[1] for row in db.execute("PRAGMA table_info(participations)")}
    if "recent_w" not in columns:  # databases from before the node kept its own baseline estimate
        db.execute("ALTER TABLE participations ADD COLUMN recent_w INTEGER")
    if "opened_block" not in columns:  # databases from before the node withdrew reorganised commitments
        db.execute("ALTER TABLE participations ADD COLUMN opened_block INTEGER")
    if "reference_w" not in columns:  # databases from before the node also served a utility's VTN
        db.execute("ALTER TABLE participations ADD COLUMN reference_w INTEGER")
    return db
