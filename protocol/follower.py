"""One chain-event follower for every role: ranged eth_getLogs from a stored cursor, confirmations,
typed events, and reorg detection by block hash.

The rule: a `Follower` reads the logs of the decoder's contracts in block ranges of at most
`max_range` blocks, only up to `head - confirmations`, and hands each range to the caller's
`Projection` as a `Batch` of decoded events (protocol.events) in chain order. After each batch
the new `Cursor` (the last block applied and the hashes of recent blocks) is given to the
caller's `CursorStore`, so a restarted follower resumes after the last saved range.

Before reading, the follower checks that the cursor's block still has the stored hash. If it does
not, the newest kept block whose hash still matches is the fork point: the projection is told to
`rollback` everything after it (a fork deeper than the kept hashes, or a cursor from another chain,
rolls back to before `start_block`: `Rollback.deep`). A range is handed over only if the chain
held still while it was read (the cursor block and the range's last block have the same hashes
before and after eth_getLogs); otherwise the poll stops and the next one checks again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.events import ChainEvent, EventDecoder

log = logging.getLogger(__name__)

DEFAULT_MAX_RANGE = 2_000
DEFAULT_KEEP_BLOCKS = 256  # a reorg deeper than this rolls everything back (Rollback.deep)


@dataclass(frozen=True)
class Cursor:
    """The last block applied and the hashes of recent blocks (numbers within `keep_blocks` of it)."""

    block: int
    hashes: Mapping[int, str] = field(default_factory=dict)

    @property
    def hash(self) -> str | None:
        """The stored hash of the cursor's own block (None before any block was applied)."""
        return self.hashes.get(self.block)


class CursorStore(Protocol):
    """Where the caller keeps the follower's cursor (its own database)."""

    def load(self) -> Cursor | None:
        """The saved cursor, or None when nothing was applied yet."""

    def save(self, cursor: Cursor) -> None:
        """Keep `cursor` (called after each applied batch and after each rollback)."""


@dataclass(frozen=True)
class Batch:
    """The events of blocks first..last (chain order), the cursor after them and the head then seen."""

    first: int
    last: int
    events: list[ChainEvent]
    cursor: Cursor
    head: int


@dataclass(frozen=True)
class Rollback:
    """Undo everything applied from blocks after `fork`; `abandoned` was the cursor's block.

    `deep`: no kept hash matched (a reorg deeper than the kept history, or a cursor from another
    chain); `fork` is then `start_block - 1`, i.e. everything is undone."""

    fork: int
    abandoned: int
    deep: bool


class Projection(Protocol):
    """What a role builds from the events: applied in order, undone back to a fork point."""

    def apply(self, batch: Batch) -> None:
        """Apply the batch's events (a projection that must be atomic with its cursor may persist
        `batch.cursor` in the same transaction)."""

    def rollback(self, rollback: Rollback) -> None:
        """Undo what was applied from blocks after `rollback.fork`."""


class ChainMoved(RuntimeError):
    """The chain reorganised while a range was being read; the range is read again next poll."""


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


class Follower:
    """Follows the decoder's contracts on one chain from `start_block`, for one projection at a time."""

    def __init__(self, web3: Any, decoder: EventDecoder, store: CursorStore, start_block: int,
                 confirmations: int = 0, max_range: int = DEFAULT_MAX_RANGE, keep_blocks: int = DEFAULT_KEEP_BLOCKS):
        if confirmations < 0 or max_range < 1 or keep_blocks < 1:
            raise ValueError("confirmations must be >= 0, max_range and keep_blocks >= 1")
        self.web3 = web3
        self.decoder = decoder
        self.store = store
        self.start_block = start_block
        self.confirmations = confirmations
        self.max_range = max_range
        self.keep_blocks = keep_blocks
        self.last_head = 0  # the head seen by the last poll

    # ------------------------------------------------------------------ the chain

    def head(self) -> int:
        """The chain's latest block number."""
        return int(self.web3.eth.block_number)

    def block_hash(self, number: int) -> str | None:
        """The hash of block `number` on the chain now (None when it does not exist)."""
        if number < 0:
            return None
        try:
            block = self.web3.eth.get_block(number)
        except Exception:  # noqa: BLE001  (web3 raises BlockNotFound beyond the head)
            if number > self.head():
                return None
            raise
        return _hex(block["hash"]) if block else None

    def fetch(self, first: int, last: int) -> list[ChainEvent]:
        """The decoded events of blocks first..last in chain order (one eth_getLogs call)."""
        raw = self.web3.eth.get_logs({"fromBlock": first, "toBlock": last, "address": self.decoder.address_list})
        events = [event for event in (self.decoder.decode(entry) for entry in raw) if event is not None]
        events.sort(key=lambda event: (event.block, event.log_index))
        return events

    def ranges(self, first: int, last: int) -> Iterator[tuple[int, int]]:
        """first..last cut into ranges of at most `max_range` blocks."""
        low = first
        while low <= last:
            high = min(last, low + self.max_range - 1)
            yield low, high
            low = high + 1

    def replay(self, first: int, last: int) -> Iterator[ChainEvent]:
        """The events of blocks first..last in bounded ranges, without moving the cursor (for a
        projection rebuilt in memory from history it had already accepted)."""
        for low, high in self.ranges(first, last):
            yield from self.fetch(low, high)

    # ------------------------------------------------------------------ the cursor

    def cursor(self) -> Cursor:
        """The stored cursor, or the one before `start_block`."""
        return self.store.load() or Cursor(self.start_block - 1, {})

    def check(self, projection: Projection) -> Cursor:
        """The stored cursor if its block is still canonical; otherwise roll back to the fork point."""
        cursor = self.cursor()
        if cursor.block < self.start_block or cursor.hash is None:
            return cursor
        head = self.head()
        current = self.block_hash(cursor.block) if cursor.block <= head else None
        if current == cursor.hash:
            return cursor
        fork = None
        for number in sorted(cursor.hashes, reverse=True):
            if number < cursor.block and number <= head and self.block_hash(number) == cursor.hashes[number]:
                fork = number
                break
        if fork is None:
            rolled = Cursor(self.start_block - 1, {})
        else:
            rolled = Cursor(fork, {n: h for n, h in cursor.hashes.items() if n <= fork})
        log.info("block %d is no longer %s (found %s): rolling back to block %d%s", cursor.block, cursor.hash,
                 current, rolled.block, "" if fork is not None else " (no kept block matches)")
        projection.rollback(Rollback(rolled.block, cursor.block, fork is None))
        self.store.save(rolled)
        return rolled

    # ------------------------------------------------------------------ one poll

    def poll(self, projection: Projection) -> Cursor:
        """Check for a reorg, then apply every confirmed range after the cursor; returns the cursor."""
        cursor = self.check(projection)
        head = self.head()
        self.last_head = head
        target = head - self.confirmations
        while cursor.block < target:
            to = min(target, cursor.block + self.max_range)
            try:
                batch = self._read(cursor, to, head)
            except ChainMoved as error:
                log.info("chain moved while reading blocks %d..%d (%s); checking again", cursor.block + 1, to, error)
                break
            projection.apply(batch)
            self.store.save(batch.cursor)
            cursor = batch.cursor
        return cursor

    def _read(self, cursor: Cursor, to: int, head: int) -> Batch:
        """The batch of blocks cursor+1..to, read while the chain holds still (halving on RPC limits)."""
        first = cursor.block + 1
        while True:
            to_hash = self.block_hash(to)
            try:
                events = self.fetch(first, to)
            except Exception as error:  # noqa: BLE001  (providers cap results per call: read a smaller range)
                if to - cursor.block <= 1:
                    raise
                log.info("eth_getLogs %d..%d failed (%s); halving the range", first, to, error)
                to = cursor.block + max(1, (to - cursor.block) // 2)
                continue
            break
        if cursor.hash and self.block_hash(cursor.block) != cursor.hash:
            raise ChainMoved(f"block {cursor.block} changed")
        if to_hash is None or self.block_hash(to) != to_hash:
            raise ChainMoved(f"block {to} changed")
        for event in events:
            if event.block == to and event.block_hash != to_hash:
                raise ChainMoved(f"a log of block {to} is from another branch")
        hashes = {n: h for n, h in cursor.hashes.items() if n >= to - self.keep_blocks}
        hashes.update((event.block, event.block_hash) for event in events)
        hashes[to] = to_hash
        return Batch(first, to, events, Cursor(to, hashes), head)
