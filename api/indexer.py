"""The indexer: every negawatt contract event from the deployment block on, into the mirror.

The chain is followed by the shared follower (protocol.follower); the indexer is its projection
and its cursor store. Each poll: (1) the follower checks that the last indexed block is still
canonical; if not, it finds the fork among the kept block hashes (`block_hashes`) and the indexer
rolls the mirror back to it with the undo journal (a fork deeper than the kept history resets the
mirror and re-indexes from the deployment block); (2) the follower reads up to
`head - confirmations` with eth_getLogs in bounded ranges and the indexer commits each range in one
database transaction, with the cursor (`indexer_state`) and the block hashes, so a restart resumes
after the last committed range; (3) the indexer fetches and verifies the oracle documents of
reports that lack one, and looks up the metadata of tokens it has not seen (api.tokens). A range
is committed only if the chain did not move under it (the follower
checks the hashes of its first parent and last block before and after the getLogs call).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from web3 import Web3

from api.allocation_documents import AllocationFetcher
from api.documents import DocumentFetcher
from api.events import EventDecoder
from api.journal import prune
from api.journal import rollback as rollback_journal
from api.models import CHAIN_TABLES, api_metadata
from api.projection import Projection
from api.tokens import TokenBook
from protocol.follower import Batch, ChainMoved, Cursor, Follower, Rollback
from protocol.manifest import Manifest

log = logging.getLogger(__name__)

STATE = api_metadata.tables["indexer_state"]
HASHES = api_metadata.tables["block_hashes"]
EVENTS = api_metadata.tables["chain_events"]
UNDO = api_metadata.tables["undo_log"]
ORACLES = api_metadata.tables["oracles"]


@dataclass
class Progress:
    """Where the indexer stands, for readiness and the stream; `polled_at` is when it last reached the RPC
    (time.monotonic(); 0: never in this process)."""

    indexed_block: int
    head_block: int
    polled_at: float = 0.0

    @property
    def lag_blocks(self) -> int:
        """Blocks between the chain head and the last indexed block."""
        return max(0, self.head_block - self.indexed_block)


Listener = Callable[[str, Any], None]
"""Called after each commit: ("events", [event rows]), ("reorg", fork block) or ("documents", [digests])."""


class MirrorMismatch(RuntimeError):
    """The database already mirrors another chain."""


__all__ = ["ChainMoved", "Indexer", "Listener", "MirrorMismatch", "Progress"]


class Indexer:
    """Follows one deployment on one chain into the mirror at `engine`."""

    def __init__(self, engine: Engine, web3: Web3, manifest: Manifest, confirmations: int = 2,
                 log_range: int = 2_000, undo_depth: int = 1_024, oracle_urls: list[str] | None = None,
                 listener: Listener | None = None, oracle_timeout: float = 10.0):
        self.engine = engine
        self.web3 = web3
        self.manifest = manifest
        self.confirmations = confirmations
        self.undo_depth = undo_depth
        self.oracle_urls = oracle_urls or []
        self.listener = listener or (lambda _kind, _data: None)
        self.decoder = EventDecoder(manifest, web3)
        self.documents = DocumentFetcher(engine, timeout=oracle_timeout)
        self.allocations = AllocationFetcher(engine, manifest.chainId, manifest.address("OracleHub"),
                                             timeout=oracle_timeout)
        stablecoin = (manifest.address("MockStablecoin"),) if "MockStablecoin" in manifest.contracts else ()
        self.tokens = TokenBook(engine, web3, manifest.address("NegawattToken"), known_payment=stablecoin)
        self.start_block = manifest.start_block
        self.follower = Follower(web3, self.decoder, self, self.start_block, confirmations=confirmations,
                                 max_range=log_range, keep_blocks=undo_depth)
        self._indexed = 0
        self.progress = Progress(self.start_block - 1, 0)
        state = self._state()
        if state is not None:
            if state["chain_id"] != manifest.chainId:
                raise MirrorMismatch(f"the database mirrors chain {state['chain_id']}, the manifest is for chain "
                                   f"{manifest.chainId}; use another database")
            self.progress = Progress(state["last_block"], state["head_block"])

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(STATE).where(STATE.c.id == 1)).mappings().first()
            return dict(row) if row else None

    # ------------------------------------------------------------------ the follower's cursor store

    def load(self) -> Cursor | None:
        """The last indexed block and the kept block hashes, or None before the first range."""
        state = self._state()
        if state is None:
            return None
        with self.engine.connect() as connection:
            hashes = {int(n): h for n, h in connection.execute(select(HASHES.c.number, HASHES.c.hash)).all()}
        if state["last_hash"]:
            hashes[state["last_block"]] = state["last_hash"]
        else:
            hashes.pop(state["last_block"], None)
        return Cursor(state["last_block"], hashes)

    def save(self, cursor: Cursor) -> None:
        """Nothing to do: the cursor is written in the range's (or the rollback's) own transaction."""

    # ------------------------------------------------------------------ one poll

    def step(self) -> int:
        """One poll: reorg check, index what is confirmed, fetch missing documents. Returns blocks indexed."""
        self._indexed = 0
        cursor = self.follower.poll(self)
        self._fetch_documents()
        if self.tokens.fetch_missing():
            self.listener("tokens", None)
        # published after the documents were tried: a client that sees block N indexed also sees the
        # verified documents of the reports up to N that an oracle served
        self.progress = Progress(cursor.block, self.follower.last_head, time.monotonic())
        return self._indexed

    # ------------------------------------------------------------------ the follower's projection

    def apply(self, batch: Batch) -> None:
        """Commit one range: its mirror writes, its events, the cursor and the block hashes, in one transaction."""
        last, to, to_hash, logs, head = batch.first - 1, batch.last, batch.cursor.hash, batch.events, batch.head
        hashes = {entry.block: entry.block_hash for entry in logs}
        hashes[to] = to_hash
        with self.engine.begin() as connection:
            rows = Projection(connection, journal=to > head - self.confirmations - self.undo_depth).apply(logs)
            connection.execute(delete(HASHES).where(HASHES.c.number.in_(list(hashes))))
            connection.execute(insert(HASHES), [{"number": n, "hash": h} for n, h in sorted(hashes.items())])
            values = {"last_block": to, "last_hash": to_hash, "head_block": head, "updated_at": int(time.time())}
            if connection.execute(update(STATE).where(STATE.c.id == 1).values(**values)).rowcount == 0:
                connection.execute(insert(STATE).values(id=1, chain_id=self.manifest.chainId, **values))
            keep_from = to - self.undo_depth
            prune(connection, keep_from)
            connection.execute(delete(HASHES).where(HASHES.c.number < keep_from))
        if logs:
            log.info("indexed blocks %d..%d: %d events", last + 1, to, len(logs))
        self._indexed += to - last
        self.listener("events", rows)

    def rollback(self, rollback: Rollback) -> None:
        """Roll the mirror back to the fork point with the journal (or reset it for a deep fork)."""
        if rollback.deep:
            log.warning("reorg deeper than the kept history (%d blocks): re-indexing from block %d",
                        self.undo_depth, self.start_block)
            self.reset()
            return
        number, last = rollback.fork, rollback.abandoned
        with self.engine.begin() as connection:
            stored = connection.execute(select(HASHES.c.hash).where(HASHES.c.number == number)).scalar_one()
            undone = rollback_journal(connection, number)
            connection.execute(delete(EVENTS).where(EVENTS.c.block > number))
            connection.execute(delete(HASHES).where(HASHES.c.number > number))
            connection.execute(update(STATE).where(STATE.c.id == 1).values(last_block=number, last_hash=stored,
                                                                           updated_at=int(time.time())))
        log.warning("reorg: rolled the mirror back from block %d to %d (%d writes undone)", last, number, undone)
        self.listener("reorg", number)

    def reset(self) -> None:
        """Forget everything indexed from the chain (owner profiles, sessions and documents stay)."""
        with self.engine.begin() as connection:
            for name in (*CHAIN_TABLES, "chain_events", "block_hashes", "undo_log", "indexer_state"):
                connection.execute(delete(api_metadata.tables[name]))
        self.listener("reorg", self.start_block - 1)

    # ------------------------------------------------------------------ documents

    def current_oracle_urls(self) -> list[str]:
        """The configured oracle URLs, else the URLs the OracleHub's active oracles published."""
        if self.oracle_urls:
            return list(self.oracle_urls)
        with self.engine.connect() as connection:
            rows = connection.execute(select(ORACLES.c.url).where(ORACLES.c.active.is_(True), ORACLES.c.url != "")
                                      .order_by(ORACLES.c.address)).all()
        return [row.url.rstrip("/") for row in rows]

    def _fetch_documents(self) -> None:
        urls = self.current_oracle_urls()
        if not urls:
            return
        stored = self.documents.fetch_missing(urls)
        if stored:
            self.listener("documents", stored)
        allocations = self.allocations.fetch_missing(urls)
        if allocations:
            self.listener("allocations", allocations)

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event, poll_seconds: float = 2.0) -> None:
        """Poll until `stop` is set; errors are logged and retried with back-off (the chain may be down)."""
        backoff = poll_seconds
        while not stop.is_set():
            try:
                self.step()
                backoff = poll_seconds
                caught_up = self.progress.indexed_block >= self.progress.head_block - self.confirmations
                stop.wait(poll_seconds if caught_up else 0)
            except Exception as error:  # noqa: BLE001  (the RPC or the database may be away for a while)
                log.warning("indexer step failed: %r; retrying in %.1f s", error, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
        self.documents.close()
        self.allocations.close()
