"""What the oracle knows about the chain: registered devices, flexibility requests and stakes.

`ChainView` keeps an in-memory cache of DeviceRegistry devices, FlexMarket requests and Staking
bonds (each account's bonded stake and lock, and the network's bond per kW), built from the
contracts' events by the shared chain follower (protocol.follower: eth_getLogs over
bounded block ranges, only blocks at least `confirmations` deep, reorg detection by block hash).
The cache itself is not stored: replaying the logs is cheap. What is stored is the follower's
cursor, the last block whose events the view applied (with recent block hashes). On a restart
the view replays the logs up to that cursor (the history it had already accepted, checked by the
block hash so a reset or reorganized chain is noticed) and resumes after it; a reorg noticed later
rebuilds the cache up to the fork point.

The ingest asks `device(address)` and `request(request_id)`. A known one is answered from the
cache with no JSON-RPC call (the background poller, or the attestation loop's sync, keeps it
current: a deactivation reaches it within one poll). An unknown one triggers one `sync()` before
the answer is None, so a device registered a moment ago is accepted; concurrent misses share one
sync (the first runs it, the others wait for it), so a burst of unknown devices cannot stampede
the RPC.

Stakes: every change of an account's `bonded` or lock, and of `bondPerKW`, emits an event, so the
view holds exactly what `bondedOf`, `lockedOf` and `bondPerKW` return at its cursor:
`Staked.bonded` and `Slashed.bonded` are the new bonded amount, `LockSet.amount` the new lock,
`BondPerKWSet.bondPerKW` the new bond per kW (the constructor emits it too). `UnstakeRequested`
carries the new *unbonding* total, not the bonded one; the view derives the bonded amount as the
contract computes it (`requestUnstake`: `s.bonded -= amount`). `Withdrawn`, `DebtPaid` and
`DebtRecorded` change neither (a debt paid out of a stake is already netted in `Staked.bonded`).
`stakes(owners)` answers under the sync lock, so a book is read at one cursor, never half-way
through a batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy.engine import Engine

from oracle import db
from protocol.events import ChainEvent, EventDecoder
from protocol.follower import DEFAULT_MAX_RANGE, Batch, Cursor, Follower, Rollback
from protocol.manifest import Manifest
from protocol.requests import FlexRequest
from protocol.statuses import RequestStatus

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_RANGE = DEFAULT_MAX_RANGE
REGISTRY_EVENTS = ("DeviceRegistered", "DeviceSited", "DeviceActiveChanged", "DeviceTransferred",
                   "DeviceUnregistered")
MARKET_EVENTS = ("RequestOpened", "RequestRules", "RequestAvailability", "AllocationPosted", "RequestCancelled",
                 "RequestSettling", "RequestReleased", "RequestSettled", "RequestExpired")
STAKING_EVENTS = ("Staked", "UnstakeRequested", "Slashed", "LockSet", "BondPerKWSet")

RequestInfo = FlexRequest  # the oracle's name for the shared request type
__all__ = ["ChainView", "DeviceInfo", "RequestInfo", "RequestStatus", "Stakes", "run_poller"]


@dataclass(frozen=True)
class DeviceInfo:
    """A registered device as the DeviceRegistry describes it. A device at a site (`site` set) is
    owned by whoever owns the site: its `owner` follows the site's transfers."""

    address: str
    owner: str
    kind: int
    capacity_w: int
    zone: int
    active: bool
    site: str | None = None
    registered_block: int | None = None  # the block of its DeviceRegistered event

    @property
    def settlement_unit(self) -> str:
        """What the oracles settle this device as: its site, or itself when it is metered alone."""
        return self.site or self.address


@dataclass(frozen=True)
class Stakes:
    """Staking as it stood at block `block` (the view's cursor): the bond per committed kW and the
    (bondedOf, lockedOf) of each asked account, by lowercase address (0, 0 for one that never staked)."""

    block: int
    bond_per_kw: int
    of: dict[str, tuple[int, int]]


class _CursorInDatabase:
    """The follower's cursor as one value in the oracle's key-value table."""

    def __init__(self, engine: Engine, key: str):
        self.engine = engine
        self.key = key

    def load(self) -> Cursor | None:
        """The stored cursor ({"block", "hash"} from before recent hashes were kept still loads)."""
        value = db.get_value(self.engine, self.key)
        if value is None:
            return None
        block = int(value["block"])
        hashes = {int(n): h for n, h in (value.get("hashes") or {}).items()}
        if value.get("hash"):
            hashes[block] = value["hash"]
        return Cursor(block, hashes)

    def save(self, cursor: Cursor) -> None:
        """Store the cursor (block, its hash, the recent hashes)."""
        db.put_value(self.engine, self.key, {"block": cursor.block, "hash": cursor.hash,
                                             "hashes": {str(n): h for n, h in sorted(cursor.hashes.items())}})


class ChainView:
    """Devices, requests and stakes from DeviceRegistry, FlexMarket and Staking events, kept current
    by `sync()`.

    Thread-safe: `sync()` runs under a lock (the web3 connection is used by one thread at a time),
    lookups read immutable records from dictionaries. The view is the follower's projection.
    """

    def __init__(self, web3: Any, manifest: Manifest, engine: Engine, confirmations: int = 0,
                 block_range: int = DEFAULT_BLOCK_RANGE, clock: Callable[[], float] = time.monotonic):
        self.web3 = web3
        self.manifest = manifest
        self.engine = engine
        self.registry = manifest.contract(web3, "DeviceRegistry")
        self.market = manifest.contract(web3, "FlexMarket")
        self.staking = manifest.contract(web3, "Staking")
        self.chain_id = manifest.chainId
        self.start_block = min(manifest.contracts[name].block
                               for name in ("DeviceRegistry", "FlexMarket", "Staking"))
        self.cursor_key = f"chain_view.cursor:{manifest.chainId}:{self.registry.address}:{self.market.address}"
        decoder = EventDecoder(manifest, web3, contracts=("DeviceRegistry", "FlexMarket", "Staking"),
                               events=REGISTRY_EVENTS + MARKET_EVENTS + STAKING_EVENTS)
        self.follower = Follower(web3, decoder, _CursorInDatabase(engine, self.cursor_key), self.start_block,
                                 confirmations=confirmations, max_range=block_range)
        self._clock = clock
        self._devices: dict[str, DeviceInfo] = {}
        self._at_site: dict[str, set[str]] = {}  # site meter -> the devices registered at it
        self._requests: dict[int, FlexRequest] = {}
        self._bonded: dict[str, int] = {}  # lowercase account -> Staking bondedOf
        self._locked: dict[str, int] = {}  # lowercase account -> Staking lockedOf
        self._bond_per_kw: int | None = None  # None until Staking's constructor's BondPerKWSet is applied
        self._cursor: int | None = None  # last applied block; None until the first sync loads the history
        self._lock = threading.Lock()
        self._last_sync_started = float("-inf")
        self._rebuilt = False

    # -------------------------------------------------------------------------------------------
    # lookups

    @property
    def cursor(self) -> int | None:
        """The last block whose events are applied (None before the first `sync()`)."""
        return self._cursor

    def stored_cursor(self) -> int | None:
        """The cursor persisted in the database (survives restarts), or None."""
        value = db.get_value(self.engine, self.cursor_key)
        return None if value is None else int(value["block"])

    def device(self, address: str, refresh: bool = True) -> DeviceInfo | None:
        """The registered device at `address`, or None; an unknown device first triggers one sync."""
        try:
            key = to_checksum_address(address)
        except ValueError:
            return None
        info = self._devices.get(key)
        if info is None and refresh:
            self._sync_for_lookup()
            info = self._devices.get(key)
        return info

    def request(self, request_id: int, refresh: bool = True) -> FlexRequest | None:
        """The request `request_id`, or None; an unknown request first triggers one sync."""
        info = self._requests.get(request_id)
        if info is None and refresh:
            self._sync_for_lookup()
            info = self._requests.get(request_id)
        return info

    def devices(self) -> dict[str, DeviceInfo]:
        """A snapshot of every registered device, by checksummed address."""
        return dict(self._devices)

    def devices_at(self, site: str) -> list[str]:
        """The devices registered at `site`, sorted."""
        return sorted(self._at_site.get(to_checksum_address(site), ()))

    def requests(self) -> dict[int, FlexRequest]:
        """A snapshot of every known request, by id."""
        return dict(self._requests)

    def stakes(self, accounts: Iterable[str]) -> Stakes:
        """Staking's bondPerKW and each account's (bonded, locked) at the view's cursor, from the
        indexed events: no JSON-RPC call per account.

        Read under the sync lock, so every value is from the same block (`Stakes.block`); a view
        that never synced syncs first (one sync). Raises RuntimeError if Staking's bondPerKW was
        never seen (the view's history does not reach Staking's deployment block)."""
        keys = sorted({account.lower() for account in accounts})
        with self._lock:
            if self._cursor is None:
                self._sync_locked()
            if self._bond_per_kw is None:
                raise RuntimeError(f"chain view: no BondPerKWSet of Staking {self.staking.address} up to "
                                   f"block {self._cursor} (the view starts at block {self.start_block})")
            of = {key: (self._bonded.get(key, 0), self._locked.get(key, 0)) for key in keys}
            return Stakes(self._cursor, self._bond_per_kw, of)

    # -------------------------------------------------------------------------------------------
    # syncing

    def sync(self) -> int:
        """Apply the events of every new block at least `confirmations` deep; returns the cursor.

        The first call also replays the history up to the stored cursor. Raises the web3 error
        when the RPC does not answer (the cache stays as it was).
        """
        with self._lock:
            return self._sync_locked()

    def _sync_for_lookup(self) -> None:
        """One sync for a lookup miss, unless another sync started after the lookup asked.

        The check and the sync happen under one hold of the lock, so concurrent misses coalesce:
        the first runs the sync, the others wait for it and find it started after they asked
        (it read the chain after their question), so they do not sync again (no stampede).
        """
        asked = self._clock()
        with self._lock:
            if self._last_sync_started > asked:
                return
            self._sync_locked()

    def _sync_locked(self) -> int:
        self._last_sync_started = self._clock()
        if self._cursor is None:
            self._load_history()
        self._cursor = self.follower.poll(self).block
        return self._cursor

    def _load_history(self) -> None:
        """Rebuild the cache by replaying the logs up to the stored cursor, once it is known to be
        on this chain (or start fresh)."""
        self._clear()
        self._rebuilt = False
        cursor = self.follower.check(self)
        if not self._rebuilt:
            self._replay(cursor.block)
            if cursor.block >= self.start_block:
                logger.info("chain view: replayed blocks %d..%d (%d devices, %d requests), resuming after %d",
                            self.start_block, cursor.block, len(self._devices), len(self._requests), cursor.block)
        self._cursor = cursor.block

    def _clear(self) -> None:
        """Forget every indexed record (before a replay rebuilds them)."""
        self._devices.clear()
        self._at_site.clear()
        self._requests.clear()
        self._bonded.clear()
        self._locked.clear()
        self._bond_per_kw = None

    def _replay(self, last: int) -> None:
        """Apply the events of blocks start_block..last (history already accepted)."""
        for event in self.follower.replay(self.start_block, last):
            self._apply(event)

    # the follower's projection -----------------------------------------------------------------

    def apply(self, batch: Batch) -> None:
        """Apply the events of a confirmed range (the follower saves the cursor after it)."""
        for event in batch.events:
            self._apply(event)
        self._cursor = batch.last

    def rollback(self, rollback: Rollback) -> None:
        """A reorg (or a cursor from another chain): rebuild the cache up to the fork point."""
        if rollback.deep:
            logger.warning("chain view: stored cursor block %d is not on this chain; rebuilding from block %d",
                           rollback.abandoned, self.start_block)
        else:
            logger.warning("chain view: reorg; block %d is no longer canonical, rebuilding up to block %d",
                           rollback.abandoned, rollback.fork)
        self._clear()
        self._replay(rollback.fork)
        self._cursor = rollback.fork
        self._rebuilt = True

    def _apply(self, event: ChainEvent) -> None:
        getattr(self, f"_on_{event.name}")(event.args, event.block)

    # DeviceRegistry ------------------------------------------------------------------------------

    def _on_DeviceRegistered(self, args: Any, block: int) -> None:
        device = to_checksum_address(args["device"])
        self._devices[device] = DeviceInfo(device, to_checksum_address(args["owner"]), int(args["kind"]),
                                           int(args["capacityW"]), int(args["zone"]), True,
                                           registered_block=block)

    def _on_DeviceActiveChanged(self, args: Any, block: int) -> None:
        self._update_device(args["device"], active=bool(args["active"]))

    def _on_DeviceSited(self, args: Any, block: int) -> None:
        device, site = to_checksum_address(args["device"]), to_checksum_address(args["site"])
        self._update_device(device, site=site)
        self._at_site.setdefault(site, set()).add(device)

    def _on_DeviceTransferred(self, args: Any, block: int) -> None:
        owner = to_checksum_address(args["to"])
        site = to_checksum_address(args["device"])
        self._update_device(site, owner=owner)
        for device in self._at_site.get(site, ()):  # a site's devices change hands with it
            self._update_device(device, owner=owner)

    def _on_DeviceUnregistered(self, args: Any, block: int) -> None:
        info = self._devices.pop(to_checksum_address(args["device"]), None)
        if info is not None and info.site is not None:
            self._at_site.get(info.site, set()).discard(info.address)

    def _update_device(self, address: str, **changes: Any) -> None:
        key = to_checksum_address(address)
        info = self._devices.get(key)
        if info is None:
            logger.warning("chain view: event for unknown device %s", key)
            return
        self._devices[key] = replace(info, **changes)

    # FlexMarket ----------------------------------------------------------------------------------

    def _on_RequestOpened(self, args: Any, block: int) -> None:
        request = FlexRequest.from_event(args, block)
        self._requests[request.request_id] = request

    def _on_RequestRules(self, args: Any, block: int) -> None:
        info = self._requests.get(int(args["requestId"]))
        if info is None:
            logger.warning("chain view: rules for unknown request %s", args["requestId"])
            return
        self._requests[info.request_id] = info.with_rules(args)

    def _on_RequestAvailability(self, args: Any, block: int) -> None:
        info = self._requests.get(int(args["requestId"]))
        if info is None:
            logger.warning("chain view: availability for unknown request %s", args["requestId"])
            return
        self._requests[info.request_id] = info.with_availability(args)

    def _on_AllocationPosted(self, args: Any, block: int) -> None:
        info = self._requests.get(int(args["requestId"]))
        if info is None:
            logger.warning("chain view: allocation for unknown request %s", args["requestId"])
            return
        self._requests[info.request_id] = info.with_allocation(args)

    def _on_RequestCancelled(self, args: Any, block: int) -> None:
        self._set_status(args["requestId"], RequestStatus.CANCELLED)

    def _on_RequestSettling(self, args: Any, block: int) -> None:
        self._set_status(args["requestId"], RequestStatus.SETTLING)

    def _on_RequestReleased(self, args: Any, block: int) -> None:
        self._set_status(args["requestId"], RequestStatus.OPEN)

    def _on_RequestSettled(self, args: Any, block: int) -> None:
        self._set_status(args["requestId"], RequestStatus.SETTLED)

    def _on_RequestExpired(self, args: Any, block: int) -> None:
        self._set_status(args["requestId"], RequestStatus.EXPIRED)

    def _set_status(self, request_id: int, status: RequestStatus) -> None:
        info = self._requests.get(int(request_id))
        if info is None:
            logger.warning("chain view: event for unknown request %s", request_id)
            return
        self._requests[int(request_id)] = replace(info, status=status)

    # Staking -------------------------------------------------------------------------------------

    def _on_Staked(self, args: Any, block: int) -> None:
        self._bonded[str(args["account"]).lower()] = int(args["bonded"])  # the new total

    def _on_UnstakeRequested(self, args: Any, block: int) -> None:
        # The event carries the new unbonding total, not the bonded one: Staking.requestUnstake
        # does `s.bonded -= amount` (it reverts rather than go below the lock), so the same here.
        account = str(args["account"]).lower()
        bonded = self._bonded.get(account, 0) - int(args["amount"])
        if bonded < 0:
            logger.warning("chain view: unstake of %s by %s exceeds its indexed bond",
                           args["amount"], account)
        self._bonded[account] = max(0, bonded)

    def _on_Slashed(self, args: Any, block: int) -> None:
        self._bonded[str(args["account"]).lower()] = int(args["bonded"])  # what the account has left

    def _on_LockSet(self, args: Any, block: int) -> None:
        self._locked[str(args["account"]).lower()] = int(args["amount"])

    def _on_BondPerKWSet(self, args: Any, block: int) -> None:
        self._bond_per_kw = int(args["bondPerKW"])


def run_poller(view: ChainView, stop: threading.Event, interval_seconds: float) -> None:
    """Call `view.sync()` every `interval_seconds` until `stop` is set; errors are logged, not raised.

    Meant for a daemon thread next to the ingest service, so status changes (deactivation,
    cancellation) reach the cache without a lookup miss.
    """
    while not stop.is_set():
        try:
            view.sync()
        except Exception:  # an RPC hiccup must not end the poller
            logger.exception("chain view: sync failed; retrying in %.1f s", interval_seconds)
        stop.wait(interval_seconds)
