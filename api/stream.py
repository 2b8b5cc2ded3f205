"""Live updates: a Server-Sent Events stream of new requests, reports and claims.

Each event carries `id: <block>-<logIndex>-<tx>` (`tx`: the first 8 hex digits of its transaction's
hash), so a client reconnecting with `Last-Event-ID` gets what it missed from the mirror, and an id
of an event a reorg replaced at the same block and log position (another transaction there) is
known for one the mirror does not have. A two-part id (`<block>-<logIndex>`, as served before) is
still accepted and resumes by position alone. The indexer thread wakes the streams after each commit; a reorg that
removes events a client already got is announced as `event: reorg` with the block it rolled back to.

Rules (issue 15: a long-lived stream must never go quiet):
- The stream reads the mirror, never a per-connection queue: a slow client cannot overflow
  anything, and nothing is dropped; a wake-up it misses costs at most `keepalive` seconds, because
  it re-reads the mirror after every heartbeat.
- A heartbeat comment (`: keepalive`) goes out after `keepalive` seconds without an event, so
  proxies keep the connection and a dead client is noticed when the write fails.
- A read that fails (the database away or locked for a moment) is retried with back-off, with
  heartbeats meanwhile; it never ends the stream. The stream ends only when the client goes away
  (Starlette cancels it on `http.disconnect`, or a write fails).
- `event: reorg` carries an id too (`<forkBlock>-999999999`, "after block forkBlock"), so a client
  reconnecting after it resumes from the fork, not from an event of the abandoned branch.
- A resume id that names no event of this mirror (from another chain, e.g. an earlier devnet, or
  from a branch that was rolled back while the client was away) would wait silently for a block
  that never comes: once the indexer has passed that block (or the chain's head is below it), the
  stream answers `event: reorg` with `forkBlock` 0 and replays the mirror from the start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from api.amounts import amount_args
from api.reads import Reads

log = logging.getLogger(__name__)

STREAM_KINDS = ("request", "report", "claim")
KEEPALIVE_SECONDS = 15.0
END_OF_BLOCK = 999_999_999  # the log index meaning "after every event of the block" (fits an SQL INTEGER)
READ_RETRY_MAX_SECONDS = 30.0


class Notifier:
    """Wakes every waiting stream (from any thread) and remembers reorgs."""

    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self.reorgs: list[int] = []

    @property
    def subscribers(self) -> int:
        """How many streams are open."""
        with self._lock:
            return len(self._waiters)

    def notify(self) -> None:
        """The mirror changed: wake every stream."""
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop is closed
                pass

    def reorg(self, fork_block: int) -> None:
        """The mirror was rolled back to `fork_block`."""
        with self._lock:
            self.reorgs.append(fork_block)
        self.notify()

    def subscribe(self) -> asyncio.Event:
        """An event the caller awaits; set whenever the mirror changes."""
        event = asyncio.Event()
        with self._lock:
            self._waiters.add((asyncio.get_running_loop(), event))
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        """Stop waking `event`."""
        with self._lock:
            self._waiters = {(loop, e) for loop, e in self._waiters if e is not event}


TX_TAG_CHARS = 8  # hex digits of the transaction hash an event id carries
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ResumePoint:
    """Where a client resumes: after (block, log_index), which must be the event of a transaction
    whose hash starts with `tx_tag` when one is given."""

    block: int
    log_index: int
    tx_tag: str | None = None


def event_id(block: int, log_index: int, tx_hash: str) -> str:
    """The SSE id of the event at (block, log_index) of transaction `tx_hash`."""
    return f"{block}-{log_index}-{tx_hash.removeprefix('0x')[:TX_TAG_CHARS].lower()}"


def parse_event_id(value: str) -> ResumePoint | None:
    """The resume point of an event id "<block>-<logIndex>[-<tx>]", or None if malformed."""
    parts = value.split("-")
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) <= 18 for p in parts[:2]):
        return None
    tag = parts[2].lower() if len(parts) == 3 else None
    if tag is not None and (len(tag) != TX_TAG_CHARS or not set(tag) <= _HEX):
        return None
    return ResumePoint(int(parts[0]), int(parts[1]), tag)


def _frame(row: Any) -> bytes:
    args = amount_args(row.contract, row.name, orjson.loads(row.args))
    data = {"block": row.block, "logIndex": row.log_index, "txHash": row.tx_hash, "contract": row.contract,
            "event": row.name, "args": args}
    return (f"id: {event_id(row.block, row.log_index, row.tx_hash)}\nevent: {row.kind}\ndata: ".encode()
            + orjson.dumps(data) + b"\n\n")


def _reorg_frame(fork: int) -> bytes:
    return (f"id: {fork}-{END_OF_BLOCK}\nevent: reorg\ndata: ".encode() + orjson.dumps({"forkBlock": fork})
            + b"\n\n")


Progress = Callable[[], tuple[int, int]]
"""(indexed block, chain head block) of the mirror; head 0 until the indexer reached the chain."""


async def event_stream(reads: Reads, notifier: Notifier, kinds: tuple[str, ...], start: ResumePoint | None,
                       progress: Progress, keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[bytes]:
    """SSE frames of stored events of `kinds` after `start` (default: from now on), then live ones.

    Ends only by cancellation (the client went away); see the module docstring for the rules."""
    wake = notifier.subscribe()
    try:
        position = (start.block, start.log_index) if start is not None else \
            await run_in_threadpool(reads.last_event_position)
        tag = start.tx_tag if start is not None else None
        unverified = start is not None
        seen_reorgs = len(notifier.reorgs)
        yield b": negawatt event stream\nretry: 2000\n\n"
        backoff = 1.0
        while True:
            wake.clear()
            if len(notifier.reorgs) > seen_reorgs:
                fork = min(notifier.reorgs[seen_reorgs:])
                seen_reorgs = len(notifier.reorgs)
                if fork < position[0]:
                    position = (fork, END_OF_BLOCK)
                    unverified = False
                    yield _reorg_frame(fork)
            try:
                if unverified:
                    indexed, head = await run_in_threadpool(progress)
                    if head > 0 and (position[0] <= indexed or position[0] > head):
                        unverified = False
                        # "after block N" (a reorg frame's id) holds on any chain that reached block N
                        known = position[0] <= head if position[1] == END_OF_BLOCK else \
                            await run_in_threadpool(reads.has_event, position[0], position[1], tag)
                        if not known:
                            log.info("a stream resumed from event %d-%d, which this mirror does not have: "
                                     "replaying from the start", *position)
                            position = (0, END_OF_BLOCK)
                            yield _reorg_frame(0)
                rows = await run_in_threadpool(reads.events_after, position[0], position[1], kinds)
            except Exception as error:  # noqa: BLE001  (the database may be away for a moment: retry, never end)
                log.warning("event stream read failed: %r; retrying in %.0f s", error, backoff)
                yield b": retrying\n\n"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, READ_RETRY_MAX_SECONDS)
                continue
            backoff = 1.0
            for row in rows:
                yield _frame(row)
                position = (row.block, row.log_index)
            if rows:
                continue
            try:
                await asyncio.wait_for(wake.wait(), timeout=keepalive)
            except TimeoutError:
                yield b": keepalive\n\n"
    finally:
        notifier.unsubscribe(wake)
