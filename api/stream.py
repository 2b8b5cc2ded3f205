"""Live updates: a Server-Sent Events stream of new requests, reports and claims.

Each event carries `id: <block>-<logIndex>`, so a client reconnecting with `Last-Event-ID` gets what
it missed from the mirror. The indexer thread wakes the streams after each commit; a reorg that
removes events a client already got is announced as `event: reorg` with the block it rolled back to.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from api.reads import Reads

STREAM_KINDS = ("request", "report", "claim")
KEEPALIVE_SECONDS = 15.0


class Notifier:
    """Wakes every waiting stream (from any thread) and remembers reorgs."""

    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self.reorgs: list[int] = []

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


def parse_event_id(value: str) -> tuple[int, int] | None:
    """(block, log_index) of an event id "<block>-<logIndex>", or None if malformed."""
    parts = value.split("-")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 18 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _frame(row: Any) -> bytes:
    data = {"block": row.block, "logIndex": row.log_index, "txHash": row.tx_hash, "contract": row.contract,
            "event": row.name, "args": orjson.loads(row.args)}
    return (f"id: {row.block}-{row.log_index}\nevent: {row.kind}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")


async def event_stream(reads: Reads, notifier: Notifier, kinds: tuple[str, ...], start: tuple[int, int] | None,
                       is_disconnected: Any, keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[bytes]:
    """SSE frames of stored events of `kinds` after `start` (default: from now on), then live ones."""
    wake = notifier.subscribe()
    try:
        position = start if start is not None else await run_in_threadpool(reads.last_event_position)
        seen_reorgs = len(notifier.reorgs)
        yield b": negawatt event stream\nretry: 2000\n\n"
        while True:
            wake.clear()
            if len(notifier.reorgs) > seen_reorgs:
                fork = min(notifier.reorgs[seen_reorgs:])
                seen_reorgs = len(notifier.reorgs)
                if fork < position[0]:
                    position = (fork, 2**62)
                    yield b"event: reorg\ndata: " + orjson.dumps({"forkBlock": fork}) + b"\n\n"
            rows = await run_in_threadpool(reads.events_after, position[0], position[1], kinds)
            for row in rows:
                yield _frame(row)
                position = (row.block, row.log_index)
            if rows:
                continue
            if await is_disconnected():
                return
            try:
                await asyncio.wait_for(wake.wait(), timeout=keepalive)
            except TimeoutError:
                yield b": keepalive\n\n"
    finally:
        notifier.unsubscribe(wake)
