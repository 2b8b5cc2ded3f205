"""What the oracle knows about the chain: registered devices and flexibility requests.

`ChainView` keeps an in-memory cache of DeviceRegistry devices and FlexMarket requests, built
from the contracts' events (eth_getLogs over bounded block ranges, only blocks at least
`confirmations` deep). The cache itself is not stored: replaying the logs is cheap. What is
stored is the cursor, the last block whose events the view applied (with its hash). On a restart
the view replays the logs up to that cursor (the history it had already accepted, checked by
the block hash so a reset or reorganized chain is noticed) and resumes after it.

The ingest asks `device(address)` and `request(request_id)`; an unknown one triggers one `sync()`
before the answer is None, so a device registered a moment ago is accepted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from eth_utils import to_checksum_address, to_hex
from sqlalchemy.engine import Engine

from oracle import db
from protocol.manifest import Manifest

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_RANGE = 2_000
REGISTRY_EVENTS = ("DeviceRegistered", "DeviceActiveChanged", "DeviceTransferred", "DeviceUnregistered")
MARKET_EVENTS = ("RequestOpened", "RequestCancelled", "RequestSettling", "RequestReleased", "RequestSettled",
                 "RequestExpired")


@dataclass(frozen=True)
class DeviceInfo:
    """A registered device as the DeviceRegistry describes it."""

    address: str
    owner: str
    kind: int
    capacity_w: int
    zone: int
    active: bool


class RequestStatus(str, Enum):
    """Life cycle of a FlexMarket request (FlexMarket.Status without None)."""

    OPEN = "open"
    CANCELLED = "cancelled"
    SETTLING = "settling"
    SETTLED = "settled"
    EXPIRED = "expired"


@dataclass(frozen=True)
class RequestInfo:
    """A flexibility request as FlexMarket's events describe it (power in W, amounts in base units)."""

    request_id: int
    buyer: str
    zone: int
    start: int
    end: int
    target_w: int
    price_per_kwh: int
    payment_token: str
    max_budget: int
    status: RequestStatus


class ChainView:
    """Devices and requests from DeviceRegistry and FlexMarket events, kept current by `sync()`.

    Thread-safe: `sync()` runs under a lock (the web3 connection is used by one thread at a time),
    lookups read immutable records from dictionaries.
    """

    def __init__(self, web3: Any, manifest: Manifest, engine: Engine, confirmations: int = 0,
                 block_range: int = DEFAULT_BLOCK_RANGE, clock: Callable[[], float] = time.monotonic):
        if confirmations < 0 or block_range < 1:
            raise ValueError("confirmations must be >= 0 and block_range >= 1")
        self.web3 = web3
        self.manifest = manifest
        self.engine = engine
        self.confirmations = confirmations
        self.block_range = block_range
        self.registry = manifest.contract(web3, "DeviceRegistry")
        self.market = manifest.contract(web3, "FlexMarket")
        self.chain_id = manifest.chainId
        self.start_block = min(manifest.contracts["DeviceRegistry"].block, manifest.contracts["FlexMarket"].block)
        self.cursor_key = f"chain_view.cursor:{manifest.chainId}:{self.registry.address}:{self.market.address}"
        self._clock = clock
        self._events: dict[bytes, Any] = {}
        for contract, names in ((self.registry, REGISTRY_EVENTS), (self.market, MARKET_EVENTS)):
            for name in names:
                handle = contract.events[name]()
                self._events[bytes.fromhex(handle.topic.removeprefix("0x"))] = handle
        self._devices: dict[str, DeviceInfo] = {}
        self._requests: dict[int, RequestInfo] = {}
        self._cursor: int | None = None  # last applied block; None until the first sync loads the history
        self._lock = threading.Lock()
        self._last_sync_started = float("-inf")

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

    def request(self, request_id: int, refresh: bool = True) -> RequestInfo | None:
        """The request `request_id`, or None; an unknown request first triggers one sync."""
        info = self._requests.get(request_id)
        if info is None and refresh:
            self._sync_for_lookup()
            info = self._requests.get(request_id)
        return info

    def devices(self) -> dict[str, DeviceInfo]:
        """A snapshot of every registered device, by checksummed address."""
        return dict(self._devices)

    def requests(self) -> dict[int, RequestInfo]:
        """A snapshot of every known request, by id."""
        return dict(self._requests)

    # -------------------------------------------------------------------------------------------
    # syncing

    def sync(self) -> int:
        """Apply the events of every new block at least `confirmations` deep; returns the cursor.

        The first call also replays the history up to the stored cursor. Raises the web3 error
        when the RPC does not answer (the cache stays as it was).
        """
        with self._lock:
            self._last_sync_started = self._clock()
            if self._cursor is None:
                self._load_history()
            assert self._cursor is not None
            safe_head = self.web3.eth.block_number - self.confirmations
            if safe_head > self._cursor:
                self._apply_range(self._cursor + 1, safe_head)
                self._store_cursor()
            return self._cursor

    def _sync_for_lookup(self) -> None:
        """One sync for a lookup miss, unless another sync started after the lookup asked."""
        asked = self._clock()
        with self._lock:
            if self._last_sync_started > asked:
                return
        self.sync()

    def _load_history(self) -> None:
        """Rebuild the cache by replaying the logs up to the stored cursor (or start fresh)."""
        stored = db.get_value(self.engine, self.cursor_key)
        self._devices.clear()
        self._requests.clear()
        self._cursor = self.start_block - 1
        if stored is None:
            return
        block, block_hash = int(stored["block"]), stored.get("hash")
        if block < self.start_block:
            return
        head = self.web3.eth.block_number
        actual = to_hex(self.web3.eth.get_block(block)["hash"]) if block <= head else None
        if actual != block_hash:
            logger.warning("chain view: stored cursor block %d (%s) is not on this chain (found %s); "
                           "rebuilding from block %d", block, block_hash, actual, self.start_block)
            return
        self._apply_range(self.start_block, block)
        logger.info("chain view: replayed blocks %d..%d (%d devices, %d requests), resuming after %d",
                    self.start_block, block, len(self._devices), len(self._requests), block)

    def _apply_range(self, first: int, last: int) -> None:
        """Fetch and apply the logs of blocks first..last in chunks of at most `block_range`."""
        low = first
        while low <= last:
            high = min(last, low + self.block_range - 1)
            for log in self._fetch_logs(low, high):
                self._apply(log)
            self._cursor = high
            low = high + 1

    def _fetch_logs(self, first: int, last: int) -> list[Any]:
        """The logs of the registry and the market in blocks first..last, in chain order."""
        return self.web3.eth.get_logs({
            "fromBlock": first, "toBlock": last, "address": [self.registry.address, self.market.address],
        })

    def _store_cursor(self) -> None:
        assert self._cursor is not None
        block_hash = to_hex(self.web3.eth.get_block(self._cursor)["hash"])
        db.put_value(self.engine, self.cursor_key, {"block": self._cursor, "hash": block_hash})

    def _apply(self, log: Any) -> None:
        topics = log.get("topics") or []
        if not topics:
            return
        handle = self._events.get(bytes(topics[0]))
        if handle is None or to_checksum_address(log["address"]) != handle.address:
            return
        decoded = handle.process_log(log)
        getattr(self, f"_on_{decoded['event']}")(decoded["args"])

    # DeviceRegistry ------------------------------------------------------------------------------

    def _on_DeviceRegistered(self, args: Any) -> None:
        device = to_checksum_address(args["device"])
        self._devices[device] = DeviceInfo(device, to_checksum_address(args["owner"]), int(args["kind"]),
                                           int(args["capacityW"]), int(args["zone"]), True)

    def _on_DeviceActiveChanged(self, args: Any) -> None:
        self._update_device(args["device"], active=bool(args["active"]))

    def _on_DeviceTransferred(self, args: Any) -> None:
        self._update_device(args["device"], owner=to_checksum_address(args["to"]))

    def _on_DeviceUnregistered(self, args: Any) -> None:
        self._devices.pop(to_checksum_address(args["device"]), None)

    def _update_device(self, address: str, **changes: Any) -> None:
        key = to_checksum_address(address)
        info = self._devices.get(key)
        if info is None:
            logger.warning("chain view: event for unknown device %s", key)
            return
        self._devices[key] = replace(info, **changes)

    # FlexMarket ----------------------------------------------------------------------------------

    def _on_RequestOpened(self, args: Any) -> None:
        request_id = int(args["requestId"])
        self._requests[request_id] = RequestInfo(
            request_id, to_checksum_address(args["buyer"]), int(args["zone"]), int(args["start"]), int(args["end"]),
            int(args["targetW"]), int(args["pricePerKWh"]), to_checksum_address(args["paymentToken"]),
            int(args["maxBudget"]), RequestStatus.OPEN)

    def _on_RequestCancelled(self, args: Any) -> None:
        self._set_status(args["requestId"], RequestStatus.CANCELLED)

    def _on_RequestSettling(self, args: Any) -> None:
        self._set_status(args["requestId"], RequestStatus.SETTLING)

    def _on_RequestReleased(self, args: Any) -> None:
        self._set_status(args["requestId"], RequestStatus.OPEN)

    def _on_RequestSettled(self, args: Any) -> None:
        self._set_status(args["requestId"], RequestStatus.SETTLED)

    def _on_RequestExpired(self, args: Any) -> None:
        self._set_status(args["requestId"], RequestStatus.EXPIRED)

    def _set_status(self, request_id: int, status: RequestStatus) -> None:
        info = self._requests.get(int(request_id))
        if info is None:
            logger.warning("chain view: event for unknown request %s", request_id)
            return
        self._requests[int(request_id)] = replace(info, status=status)


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
